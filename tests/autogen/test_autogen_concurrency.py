"""Twenty traced runs of one factory at once, in asyncio tasks and in threads, stay separate and complete."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import agentracer
from ag_helpers import BUILDS, counting
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat

N_RUNS, N_MESSAGES = 20, 6


@agentracer.trace
def tagged_team():
    build = next(BUILDS)
    client = counting([f"build {build} turn {i}" for i in range(N_MESSAGES)])
    agents = [AssistantAgent(n, model_client=client) for n in ("a", "b", "c")]
    return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(N_MESSAGES + 1))


def _check(trajectories):
    assert len({t.id for t in trajectories}) == N_RUNS
    builds = set()
    for traj in trajectories:
        assert len(traj.steps) == N_MESSAGES + 1 and traj.steps[0].content.startswith("task")
        tags = {s.content.split(" turn")[0] for s in traj.steps[1:]}
        assert len(tags) == 1, f"steps of different runs mixed: {tags}"
        builds |= tags
        assert [s.content.split("turn ")[1] for s in traj.steps[1:]] == [str(i) for i in range(N_MESSAGES)]
        calls = traj.model_calls()
        assert len(calls) == N_MESSAGES and all(tags == {c.response["content"].split(" turn")[0]} for c in calls)
        assert traj.task == traj.steps[0].content
    assert len(builds) == N_RUNS


async def test_twenty_runs_at_once_in_asyncio():
    trajectories = await asyncio.gather(*(tagged_team.arun(f"task {i}") for i in range(N_RUNS)))
    _check(trajectories)


def test_twenty_runs_at_once_in_threads():
    with ThreadPoolExecutor(max_workers=N_RUNS) as pool:
        trajectories = list(pool.map(lambda i: tagged_team.run(f"task {i}"), range(N_RUNS)))
    _check(trajectories)
