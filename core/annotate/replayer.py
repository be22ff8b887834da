"""Where replays run: in this process (``LocalReplayer``) or as Ray tasks (``agentracer.annotate.ray_replayer``).

A replayer re-runs a trajectory from step t with an action and returns the new trajectory with Ω applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from ..errors import AgentracerError, ReplayError, TeamRunError, service_failure
from ..evaluate.outcome import get_evaluator
from ..schema import Trajectory
from ..team import TracedTeam, apply_evaluation
from .prompts import action_text


def replay_failure(exc: Exception) -> tuple[Literal["diverged", "error"], str]:
    """(status, detail) of a replay that raised: ``diverged`` for a ``ReplayError``, else ``error``."""
    if isinstance(exc, ReplayError):
        return "diverged", str(exc).splitlines()[0]
    return "error", f"{type(exc).__name__}: {exc}"


class ReplayCrashed(AgentracerError):
    """A replay the team could not finish for a reason outside the run (its model server, the network): no evidence
    either way about the replaced action, so the attempt counts as not made."""


def replay_key(step: int, action: Any) -> tuple[int, str]:
    """What makes two replays of one run the same: the step and the action's text."""
    return step, action_text(action).strip()


def earlier_replays(trajectory: Trajectory, earlier: Sequence[Trajectory]) -> dict[tuple[int, str], Trajectory]:
    """The replays of ``trajectory`` among ``earlier`` (an earlier run's, one that left its task open), by
    ``replay_key``: a search or an injection that asks for one of them again reuses it."""
    return {replay_key(r.replay.step, r.replay.action): r for r in earlier
            if r.replay is not None and r.replay.parent_id == trajectory.id}


class Replayer(Protocol):
    """Replays a run from a step with a replacement action and checks Ω on the result."""

    async def replay(self, trajectory: Trajectory, step: int, action: Any) -> Trajectory: ...


class LocalReplayer:
    """Replays through a ``TracedTeam`` in this process, at most ``max_concurrency`` at once."""

    def __init__(self, team: TracedTeam, evaluator: Any, *, serve_tools: bool = False,
                 max_concurrency: int | None = None) -> None:
        self.team = team
        self.evaluator = get_evaluator(evaluator)
        self.serve_tools = serve_tools
        self._gate = asyncio.Semaphore(max_concurrency) if max_concurrency else None

    async def _replay(self, trajectory: Trajectory, step: int, action: Any) -> Trajectory:
        try:
            replayed = await self.team.areplay(trajectory, step, action, serve_tools=self.serve_tools)
        except TeamRunError as exc:
            if service_failure(exc):  # its model server or network failed: says nothing of the action
                raise ReplayCrashed(f"the replay could not finish: {exc}") from exc
            return exc.trajectory  # the team raised after the replaced step: a failed run, still a result
        await asyncio.to_thread(apply_evaluation, replayed, self.evaluator)
        return replayed

    async def replay(self, trajectory: Trajectory, step: int, action: Any) -> Trajectory:
        if self._gate is None:
            return await self._replay(trajectory, step, action)
        async with self._gate:
            return await self._replay(trajectory, step, action)
