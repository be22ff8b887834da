"""Workforce: the task, the planner, the coordinator and worker nodes named by node id and description."""

from __future__ import annotations

import json
from typing import Any

import agentracer
import pytest
from camel_teams import Ledger, make_workforce, make_workforce_with_checker, round_trips

TASK = "What is 2+3? Write a short report."
ADDER = "worker-0 (Adder: adds numbers)"
REPORTER = "worker-1 (Reporter: writes reports)"


def test_records_planner_coordinator_and_workers(ledger: Ledger) -> None:
    traj = agentracer.trace(make_workforce, ledger).run(TASK)

    assert [a.name for a in traj.agents] == ["coordinator", "task planner", ADDER, REPORTER]
    assert traj.agents[2].description == "Adder: adds numbers"
    agents = [s.agent for s in traj.steps]
    assert agents[:3] == ["user", "task planner", "coordinator"]
    assert traj.steps[0].content == TASK
    assert "<task>Compute 2+3</task>" in traj.steps[1].content
    assert json.loads(traj.steps[2].content)["assignments"][0]["assignee_id"] == "worker-0"
    assert ADDER in agents and REPORTER in agents and "System" not in agents
    assert "5" in traj.outcome.answer and traj.outcome.stop_reason == "task DONE"
    assert round_trips(traj)


@pytest.mark.parametrize("as_json_text", [True, False])
def test_replay_a_worker_step_keeps_the_prefix_offline(ledger: Ledger, as_json_text: bool) -> None:
    """The worker's structured result (CAMEL's own {"content", "failed"}) given as JSON text or as an object: an
    object with other keys than an answer's is structured output, not the answer's text."""
    traced = agentracer.trace(make_workforce, ledger)
    traj = traced.run(TASK)
    t = next(s.index for s in traj.steps if s.agent == ADDER)
    ledger.reset()

    result = {"content": "6", "failed": False}
    new = traced.replay(traj, step=t, action=json.dumps(result) if as_json_text else result)

    assert [s.content for s in new.steps[:t]] == [s.content for s in traj.steps[:t]]
    assert new.steps[t].agent == ADDER and new.steps[t].replaced
    assert "Subtask 0.1 Result ---\n6" in new.outcome.answer
    prefix_sources = {c.source for s in new.steps[:t] for c in s.model_calls}
    assert prefix_sources == {"cassette"}
    assert ledger.live_calls == sum(1 for s in new.steps for c in s.model_calls if c.source == "live")


def test_an_agent_a_worker_steps_through_a_tool_keeps_its_own_name(ledger: Ledger) -> None:
    traj = agentracer.trace(make_workforce_with_checker, ledger).run(TASK)

    # (the Reporter works at the same time: its steps may come in between)
    steps = [(s.agent, s.kind, s.content) for s in traj.steps if s.agent in (ADDER, "Checker")]
    assert [(agent, kind) for agent, kind, _ in steps] == [
        (ADDER, "tool_call"), ("Checker", "message"), (ADDER, "tool_result"), (ADDER, "message")]
    assert steps[1][2] == steps[2][2] == "Yes, 2+3 is 5."
    assert ledger.tool_runs == [("ask_checker", {"question": "Is 2+3 equal to 5?"})]
    assert "5" in traj.outcome.answer


@pytest.mark.parametrize("serve_tools", [False, True])
def test_workers_running_at_once_replay_from_every_step_in_the_recorded_order(ledger: Ledger,
                                                                              serve_tools: bool) -> None:
    """The Adder and the Reporter work at the same time (the Adder's tool steps a Checker agent in a thread), so
    each recording interleaves their steps its own way and served calls come back in another; every replay, from
    every step, keeps the recorded prefix and makes no live call for it."""
    traced = agentracer.trace(make_workforce_with_checker, ledger)
    for _ in range(2):
        traj = traced.run(TASK)
        for t in range(1, len(traj.steps)):
            step = traj.steps[t]
            action = ({"tool_calls": [call.model_dump() for call in step.tool_calls]} if step.kind == "tool_call"
                      else step.content)
            new = traced.replay(traj, step=t, action=action, serve_tools=serve_tools)
            assert [(s.agent, s.content) for s in new.steps[:t]] == [(s.agent, s.content) for s in traj.steps[:t]]
            assert new.steps[t].replaced and [s.index for s in new.steps] == list(range(len(new.steps)))
            assert {c.source for s in new.steps[:t] for c in s.model_calls} <= {"cassette"}
            assert "5" in new.outcome.answer


def test_a_worker_retried_after_failing_replays_strictly(ledger: Ledger) -> None:
    """CAMEL retries a worker that reported failure with a prompt that names the attempts' agent clones (fresh uuids)
    and their times: requests that differ only in those are the recorded ones, served."""
    from camel.agents import ChatAgent

    def fails_first(messages: list[dict[str, Any]]) -> str:
        first_try = "worker_attempts" not in str(messages[-1].get("content"))
        return json.dumps({"content": "cannot" if first_try else "5", "failed": first_try})

    def build() -> Any:
        return make_workforce(ledger, ChatAgent("You add.", model=ledger.model(fails_first, "adder")))

    traced = agentracer.trace(build)
    traj = traced.run(TASK)
    attempts = [s.content for s in traj.steps if s.agent == ADDER]
    assert [json.loads(a)["failed"] for a in attempts] == [True, False]
    ledger.reset()
    last = len(traj.steps) - 1
    new = traced.replay(traj, step=last, action=traj.steps[last].content)
    assert {c.source for s in new.steps[:last] for c in s.model_calls} == {"cassette"} and ledger.live_calls == 0
    assert "5" in new.outcome.answer



@pytest.mark.parametrize("fails", ["always", "first"])
def test_a_worker_whose_model_raises_replays_from_every_step(ledger: Ledger, fails: str) -> None:
    """CAMEL catches a worker's failed model call, fails its task and goes on (retries it, or halts): the failed call
    was left without a step (a replay found no call to serve) or put on the retry's step (served at that step's
    turn, after the planner had already gone on); and served, it raised an error that read otherwise."""
    from camel.agents import ChatAgent
    from camel_teams import worker_answer

    calls = [0]

    def adder(messages: list[dict[str, Any]]) -> Any:
        calls[0] += 1
        if fails == "always" or calls[0] == 1:
            raise RuntimeError("rate limited")
        return worker_answer(messages)

    def build() -> Any:
        workforce = make_workforce(ledger, ChatAgent("You add.", model=ledger.model(adder, "adder")))
        workforce.graceful_shutdown_timeout = 0.1
        return workforce

    traced = agentracer.trace(build, raise_on_error=False)
    traj = traced.run(TASK)
    failed = [s for s in traj.steps if s.kind == "event" and s.agent == ADDER]
    assert len(failed) == (3 if fails == "always" else 1) and not traj.unattached_calls
    assert all(c.error == "RuntimeError: rate limited" for s in failed for c in s.model_calls)
    assert traj.outcome.stop_reason == ("task FAILED" if fails == "always" else "task DONE")
    for t in range(1, len(traj.steps)):
        ledger.reset()
        new = traced.replay(traj, step=t, action=traj.steps[t].content)
        assert [(s.agent, s.content) for s in new.steps[:t]] == [(s.agent, s.content) for s in traj.steps[:t]]
        assert {c.source for s in new.steps[:t] for c in s.model_calls} <= {"cassette"}
        assert new.outcome.stop_reason == traj.outcome.stop_reason


def test_a_workforce_replay_that_diverged_skips_camels_shutdown_wait(ledger: Ledger) -> None:
    """A Workforce whose task failed for good waits ``graceful_shutdown_timeout`` (15 s) before it stops; in a replay
    that diverged (a worker's step differs: CAMEL retries it, then halts) it does not wait, the divergence is what
    the replay reports; outside one it waits as ever."""
    import asyncio
    import time

    from agentracer.record import Run
    from agentracer.replay import Cassette, ReplayPlan
    from camel.tasks import Task

    traced = agentracer.trace(make_workforce, ledger)
    traj = traced.run(TASK)
    workforce = make_workforce(ledger)
    workforce.graceful_shutdown_timeout = 0.5
    run = Run(traj.model_copy(update={"steps": []}), plan=ReplayPlan(step=3, action="x"), cassette=Cassette(traj))

    def shutdown_takes() -> float:
        started = time.monotonic()
        with run.activate():
            asyncio.run(workforce._graceful_shutdown(Task(content="Compute 2+3", id="0.1")))
        return time.monotonic() - started

    assert shutdown_takes() >= 0.5
    run.divergence = agentracer.ReplayDivergence(step=2, agent=ADDER, reason="its content differs")
    assert shutdown_takes() < 0.5


def test_a_cancelled_workforce_replay_stops_its_workers(ledger: Ledger) -> None:
    """Annotation cancels the replays it no longer needs: a Workforce's workers run in tasks of their own, and they
    stop with the replay instead of asking their models on (live calls, AssertionErrors logged by CAMEL). A cancel
    that lands as an awaited future has just finished is one Python 3.11's wait_for lets pass: the replay still ends
    cancelled (it returned as if finished)."""
    import asyncio
    import logging
    import threading

    from camel.agents import ChatAgent
    from camel_teams import worker_answer

    from agentracer_plugins.camel.testing import ScriptedModel

    slow = ScriptedModel([worker_answer], cycle=True, name="slow adder", latency=0.3)
    traced = agentracer.trace(lambda: make_workforce(ledger, ChatAgent("You add.", model=slow)))
    traj = traced.run(TASK)
    errors: list[str] = []

    class Errors(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                errors.append(record.getMessage())

    under_way = threading.Event()  # the slow adder's live call has begun (its answer comes 0.3 s later)
    run_sync, run_async = slow._run, slow._arun

    def marked_run(*args, **kwargs):
        under_way.set()
        return run_sync(*args, **kwargs)

    async def marked_arun(*args, **kwargs):
        under_way.set()
        return await run_async(*args, **kwargs)

    slow._run, slow._arun = marked_run, marked_arun

    async def cancel_then_wait() -> int:
        replay = asyncio.create_task(traced.areplay(traj, step=1, action=traj.steps[1].content))
        for _ in range(1000):  # (a fixed wait cancelled a loaded machine's replay before it got there)
            if under_way.is_set():
                break
            await asyncio.sleep(0.01)
        assert under_way.is_set()
        replay.cancel()
        with pytest.raises(asyncio.CancelledError):
            await replay
        before = slow.calls + ledger.live_calls
        await asyncio.sleep(1.0)
        return slow.calls + ledger.live_calls - before

    handler = Errors()
    logging.getLogger().addHandler(handler)
    try:
        assert asyncio.run(cancel_then_wait()) == 0
    finally:
        logging.getLogger().removeHandler(handler)
    assert errors == []
