"""A small MetaGPT team for MBPP tasks: Coder → Tester → Reviewer (imports MetaGPT).

The Coder writes the function (one model call), the Tester runs the task's *visible* assert (the first)
in agentracer's sandbox (no model call: a step no model produced), the Reviewer reads both and answers
(one model call). ``mbpp_outcome`` is Ω: the solution against *all* the task's asserts, sandboxed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentracer.evaluate.outcome import CodeTests
from agentracer.evaluate.sandbox import run_python_tests
from metagpt.actions import Action, UserRequirement
from metagpt.provider.base_llm import BaseLLM
from metagpt.roles import Role
from metagpt.team import Team

_FENCE = re.compile(r"```(?:python)?\s*\n(.*?)```", re.DOTALL)


def code_of(text: str) -> str:
    """The first fenced code block of ``text``, or the text itself."""
    found = _FENCE.search(text)
    return (found.group(1) if found else text).strip()


def load_mbpp(task_id: int, path: str | Path) -> dict[str, Any]:
    """One MBPP record (``text``, ``test_list``, ...) from a JSONL file."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record.get("task_id") == task_id:
                return record
    raise KeyError(f"MBPP task {task_id} is not in {path}")


def mbpp_prompt(task: dict[str, Any]) -> str:
    """The requirement given to the team: the task text and its visible test."""
    return f"{task['text']}\nYour code should pass this test:\n{task['test_list'][0]}"


class WriteSolution(Action):
    name: str = "WriteSolution"

    async def run(self, with_messages: Any = None) -> str:
        requirement = with_messages[-1].content if with_messages else ""
        prompt = f"Write a Python function for this task. Answer with one ```python block.\n\n{requirement}"
        return f"```python\n{code_of(await self._aask(prompt))}\n```"


class RunVisibleTest(Action):
    name: str = "RunVisibleTest"
    tests: list[str] = []

    async def run(self, with_messages: Any = None) -> str:
        written = [m for m in with_messages or [] if m.cause_by.endswith("WriteSolution")]
        code = code_of(written[-1].content) if written else ""
        result = run_python_tests(code, self.tests, timeout=10)
        return f"Visible test: {result.feedback}"


class ReviewSolution(Action):
    name: str = "ReviewSolution"

    async def run(self, with_messages: Any = None) -> str:
        history = "\n\n".join(f"{m.role}: {m.content}" for m in with_messages or [])
        return await self._aask(f"Review the solution and the test report. Say APPROVE or REJECT.\n\n{history}")


class Coder(Role):
    name: str = "Cody"
    profile: str = "Coder"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._watch([UserRequirement])
        self.set_actions([WriteSolution])


class Tester(Role):
    name: str = "Tess"
    profile: str = "Tester"

    def __init__(self, tests: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._watch([WriteSolution])
        self.set_actions([RunVisibleTest(tests=tests)])


class Reviewer(Role):
    name: str = "Rex"
    profile: str = "Reviewer"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._watch([RunVisibleTest])
        self.set_actions([ReviewSolution])


def build_team(task: dict[str, Any], llm_for: Callable[[str], BaseLLM] | None = None) -> Team:
    """A fresh Coder → Tester → Reviewer team for ``task``; ``llm_for(profile)`` gives each role its LLM."""
    def llm(profile: str) -> dict[str, Any]:
        # Given at construction: actions keep the LLM handle they got first, so a later swap would not reach them.
        return {"llm": llm_for(profile)} if llm_for is not None else {}

    roles: list[Role] = [Coder(**llm("Coder")), Tester(tests=list(task["test_list"][:1]), **llm("Tester")),
                         Reviewer(**llm("Reviewer"))]
    team = Team()
    team.hire(roles)
    return team


def mbpp_outcome(task: dict[str, Any]) -> CodeTests:
    """Ω for ``task``: the run's last solution passes every assert of the task."""
    return CodeTests(task["test_list"], setup=task.get("test_setup_code", ""))
