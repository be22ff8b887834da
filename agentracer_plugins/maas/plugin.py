"""The MaAS plugin: runs a sampled workflow (``await workflow(problem)``) under the recorder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agentracer import AgentInfo, Run

from agentracer_plugins.metagpt.llm_hook import model_name

from . import hooks


@dataclass(frozen=True)
class CallWith:
    """A workflow with the arguments its ``__call__`` takes beside the problem (``call_with``)."""

    workflow: Any
    arguments: dict[str, Any]


def call_with(workflow: Any, **arguments: Any) -> CallWith:
    """``workflow`` run as ``await workflow(problem, **arguments)``: MaAS's HumanEval workflow takes
    ``(problem, entry_point, log_path)``; a factory with a ``task`` parameter can give each task its own."""
    return CallWith(workflow, dict(arguments))


def _unwrap(team: Any) -> tuple[Any, dict[str, Any]]:
    return (team.workflow, team.arguments) if isinstance(team, CallWith) else (team, {})


class MaASPlugin:
    """Plugin for MaAS workflows: objects from ``maas.*`` modules with an async ``__call__(problem)`` (more arguments
    through ``call_with``)."""

    name = "maas"

    def matches(self, team: Any) -> bool:
        workflow, _ = _unwrap(team)
        return type(workflow).__module__.split(".")[0] == "maas" and bool(hooks.operators_of(workflow))

    def team_kind(self, team: Any) -> str:
        """The workflow's class, with call arguments or not."""
        return type(_unwrap(team)[0]).__qualname__

    def instrument(self) -> None:
        hooks.install()

    def uninstrument(self) -> None:
        hooks.remove()

    def describe(self, team: Any) -> list[AgentInfo]:
        return [AgentInfo(name=hooks.operator_name(op), description=type(op).__name__,
                          model=model_name(getattr(op, "llm", None))) for op in hooks.operators_of(_unwrap(team)[0])]

    async def arun(self, team: Any, task: str, run: Run) -> Any:
        team, arguments = _unwrap(team)
        hooks.wrap_operators(team)
        if run.plan is not None and run.cassette is not None and run.plan.step > 0:  # (refused before it runs)
            recorded = run.cassette.trajectory.steps[run.plan.step]
            failed = recorded.kind == "event"  # (an operator that failed: its content is the error, not its output)
            hooks.output_for(run.plan.action, None if failed else recorded.content, step=run.plan.step,
                             name=recorded.agent, failed=failed)
        action = run.replacement_for_next_step()
        if action is not None:  # the replayed step is the task itself: the workflow runs on the new one, live
            task = action if isinstance(action, str) else json.dumps(action)
            run.count_substitution()
        run.add_step(hooks.USER, task, role="user")
        result = await team(task, **arguments)
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
