"""Two runs of one task side by side: a replay against the run it replayed, or any two attempts.

``compare(before, after)`` pairs their steps by index and says of each whether it is the same (agent, kind,
content, tool calls and results but their ids), the replaced action, changed, or only in one run; with the first
difference and both outcomes. ``agentracer diff`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal

from .schema import Step, Trajectory

StepStatus = Literal["same", "replaced", "changed", "only before", "only after"]


@dataclass(frozen=True)
class StepChange:
    """One step index of two runs: what each run did there and how they relate."""

    index: int
    status: StepStatus
    before: Step | None
    after: Step | None

    def as_json(self) -> dict[str, Any]:
        def side(step: Step | None) -> dict[str, Any] | None:
            if step is None:
                return None
            shown: dict[str, Any] = {"agent": step.agent, "kind": step.kind, "content": step.content}
            if step.tool_calls:  # (what the status weighs is shown: two calls may differ in their arguments alone)
                shown["tool_calls"] = [{"name": c.name, "arguments": c.arguments} for c in step.tool_calls]
            if step.tool_results:
                shown["tool_results"] = [{"name": r.name, "content": r.content, "is_error": r.is_error}
                                         for r in step.tool_results]
            return shown

        return {"index": self.index, "status": self.status, "before": side(self.before), "after": side(self.after)}


def _same(a: Step, b: Step) -> bool:
    return _compared(a) == _compared(b)


def _compared(step: Step) -> tuple[Any, ...]:
    """What makes two steps the same: not the ids of tool calls, which a model (or a replacement) makes up anew on
    every run, and which a result only points back with."""
    return (step.agent, step.kind, step.content, [(c.name, c.arguments) for c in step.tool_calls],
            [(r.name, r.content, r.is_error) for r in step.tool_results])


def outcome_text(trajectory: Trajectory) -> str:
    """A run's outcome in a word: success, failure or unknown."""
    return {True: "success", False: "failure", None: "unknown"}[trajectory.outcome.success]


@dataclass(frozen=True)
class Comparison:
    """The step-by-step comparison of two runs (see ``compare``)."""

    before: Trajectory
    after: Trajectory
    rows: list[StepChange]

    @property
    def first_difference(self) -> int | None:
        """The index of the first step that is not the same in both runs (None: the runs' steps are equal)."""
        return next((row.index for row in self.rows if row.status != "same"), None)

    @property
    def outcome_changed(self) -> bool:
        return self.before.outcome.success != self.after.outcome.success

    def summary(self) -> str:
        """One line: the runs of steps by status, then the outcomes, e.g. ``steps 0-2 same, 3 replaced, 4-6
        changed; outcome failure -> success``."""
        spans = []
        for status, group in groupby(self.rows, key=lambda row: row.status):
            indexes = [row.index for row in group]
            where = str(indexes[0]) if len(indexes) == 1 else f"{indexes[0]}-{indexes[-1]}"
            spans.append(f"{where} {status}")
        steps = f"steps {', '.join(spans)}" if spans else "no steps"
        return f"{steps}; outcome {outcome_text(self.before)} -> {outcome_text(self.after)}"

    def as_json(self) -> dict[str, Any]:
        return {"before": self.before.id, "after": self.after.id, "first_difference": self.first_difference,
                "outcome": {"before": self.before.outcome.success, "after": self.after.outcome.success},
                "summary": self.summary(), "steps": [row.as_json() for row in self.rows]}


def compare(before: Trajectory, after: Trajectory) -> Comparison:
    """Compare two runs step by step (``after`` is usually a replay of ``before``)."""
    rows = []
    for index in range(max(len(before.steps), len(after.steps))):
        old = before.steps[index] if index < len(before.steps) else None
        new = after.steps[index] if index < len(after.steps) else None
        status: StepStatus
        if new is None:
            status = "only before"
        elif old is None:
            status = "only after"
        elif _same(old, new) and (old.replaced or not new.replaced):  # (a replay against itself, or its copy)
            status = "same"
        else:
            status = "replaced" if new.replaced else "changed"
        rows.append(StepChange(index, status, old, new))
    return Comparison(before, after, rows)
