"""20 traced runs of one factory at once (asyncio tasks, threads) give 20 separate, complete trajectories."""

from __future__ import annotations

import asyncio
import threading
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



def test_a_helper_agent_shared_by_concurrent_runs_is_recorded_in_the_run_that_stepped_it() -> None:
    """The context for a ``step_timeout`` worker thread (and a streamed turn's tool threads) was handed over per
    agent: a helper stepped by many runs at once ran in another run's context, or in none, and its steps were lost."""
    from camel.agents import ChatAgent

    from agentracer_plugins.camel import with_options
    from agentracer_plugins.camel.testing import ScriptedModel

    asking = threading.local()  # the question of the run stepping the streaming helper here (its memory is shared)

    def echo(text: str) -> str:
        """Echo the text.

        Args:
            text: the text.
        """
        return text

    def streaming_answer(messages):
        if any(m.get("tool_call_id") == f"echo {asking.q}" for m in messages):
            return f"helped with {asking.q}"
        return {"tool_calls": [{"name": "echo", "arguments": {"text": asking.q}, "id": f"echo {asking.q}"}]}

    timed = ChatAgent("You help.", model=ScriptedModel(["helped"], cycle=True, latency=0.01), step_timeout=30)
    streaming = ChatAgent("You help.", model=ScriptedModel([streaming_answer], cycle=True, latency=0.01, stream=True),
                          tools=[echo])

    def main_answer(messages):
        if messages[-1]["role"] == "tool":
            return "done"
        return {"tool_calls": [{"name": "ask", "arguments": {"q": messages[-1]["content"]}}]}

    def make():
        def ask(q: str) -> str:
            """Ask the helpers.

            Args:
                q: the question.
            """
            asking.q = q
            return timed.step(q).msgs[0].content + " / " + streaming.step(q).msgs[0].content

        return with_options(ChatAgent("sys", model=ScriptedModel([main_answer], cycle=True), tools=[ask]), mode="sync")

    tasks = [f"task {i}" for i in range(N)]
    with ThreadPoolExecutor(max_workers=N) as pool:
        trajectories = list(pool.map(agentracer.trace(make).run, tasks))
    for task, traj in zip(tasks, trajectories, strict=True):
        helped = [(s.kind, None if s.kind == "tool_call" else s.content) for s in traj.steps
                  if s.agent not in (traj.agents[0].name, "user")]
        assert helped == [("message", "helped"), ("tool_call", None), ("tool_result", task),
                          ("message", f"helped with {task}")], traj.id
        assert not traj.unattached_calls
