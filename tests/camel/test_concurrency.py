"""20 traced runs of one factory at once (asyncio tasks, threads) give 20 separate, complete trajectories."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import agentracer
from agentracer import Trajectory
from camel_teams import ROLE_TASK, Ledger, make_calculator, make_role_play

N = 20


def check_calculator_runs(trajectories: list[Trajectory], tasks: list[str]) -> None:
    assert len({t.id for t in trajectories}) == N
    for i, traj in enumerate(trajectories):
        assert traj.task == tasks[i]
        assert [s.kind for s in traj.steps] == ["message", "tool_call", "tool_result", "message"]
        assert traj.steps[1].tool_calls[0].arguments == {"a": i, "b": 1000}
        assert traj.steps[3].content == f"The sum is {i + 1000}."
        assert [(c.agent, c.call_index) for c in traj.model_calls()] == [("Calculator", 0), ("Calculator", 1)]
        assert not traj.unattached_calls


async def test_asyncio_tasks(ledger: Ledger) -> None:
    traced = agentracer.trace(make_calculator, ledger, step_timeout=30.0, mode="async")
    tasks = [f"Please add {i} and 1000" for i in range(N)]
    trajectories = await asyncio.gather(*(traced.arun(task) for task in tasks))
    check_calculator_runs(list(trajectories), tasks)


def test_threads_with_step_timeout_worker_threads(ledger: Ledger) -> None:
    traced = agentracer.trace(make_calculator, ledger, step_timeout=30.0, mode="sync")
    tasks = [f"Please add {i} and 1000" for i in range(N)]
    with ThreadPoolExecutor(max_workers=N) as pool:
        trajectories = list(pool.map(traced.run, tasks))
    check_calculator_runs(trajectories, tasks)


async def test_asyncio_role_plays(ledger: Ledger) -> None:
    traced = agentracer.trace(make_role_play, ledger, rounds=2)
    trajectories = await asyncio.gather(*(traced.arun(ROLE_TASK) for _ in range(N)))
    assert len({t.id for t in trajectories}) == N
    for traj in trajectories:
        assert [s.agent for s in traj.steps] == ["Editor", "Poet"] * 3
        assert [c.call_index for c in traj.model_calls()] == [0, 0, 1, 1, 2, 2]
        assert traj.outcome.stop_reason == "done"
