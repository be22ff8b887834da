"""Record a MetaGPT Coder → Tester → Reviewer team on MBPP task 12, then replay the Coder's step fixed.

Offline: the roles use MetaGPT's own OpenAI provider against a loopback OpenAI-compatible server that
answers with a buggy solution first. Run in the MetaGPT environment (envs/metagpt/install.sh):

    .nox/metagpt/bin/python examples/metagpt_mbpp.py
"""

from __future__ import annotations

from pathlib import Path

from agentracer_plugins.metagpt.offline import prepare_temporary_home

prepare_temporary_home("metagpt-example-")  # MetaGPT reads its config at import

import agentracer  # noqa: E402
from agentracer.testing.openai_server import OpenAIServer  # noqa: E402
from metagpt.configs.llm_config import LLMConfig  # noqa: E402
from metagpt.provider.openai_api import OpenAILLM  # noqa: E402

from agentracer_plugins.metagpt.mbpp_team import build_team, load_mbpp, mbpp_outcome, mbpp_prompt  # noqa: E402

TASK = load_mbpp(12, Path(__file__).resolve().parents[1] / "data" / "mbpp" / "mbpp_test.jsonl")
BUGGY = "```python\ndef sort_matrix(M):\n    return sorted(M, key=max)\n```"
FIXED = "```python\ndef sort_matrix(M):\n    return sorted(M, key=sum)\n```"


def answer(request: dict) -> str:
    return "APPROVE" if "Review the solution" in request["messages"][-1]["content"] else BUGGY


with OpenAIServer(answer) as server:
    def llm_for(profile: str) -> OpenAILLM:
        return OpenAILLM(LLMConfig(base_url=server.base_url, api_key="sk-local", model="loopback", stream=False))

    team = agentracer.trace(build_team, TASK, llm_for, evaluator=mbpp_outcome(TASK))
    run = team.run(mbpp_prompt(TASK))
    for step in run.steps:
        print(f"{step.index} {step.agent:9} {step.text.splitlines()[0][:70]}")
    print("outcome:", run.outcome.success, run.outcome.feedback.splitlines()[0])
    fixed = team.replay(run, step=1, action=FIXED)
    print("replay from the Coder's step:", fixed.outcome.success, fixed.metadata["replay_stats"])
