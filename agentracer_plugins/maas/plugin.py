"""The MaAS plugin: runs a sampled workflow (``await workflow(problem)``) under the recorder."""

from __future__ import annotations

import json
from typing import Any

from agentracer import AgentInfo, Run

from agentracer_plugins.metagpt.llm_hook import model_name

from . import hooks


class MaASPlugin:
    """Plugin for MaAS workflows: objects from ``maas.*`` modules with an async ``__call__(problem)``."""

    name = "maas"

    def matches(self, team: Any) -> bool:
        return type(team).__module__.split(".")[0] == "maas" and bool(hooks.operators_of(team))

    def instrument(self) -> None:
        hooks.install()

    def uninstrument(self) -> None:
        hooks.remove()

    def describe(self, team: Any) -> list[AgentInfo]:
        return [AgentInfo(name=hooks.operator_name(op), description=type(op).__name__,
                          model=model_name(getattr(op, "llm", None))) for op in hooks.operators_of(team)]

    async def arun(self, team: Any, task: str, run: Run) -> Any:
        hooks.wrap_operators(team)
        action = run.replacement_for_next_step()
        if action is not None:  # the replayed step is the task itself: the workflow runs on the new one, live
            task = action if isinstance(action, str) else json.dumps(action)
            run.count_substitution()
        run.add_step(hooks.USER, task, role="user")
        result = await team(task)
        solution, cost, log_prob = result if isinstance(result, tuple) and len(result) == 3 else (result, None, None)
        run.trajectory.metadata["maas"] = {
            "workflow": type(team).__name__,
            "operators": [s.agent for s in run.trajectory.steps if s.agent != hooks.USER],
            "cost": _number(cost), "log_prob": _number(log_prob),
        }
        return solution


def _number(value: Any) -> float | None:
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None
