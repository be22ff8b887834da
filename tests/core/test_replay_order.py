"""Replays of teams whose agents run concurrently: served calls return at once, yet steps come in the recorded order."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import agentracer
import pytest
from agentracer import ReplayDivergence
from agentracer.plugins import register_plugin
from agentracer.simple import TEXT_CODEC
from team_plugins import PlainTeamPlugin


@dataclass
class Crew:
    """Workers that answer at once, each after its own delay (a slow model), then a lead who sums up; ``threads``
    runs the workers in threads with sync calls, ``sync_in_loop`` makes sync calls inside the event loop."""

    delays: dict[str, float]
    threads: bool = False
    sync_in_loop: bool = False
    events: dict[str, float] = field(default_factory=dict)  # agent -> delay of a step no model call makes
    think: dict[str, float] = field(default_factory=dict)  # agent -> delay before its model call
    events_reach_their_turn: bool = False  # a replayed event waits for its recorded turn (``Run.reach``)
    live: list[str] = field(default_factory=list)
    asks: dict[str, str] = field(default_factory=dict)  # agent -> what it asks its model instead of the task


class _CrewPlugin(PlainTeamPlugin):
    name = "crew"
    team_type = Crew

    @staticmethod
    def _model(team: Crew, name: str):
        def answer():
            team.live.append(name)
            time.sleep(team.delays[name])
            return f"{name} did its part"

        return answer

    async def arun(self, team, task, run):
        async def worker(name: str) -> None:
            await asyncio.sleep(team.think.get(name, 0.0))
            answer = self._model(team, name)
            request = {"messages": [team.asks.get(name, task)]}
            if team.sync_in_loop:
                text = run.call_model(name, request, answer, TEXT_CODEC)
            else:
                async def live():
                    await asyncio.sleep(team.delays[name])
                    team.live.append(name)
                    return f"{name} did its part"

                text = await run.acall_model(name, request, live, TEXT_CODEC)
            run.add_step(name, text)

        async def event(name: str, delay: float) -> None:
            await asyncio.sleep(delay)
            if team.events_reach_their_turn and run.replaying:
                await run.reach(next(s.index for s in run.cassette.trajectory.steps if s.agent == name))
            run.add_step(name, f"{name} noted the task", kind="event")

        if team.threads:
            def in_thread(name: str) -> None:
                with run.activate():
                    run.add_step(name, run.call_model(name, {"messages": [task]}, self._model(team, name), TEXT_CODEC))

            threads = [threading.Thread(target=in_thread, args=(name,)) for name in team.delays]
            for thread in threads:
                thread.start()
            await asyncio.to_thread(lambda: [thread.join() for thread in threads])
        else:
            await asyncio.gather(*[worker(name) for name in team.delays],
                                 *[event(name, delay) for name, delay in team.events.items()])
        parts = [s.content for s in run.trajectory.steps]

        async def sum_up():
            team.live.append("lead")
            return "lead: " + "; ".join(parts)

        summary = await run.acall_model("lead", {"messages": [task, *parts]}, sum_up, TEXT_CODEC)
        run.add_step("lead", summary)
        return summary


register_plugin(_CrewPlugin())
SLOW_FIRST = {"a": 0.15, "b": 0.0, "c": 0.07}  # started a, b, c; recorded b, c, a


@pytest.mark.parametrize("threads", [False, True])
def test_concurrent_agents_replay_unchanged_in_the_recorded_order_with_no_live_call(threads):
    crew = Crew(dict(SLOW_FIRST), threads=threads)
    team = agentracer.trace(lambda: crew)
    traj = team.run("split the work")
    assert [s.agent for s in traj.steps] == ["b", "c", "a", "lead"]
    crew.live.clear()
    new = team.replay(traj, step=3, action="lead: all done")
    assert [(s.agent, s.content) for s in new.steps[:3]] == [(s.agent, s.content) for s in traj.steps[:3]]
    assert new.steps[3].content == "lead: all done" and new.steps[3].replaced
    assert crew.live == []


def test_a_replaced_concurrent_step_keeps_its_index_and_a_later_agent_waits_for_it_before_going_live():
    crew = Crew(dict(SLOW_FIRST))
    team = agentracer.trace(lambda: crew)
    traj = team.run("split the work")
    crew.live.clear()
    new = team.replay(traj, step=1, action="c did it better")  # c's step; a's call (recorded at 2) runs live
    assert [s.agent for s in new.steps] == ["b", "c", "a", "lead"]
    assert new.steps[1].replaced and new.steps[1].content == "c did it better"
    assert [c.source for c in new.steps[2].model_calls] == ["live"]
    assert crew.live == ["a", "lead"]
    assert "c did it better" in new.steps[3].content


def test_a_concurrent_agent_that_asks_something_else_diverges_at_the_step_its_call_was_recorded_for():
    """a asks before b's and c's steps are made: the divergence named the step the replay was at (0), not a's (2)."""
    crew = Crew(dict(SLOW_FIRST))
    team = agentracer.trace(lambda: crew)
    traj = team.run("split the work")
    crew.asks["a"] = "split it another way"
    with pytest.raises(ReplayDivergence, match=r"^replay diverged at step 2, agent 'a': model call #0 .*step 2\)"):
        team.replay(traj, step=3, action="lead: all done")


def test_a_step_of_another_agent_at_the_replaced_index_is_a_divergence_not_a_replaced_step():
    crew = Crew({"a": 0.0}, events={"x": 0.1})  # recorded: a's answer, then x's event
    team = agentracer.trace(lambda: crew)
    traj = team.run("note it")
    assert [s.agent for s in traj.steps] == ["a", "x", "lead"]
    crew.think["a"], crew.events["x"] = 0.2, 0.0  # now x's event (no model call: nothing waits) comes first
    with pytest.raises(ReplayDivergence, match=r"step 0.*the replaced step is 'a''s, and this agent's step came first"):
        team.replay(traj, step=0, action="a, replaced")


def test_a_sync_call_on_the_event_loops_thread_does_not_wait_and_its_step_takes_its_recorded_place(monkeypatch):
    monkeypatch.setattr("agentracer.record.ORDER_STALL_S", 30.0)
    crew = Crew({"a": 0.0, "b": 0.0}, sync_in_loop=True)
    team = agentracer.trace(lambda: crew)
    traj = team.run("split the work")
    assert [s.agent for s in traj.steps] == ["a", "b", "lead"]
    crew.delays = {"b": 0.0, "a": 0.0}  # b asks first now: waiting would block the loop that runs a
    crew.live.clear()
    started = time.monotonic()
    new = team.replay(traj, step=2, action="lead: done")
    assert time.monotonic() - started < 10
    assert [(s.index, s.agent, s.content) for s in new.steps[:2]] == [(s.index, s.agent, s.content) for s in traj.steps[:2]]
    assert [c.step for s in new.steps for c in s.model_calls] == [0, 1, 2]
    assert new.steps[2].replaced and crew.live == []


def test_a_step_that_came_early_is_checked_against_its_recorded_place():
    crew = Crew({"a": 0.0, "b": 0.0}, sync_in_loop=True)
    team = agentracer.trace(lambda: crew)
    traj = team.run("split the work")
    crew.delays = {"b": 0.0, "a": 0.0}
    with pytest.raises(ReplayDivergence, match=r"agent 'b'.*asks something the recording never saw \(recorded for step 1\)"):
        team.replay(traj.model_copy(update={"task": "another task"}), step=2, action="lead: done")
    edited = traj.model_copy(deep=True)
    edited.steps[1].content = "b did something else"
    with pytest.raises(ReplayDivergence, match="step 1, agent 'b'.*content differs"):
        team.replay(edited, step=2, action="lead: done")


def test_calls_whose_turn_never_comes_go_on_after_the_stall_limit_and_the_missing_step_is_reported(monkeypatch):
    monkeypatch.setattr("agentracer.record.ORDER_STALL_S", 0.3)
    crew = Crew(dict(SLOW_FIRST))
    team = agentracer.trace(lambda: crew)
    traj = team.run("split the work")
    del crew.delays["b"]  # b, recorded first, never runs now: a and c wait for a step that does not come
    with pytest.raises(ReplayDivergence, match=r"step 0, agent 'b'.*never made this step.*later ones \(\[1, 2, 3\]\)"):
        team.replay(traj, step=3, action="lead: done")


def test_a_replay_that_never_makes_a_step_some_later_step_came_before_is_a_divergence(monkeypatch):
    monkeypatch.setattr("agentracer.record.ORDER_STALL_S", 0.3)
    crew = Crew({"a": 0.0, "b": 0.0}, sync_in_loop=True)
    team = agentracer.trace(lambda: crew)
    traj = team.run("split the work")
    crew.delays = {"b": 0.0}  # a, recorded first, never runs now
    with pytest.raises(ReplayDivergence, match=r"step 0, agent 'a'.*never made this step.*later ones \(\[1, 2\]\)"):
        team.replay(traj, step=2, action="lead: done")


class _Shift:
    """Workers of two turns each, who log their own failures and go on (as CAMEL Workforce workers do)."""

    def __init__(self, delays: dict[str, float]) -> None:
        self.delays = delays
        self.failures: list[str] = []


class _ShiftPlugin(_CrewPlugin):
    name = "shift"

    team_type = _Shift

    async def arun(self, team, task, run):
        async def worker(name: str) -> None:
            async def live():
                await asyncio.sleep(team.delays[name])
                return f"{name} done"

            try:
                for turn in range(2):
                    run.add_step(name, await run.acall_model(name, {"messages": [task, turn]}, live, TEXT_CODEC))
            except Exception as exc:
                team.failures.append(f"{name}: {type(exc).__name__}")

        await asyncio.gather(*[worker(name) for name in list(team.delays)])
        return "done"


register_plugin(_ShiftPlugin())


def test_a_divergence_stops_every_call_waiting_for_its_turn(monkeypatch):
    monkeypatch.setattr("agentracer.record.ORDER_STALL_S", 30.0)
    shift = _Shift({"a": 0.0, "b": 0.05, "c": 0.1})
    team = agentracer.trace(lambda: shift)
    traj = team.run("go")
    edited = traj.model_copy(deep=True)
    edited.steps[0].content = "a did something else"
    started = time.monotonic()
    with pytest.raises(ReplayDivergence, match="step 0, agent 'a'.*content differs"):
        team.replay(edited, step=len(traj.steps) - 1, action="c, again")
    assert time.monotonic() - started < 10  # (not one 30 s wait per worker)


def test_calls_waiting_for_a_step_that_never_comes_stall_once_together(monkeypatch):
    monkeypatch.setattr("agentracer.record.ORDER_STALL_S", 2.0)
    shift = _Shift({"a": 0.0, "b": 0.05, "c": 0.1})
    team = agentracer.trace(lambda: shift)
    traj = team.run("go")
    del shift.delays["a"]  # recorded first, it never runs now: four served calls wait for its steps
    started = time.monotonic()
    with pytest.raises(ReplayDivergence, match=r"step 0, agent 'a'.*never made this step.*\(\[2, 3, 4, 5\]\)"):
        team.replay(traj, step=len(traj.steps) - 1, action="c, again")
    assert time.monotonic() - started < 6  # (one stall, not one 2 s stall per waiting call)


def test_a_plugin_holds_a_step_no_model_call_makes_until_its_recorded_turn():
    crew = Crew({"a": 0.0}, events={"x": 0.1}, events_reach_their_turn=True)
    team = agentracer.trace(lambda: crew)
    traj = team.run("note it")
    crew.think["a"], crew.events["x"] = 0.2, 0.0  # x's event would come first (see the test above)
    new = team.replay(traj, step=0, action="a, replaced")
    assert [(s.agent, s.content) for s in new.steps[:2]] == [("a", "a, replaced"), ("x", "x noted the task")]


class _Leaver:
    """A team that leaves a task of its own running: it asks the model after the run has returned."""

    def __init__(self) -> None:
        self.live_calls = 0
        self.leftover: asyncio.Task | None = None


class _LeaverPlugin(_CrewPlugin):
    name = "leaver"

    team_type = _Leaver

    async def arun(self, team, task, run):
        async def live():
            team.live_calls += 1
            return "an answer"

        async def later():
            await asyncio.sleep(0.2)
            return await run.acall_model("late", {"messages": [task, "later"]}, live, TEXT_CODEC)

        run.add_step("a", await run.acall_model("a", {"messages": [task]}, live, TEXT_CODEC))
        run.add_step("b", await run.acall_model("b", {"messages": [task, "b"]}, live, TEXT_CODEC))
        team.leftover = asyncio.get_running_loop().create_task(later())
        return "done"


register_plugin(_LeaverPlugin())


def test_a_task_a_replayed_team_leaves_running_makes_no_model_call_after_the_replay_ended():
    leaver = _Leaver()
    team = agentracer.trace(lambda: leaver)

    async def replay_and_wait():
        traj = await team.arun("go")
        await asyncio.sleep(0.4)  # the recording's leftover task calls its model (a recording passes it through)
        leaver.live_calls = 0
        await team.areplay(traj, step=1, action="b, again")
        with pytest.raises(agentracer.ReplayError, match="'late' asked its model after this replay ended"):
            await leaver.leftover

    asyncio.run(replay_and_wait())
    assert leaver.live_calls == 0


@dataclass
class _Board:
    """Two agents started together: the writer asks its model, then pins its answer to the board; the reader reads the
    board as it starts, and asks its model about what it read; then a lead closes. ``waits``: whether the writer's model lets the event
    loop run other tasks before it answers (every network client does; a scripted one may not)."""

    waits: bool
    live: int = 0


class _BoardPlugin(_CrewPlugin):
    name = "board"
    team_type = _Board

    async def arun(self, team, task, run):
        board: list[str] = []

        async def answer(text):
            team.live += 1
            if team.waits:
                await asyncio.sleep(0)
            return text

        async def writer():
            board.append(await run.acall_model("writer", {"messages": [task]}, lambda: answer("pinned"), TEXT_CODEC))
            run.add_step("writer", board[-1])

        async def reader():
            read = f"the board holds {board}"
            run.add_step("reader", await run.acall_model("reader", {"messages": [task, read]}, lambda: answer(read),
                                                         TEXT_CODEC))

        await asyncio.gather(writer(), reader())
        run.add_step("lead", await run.acall_model("lead", {"messages": [task]}, lambda: answer("done"), TEXT_CODEC))
        return "done"


register_plugin(_BoardPlugin())


@pytest.mark.parametrize("waits", [True, False])
def test_a_served_call_lets_the_other_tasks_run_exactly_when_its_recorded_call_did(waits):
    """A call that waited (a network client) is served after a wait, so the reader reads the board as it did in the
    recording (empty); one that never waited (a scripted client) is served at once (the board holds its answer)."""
    board = _Board(waits)
    team = agentracer.trace(lambda: board)
    traj = team.run("go")
    assert [c.suspended for c in traj.model_calls()] == [waits, waits, waits]
    read = next(s.content for s in traj.steps if s.agent == "reader")
    assert read == ("the board holds []" if waits else "the board holds ['pinned']")
    board.live = 0
    new = team.replay(traj, step=2, action="closed")  # (strict: the reader's served call asks what it asked)
    assert [(s.agent, s.content) for s in new.steps[:2]] == [(s.agent, s.content) for s in traj.steps[:2]]
    assert board.live == 0 and [c.suspended for c in new.model_calls()] == [waits, waits, waits]


class _Failing:
    """An agent whose model call fails at once (a 400), and one that answers."""


class _FailingPlugin(_CrewPlugin):
    name = "failing-call"
    team_type = _Failing

    async def arun(self, team, task, run):
        async def refused():
            raise RuntimeError("bad request")

        async def answer():
            return "answered"

        try:
            await run.acall_model("d", {"messages": [task]}, refused, TEXT_CODEC)
        except Exception:  # (a replay raises the recorded failure as a RecordedModelError)
            run.add_step("d", "d went on without it")
        run.add_step("e", await run.acall_model("e", {"messages": [task]}, answer, TEXT_CODEC))
        return "done"


register_plugin(_FailingPlugin())


def test_a_served_call_that_failed_keeps_how_it_was_recorded_to_wait():
    """(It lost it: a replay of the replay then waited where the recording never did.)"""
    team = agentracer.trace(lambda: _Failing())
    traj = team.run("go")
    assert [(c.agent, c.suspended, bool(c.error)) for c in traj.model_calls()] == [("d", False, True), ("e", False, False)]
    new = team.replay(traj, step=1, action="replaced")
    assert [(c.agent, c.suspended, c.source) for c in new.model_calls()] == [("d", False, "cassette"),
                                                                            ("e", False, "replacement")]


def test_a_divergence_of_a_recording_older_than_1_1_says_its_calls_may_have_never_waited():
    """The board recorded with a model that never waits, as schema 1.0 kept it (no ``suspended``): served with a
    wait, the reader reads another board. The divergence says why that may be, and what to do."""
    board = _Board(False)
    team = agentracer.trace(lambda: board)
    traj = team.run("go")
    for call in traj.model_calls():
        call.suspended = None
    with pytest.raises(ReplayDivergence, match="older than schema 1.1 .* record it again"):
        team.replay(traj, step=2, action="closed")


def test_a_sync_model_call_is_recorded_as_one_that_did_not_wait():
    """(It was None, as in a recording older than 1.1: a divergence of a fresh sync recording then blamed its age.)"""
    crew = Crew({"a": 0.0}, sync_in_loop=True)
    traj = agentracer.trace(lambda: crew).run("go")
    assert {c.suspended for c in traj.model_calls() if c.agent == "a"} == {False}
