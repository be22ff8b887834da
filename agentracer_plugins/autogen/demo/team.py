"""The demo team: a real AutoGen RoundRobinGroupChat of a planner, a coder with a Python tool and a
reviewer, on one MBPP task, driven by scripted model clients (no language model, no key, no network).

The scripted coder makes one real mistake: an off-by-one loop bound (``range(1, n)`` where the task needs
``range(1, n + 1)``). When the feedback of a previous attempt addressed to the coder is in its
instructions, it writes the loop bound correctly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agentracer.evaluate.sandbox import run_python_tests
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

TASK_FILE = Path(__file__).with_name("mbpp_271.jsonl")
MODEL_INFO = ModelInfo(vision=False, function_calling=True, json_output=False, family="unknown",
                       structured_output=False)

BUGGY_CODE = (
    "def even_Power_Sum(n):\n"
    "    total = 0\n"
    "    for i in range(1, n):\n"
    "        total += (2 * i) ** 5\n"
    "    return total\n\n"
    "print(even_Power_Sum(2))\n"
)
FIXED_CODE = BUGGY_CODE.replace("range(1, n)", "range(1, n + 1)")


def load_task() -> dict[str, Any]:
    """The shipped MBPP task (task_id 271)."""
    return json.loads(TASK_FILE.read_text(encoding="utf-8"))


def task_text(row: dict[str, Any]) -> str:
    return f"{row['text']}\nYour code should pass this test:\n{row['test_list'][0]}"


def run_python(code: str) -> str:
    """Run Python code in a sandbox (time and memory limits, no network) and return what it printed."""
    result = run_python_tests(code, [], timeout=10, memory_mb=256)
    return result.stdout.strip() or result.error or "(no output)"


class ScriptedClient(ReplayChatCompletionClient):
    """A scripted AutoGen model client: its answer is a function of the messages it is sent.

    It is not a language model; the demo says so when it runs.
    """

    def __init__(self, respond: Callable[[Sequence[Any]], str | CreateResult]) -> None:
        super().__init__(["(scripted)"], model_info=MODEL_INFO)
        self._respond = respond

    async def create(self, messages: Sequence[Any], **kwargs: Any) -> CreateResult:
        answer = self._respond(messages)
        if isinstance(answer, CreateResult):
            return answer
        return CreateResult(finish_reason="stop", content=answer, cached=False,
                            usage=RequestUsage(prompt_tokens=sum(len(str(m.content)) for m in messages) // 4,
                                               completion_tokens=len(answer) // 4))


def _planner(messages: Sequence[Any]) -> str:
    return ("Plan: 1) loop over i = 1 .. n inclusive; 2) add (2*i)**5 for each i; 3) return the total. "
            "Coder, please implement even_Power_Sum(n) and run it once.")


def _coder(messages: Sequence[Any]) -> CreateResult:
    system = str(messages[0].content) if messages else ""
    code = FIXED_CODE if "Feedback from the previous attempt" in system else BUGGY_CODE
    call = FunctionCall(id="call-run-1", name="run_python", arguments=json.dumps({"code": code}))
    return CreateResult(finish_reason="function_calls", content=[call], cached=False,
                        usage=RequestUsage(prompt_tokens=60, completion_tokens=40))


def _reviewer(messages: Sequence[Any]) -> str:
    return "The code runs and prints a number. Looks fine to me. APPROVE"


def make_team(feedback: Any = None) -> RoundRobinGroupChat:
    """Build the team; ``feedback`` from a previous attempt goes into the named agent's instructions."""

    def instructions(name: str, base: str) -> str:
        note = feedback.for_agent(name) if feedback is not None else None
        return f"{base}\n\n{note}" if note else base

    planner = AssistantAgent(
        "planner", model_client=ScriptedClient(_planner),
        system_message=instructions("planner", "You plan the solution of a Python task in short steps."),
    )
    coder = AssistantAgent(
        "coder", model_client=ScriptedClient(_coder), tools=[run_python], reflect_on_tool_use=False,
        system_message=instructions("coder", "You write the Python function the plan asks for and run it with run_python."),
    )
    reviewer = AssistantAgent(
        "reviewer", model_client=ScriptedClient(_reviewer),
        system_message=instructions("reviewer", "You review the coder's work; say APPROVE when it is done."),
    )
    stop = TextMentionTermination("APPROVE") | MaxMessageTermination(12)
    return RoundRobinGroupChat([planner, coder, reviewer], termination_condition=stop)
