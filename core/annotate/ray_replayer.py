"""Replays as Ray tasks, for annotation spread over many machines (``agentracer annotate --ray ADDRESS``).

Each replay is a Ray task that rebuilds the team from its ``module:factory`` spec, replays, checks Ω (an
evaluator name or ``module:function``) and returns the trajectory as JSON; the search awaits the results
and cancels the tasks it no longer needs. ``address="local"`` starts a local Ray instance.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..errors import InputError
from ..schema import Trajectory


def _replay_remote(team_spec: str, evaluator_spec: str, cwd: str, trajectory_json: str, step: int,
                   action: Any, serve_tools: bool) -> str:
    """Runs on a Ray worker: replay one step and check Ω."""
    import sys

    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    os.chdir(cwd)
    from ..errors import TeamRunError, service_failure
    from ..evaluate.outcome import get_evaluator
    from ..loading import load_team
    from ..team import apply_evaluation
    from .replayer import ReplayCrashed

    team = load_team(team_spec)
    parent = Trajectory.model_validate_json(trajectory_json)
    try:
        replayed = team.replay(parent, step, action, serve_tools=serve_tools)
    except TeamRunError as exc:
        if service_failure(exc):  # (as the local replayer: no evidence about the action)
            raise ReplayCrashed(f"the replay could not finish: {exc}") from None
        return exc.trajectory.to_json()
    apply_evaluation(replayed, get_evaluator(evaluator_spec))
    replayed.metadata["ray_node"] = os.uname().nodename
    return replayed.to_json()


class RayReplayer:
    """A replayer whose replays run as Ray tasks (at most ``max_in_flight`` at once from this driver)."""

    def __init__(self, team_spec: str, evaluator_spec: str, *, address: str = "local", max_in_flight: int = 8,
                 serve_tools: bool = False, num_cpus: float = 1) -> None:
        try:
            import ray
        except ImportError:
            raise InputError("--ray needs Ray: pip install 'agentracer[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            if address == "local":
                ray.init(include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
            else:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.team_spec, self.evaluator_spec = team_spec, evaluator_spec
        self.serve_tools = serve_tools
        self._task = ray.remote(num_cpus=num_cpus, max_retries=0)(_replay_remote)
        self._gate = asyncio.Semaphore(max_in_flight)
        self.cwd = os.getcwd()

    async def replay(self, trajectory: Trajectory, step: int, action: Any) -> Trajectory:
        async with self._gate:
            ref = self._task.remote(self.team_spec, self.evaluator_spec, self.cwd, trajectory.to_json(),
                                    step, action, self.serve_tools)
            try:
                text = await ref
            except asyncio.CancelledError:
                self.ray.cancel(ref)  # (not force: killing the worker as its reply comes trips a check in Ray's task manager)
                raise
            except self.ray.exceptions.RayTaskError as exc:
                cause = exc.as_instanceof_cause()
                raise cause from None
        return Trajectory.model_validate_json(text)

    def shutdown(self) -> None:
        self.ray.shutdown()
