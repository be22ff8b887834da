"""agentracer plugin for MaAS (sampled operator workflows over a renamed MetaGPT 0.8, ``maas.*``).

Each operator call is a step (the operator's name is the agent; its inputs and output are recorded), the
model calls under it (``ActionNode.fill`` → ``aask``) go through the recorder, and the operators that ran,
the cost and the log-probability of the sampled workflow land in ``trajectory.metadata["maas"]``. Replay
from step t serves earlier calls and puts the action in place of that operator's output; seed the
workflow's controller in your factory so the replay samples the same operators. MaAS is not on PyPI and
has no licence: nothing of it is copied here; the hooks find it by module name.
"""

from __future__ import annotations

from agentracer import register_plugin

from .hooks import installed, operators_of, wrap_operators
from .plugin import CallWith, MaASPlugin, call_with

plugin = register_plugin(MaASPlugin())


def instrument() -> None:
    """Install the MaAS hooks now (``agentracer.trace`` does this on first run)."""
    plugin.instrument()


def uninstrument() -> None:
    """Remove the MaAS hooks, restoring the original functions."""
    plugin.uninstrument()


__all__ = ["CallWith", "MaASPlugin", "call_with", "installed", "instrument", "operators_of", "plugin", "uninstrument", "wrap_operators"]
