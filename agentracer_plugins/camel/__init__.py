"""agentracer for CAMEL and OWL: trace a ChatAgent, a RolePlaying society (OWL's too) or a Workforce.

```python
@agentracer.trace
def make_society():
    return RolePlaying("Assistant", "User", task_prompt=TASK, with_task_specify=False, model=model)

traj = make_society.run(TASK)
fixed = make_society.replay(traj, step=3, action="corrected message")
```
Recording happens at the agents (``ChatAgent.step``/``astep``, the model backend's ``run``/``arun`` and
tool execution), so societies that override ``step`` (OWL's ``OwlRolePlaying``) are recorded as they are.
"""

from __future__ import annotations

from agentracer import register_plugin

from .codec import CODEC, ChatCompletionCodec
from .options import CamelOptions, Configured, with_options
from .plugin import CamelPlugin

plugin = register_plugin(CamelPlugin())

__all__ = ["CODEC", "CamelOptions", "CamelPlugin", "ChatCompletionCodec", "Configured", "plugin", "with_options"]
