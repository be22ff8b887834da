"""Teams and scripted answers shared by the MetaGPT tests (imported after conftest prepared MetaGPT's home)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metagpt.actions import Action, UserRequirement
from metagpt.roles import Architect, Engineer, ProductManager, ProjectManager, QaEngineer, Role
from metagpt.team import Team

from agentracer_plugins.metagpt import Rounds
from agentracer_plugins.metagpt.mbpp_team import build_team, load_mbpp
from agentracer_plugins.metagpt.testing import ScriptedLLM, echo_format_example

MBPP = Path(__file__).resolve().parents[2] / "data" / "mbpp" / "mbpp_test.jsonl"
TASK = load_mbpp(12, MBPP)  # sort_matrix: sort rows by their sum
BUGGY = "```python\ndef sort_matrix(M):\n    return sorted(M, key=max)\n```"  # passes the visible test only
GOOD = "```python\ndef sort_matrix(M):\n    return sorted(M, key=sum)\n```"


def scripted_mbpp_team(coder: str = BUGGY, reviewer: str = "APPROVE", coder_goal: str = "") -> Team:
    answers = {"Coder": coder, "Reviewer": reviewer}
    team = build_team(TASK, lambda profile: ScriptedLLM(answers.get(profile, "unused"), model=profile))
    if coder_goal:
        team.env.roles["Coder"].goal = coder_goal
        team.env.roles["Coder"].llm.system_prompt = team.env.roles["Coder"]._get_prefix()
    return team


def _code_fallback(messages: list[dict[str, Any]]) -> str:
    return "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"


def software_company() -> Rounds:
    """ProductManager → Architect → ProjectManager → Engineer → QaEngineer, scripted; QA writes tests and
    the run stops before it executes them (six rounds)."""
    def llm(name: str) -> ScriptedLLM:
        return ScriptedLLM(echo_format_example(_code_fallback), model=name)

    team = Team()
    team.hire([ProductManager(llm=llm("pm")), Architect(llm=llm("architect")),
               ProjectManager(llm=llm("project-manager")), Engineer(llm=llm("engineer")),
               QaEngineer(llm=llm("qa"))])
    return Rounds(team, n_round=6)


class Draft(Action):
    name: str = "Draft"

    async def run(self, with_messages: Any = None) -> str:
        return await self._aask(f"Draft an answer to: {with_messages[-1].content}")


class Drafter(Role):
    """A one-action role that answers the user's requirement (used to run roles concurrently)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._watch([UserRequirement])
        self.set_actions([Draft])


def parallel_team(slow: float = 0.05) -> Team:
    """Two roles answering the same message in the same round; the first one listed answers last."""
    team = Team()
    team.hire([Drafter(name="A", profile="Slow", llm=ScriptedLLM("slow answer", model="slow", delay=slow)),
               Drafter(name="B", profile="Fast", llm=ScriptedLLM("fast answer", model="fast"))])
    return team


class Judge(Action):
    name: str = "Judge"

    async def run(self, with_messages: Any = None) -> str:
        return await self._aask("Judge these drafts:\n" + "\n".join(m.content for m in with_messages or []))


class Judger(Role):
    """A role that reads every draft published before its turn."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._watch([Draft])
        self.set_actions([Judge])


def judged_team(slow: float = 0.05) -> Rounds:
    """``parallel_team`` and a judge of both drafts, who runs in the round after both were published."""
    def verdict(messages: list[dict[str, Any]]) -> str:
        seen = [d for d in ("slow answer", "fast answer", "replaced") if d in messages[-1]["content"]]
        return "judged: " + ", ".join(seen)

    team = parallel_team(slow)
    team.hire([Judger(name="J", profile="Judge", llm=ScriptedLLM(verdict, model="judge"))])
    return Rounds(team, n_round=4)
