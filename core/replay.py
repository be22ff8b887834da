"""Replay: a plan (step t, replacement action) and a cassette of recorded model calls and tool results.

The cassette is keyed the way concurrent frameworks stay deterministic: by agent and that agent's call
index, with the request hash checked on every served call (vcrpy's matcher idea, kept strict).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ReplayError
from .schema import ModelCall, ToolResult, Trajectory


@dataclass(frozen=True)
class ReplayPlan:
    """Replay a run from ``step`` with ``action`` in place of what was done there.

    Steps before ``step`` are served from the recording (no live model call), step ``step`` carries
    ``action`` (a text, or a dict such as ``{"tool_calls": [{"name": ..., "arguments": {...}}]}``),
    later steps run live. ``serve_tools`` also serves recorded tool results before ``step``;
    ``strict`` turns a changed request or step before ``step`` into a ``ReplayDivergence``.
    """

    step: int
    action: Any
    serve_tools: bool = False
    strict: bool = True


class ResponseCodec(Protocol):
    """How a plugin turns its framework's model responses into JSON and back."""

    def encode(self, response: Any) -> Any:
        """The response as a JSON value made for this call (the recorder keeps it without copying)."""

    def decode(self, data: Any) -> Any: ...

    # Optional: ``encode_screened(response, text)``, the encoding as redaction would leave it, its strings passed
    # through ``text`` (the recorder's string redaction), or None to have the recorder redact ``encode``'s result.

    def replacement(self, action: Any, recorded: ModelCall | None) -> Any: ...


def json_copy(value: Any) -> Any:
    """A JSON-only copy of ``value`` (what JSON cannot hold becomes a string); a ``str`` is returned as it is."""
    if type(value) is str:
        return value
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


class Cassette:
    """Recorded model calls and tool results of one trajectory, indexed for replay."""

    def __init__(self, trajectory: Trajectory) -> None:
        self.trajectory = trajectory
        self._calls: dict[tuple[str, int], ModelCall] = {}
        for call in trajectory.model_calls():
            self._calls[(call.agent, call.call_index)] = call
        self._tools: dict[tuple[str, int], tuple[int, ToolResult]] = {}
        counts: dict[str, int] = {}
        for step in trajectory.steps:
            for result in step.tool_results:
                k = counts.get(step.agent, 0)
                counts[step.agent] = k + 1
                self._tools[(step.agent, k)] = (step.index, result)

    def call(self, agent: str, index: int) -> ModelCall | None:
        """The recorded call number ``index`` of ``agent``, if any."""
        return self._calls.get((agent, index))

    def tool_result(self, agent: str, index: int) -> tuple[int, ToolResult] | None:
        """The recorded tool result number ``index`` of ``agent`` with the step it belongs to."""
        return self._tools.get((agent, index))

    def __len__(self) -> int:
        return len(self._calls)


def request_diff(recorded: Any, actual: Any, *, context: int = 2, limit: int = 40) -> str:
    """A readable unified diff between a recorded and an actual request (or step content)."""

    def lines(obj: Any) -> list[str]:
        text = obj if isinstance(obj, str) else json.dumps(obj, indent=1, sort_keys=True, default=str, ensure_ascii=False)
        return text.splitlines()

    diff = list(difflib.unified_diff(lines(recorded), lines(actual), "recorded", "replay", n=context, lineterm=""))
    if len(diff) > limit:
        diff = diff[:limit] + [f"... ({len(diff) - limit} more diff lines)"]
    return "\n".join(diff)


def check_plan(trajectory: Trajectory, plan: ReplayPlan) -> None:
    """Raise ``ReplayError`` when the plan cannot apply to the trajectory."""
    n = len(trajectory.steps)
    if n == 0:
        raise ReplayError(f"trajectory {trajectory.id} has no steps to replay")
    if not 0 <= plan.step < n:
        raise ReplayError(f"step {plan.step} is out of range: trajectory {trajectory.id} has steps 0..{n - 1}")
    if plan.action is None:
        raise ReplayError("a replay needs an action for the replaced step")
