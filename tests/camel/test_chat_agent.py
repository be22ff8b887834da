"""A single ChatAgent with tools: sync and async steps, with and without step_timeout; replay of each step kind."""

from __future__ import annotations

import json

import agentracer
import pytest
from agentracer import ReplayError, TeamRunError
from camel_teams import Ledger, make_calculator, round_trips

TASK = "Please add 2 and 3"


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("step_timeout", [None, 30.0])
def test_records_message_tool_call_and_result(ledger: Ledger, mode: str, step_timeout: float | None) -> None:
    traced = agentracer.trace(make_calculator, ledger, step_timeout=step_timeout, mode=mode)
    traj = traced.run(TASK)

    assert traj.framework == "camel"
    assert [a.name for a in traj.agents] == ["Calculator"]
    assert traj.agents[0].tools == ["add", "mul"]
    assert [(s.agent, s.kind) for s in traj.steps] == [
        ("user", "message"), ("Calculator", "tool_call"), ("Calculator", "tool_result"), ("Calculator", "message")]
    assert traj.steps[0].content == TASK
    assert traj.steps[1].tool_calls[0].name == "add" and traj.steps[1].tool_calls[0].arguments == {"a": 2, "b": 3}
    assert traj.steps[2].tool_results[0].content == 5
    assert traj.steps[2].tool_results[0].call_id == traj.steps[1].tool_calls[0].id
    assert traj.steps[3].content == "The sum is 5."
    assert traj.outcome.answer == "The sum is 5."
    # each model call is attached to the step it produced
    assert [len(s.model_calls) for s in traj.steps] == [0, 1, 0, 1]
    second = traj.steps[3].model_calls[0]
    assert second.agent == "Calculator" and second.call_index == 1 and second.request["messages"][-1]["role"] == "tool"
    assert traj.steps[3].usage.completion_tokens == 5
    assert second.usage == agentracer.Usage(prompt_tokens=10, completion_tokens=5)
    assert ledger.live_calls == 2 and ledger.tool_runs == [("add", {"a": 2, "b": 3})]
    assert round_trips(traj)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_replay_final_message_serves_prefix_from_the_recording(ledger: Ledger, mode: str) -> None:
    traced = agentracer.trace(make_calculator, ledger, mode=mode, step_timeout=30.0)
    traj = traced.run(TASK)
    ledger.reset()

    new = traced.replay(traj, step=3, action="The sum is 6.")

    assert ledger.live_calls == 0
    assert [s.content for s in new.steps[:3]] == [s.content for s in traj.steps[:3]]
    assert new.steps[3].content == "The sum is 6." and new.steps[3].replaced
    assert new.steps[1].model_calls[0].source == "cassette"
    assert new.steps[3].model_calls[0].source == "replacement"
    assert new.replay.parent_id == traj.id and new.replay.step == 3
    assert new.outcome.answer == "The sum is 6."
    assert round_trips(new)
    # tools run live unless asked otherwise
    assert ledger.tool_runs == [("add", {"a": 2, "b": 3})]


def test_replay_with_a_different_tool_call_runs_it_live(ledger: Ledger) -> None:
    traced = agentracer.trace(make_calculator, ledger)
    traj = traced.run(TASK)
    ledger.reset()

    new = traced.replay(traj, step=1, action={"tool_calls": [{"name": "mul", "arguments": {"a": 4, "b": 5}}]})

    assert new.steps[1].kind == "tool_call" and new.steps[1].tool_calls[0].name == "mul"
    assert new.steps[2].tool_results[0].content == 20
    assert new.steps[3].content == "The sum is 20."
    assert ledger.tool_runs == [("mul", {"a": 4, "b": 5})]
    assert ledger.live_calls == 1  # only the call after the replaced step


def test_replay_a_tool_result_does_not_run_the_tool(ledger: Ledger) -> None:
    traced = agentracer.trace(make_calculator, ledger)
    traj = traced.run(TASK)
    ledger.reset()

    new = traced.replay(traj, step=2, action="41")

    assert new.steps[2].replaced and new.steps[2].content == "41"
    assert new.steps[3].content == "The sum is 41."
    assert ledger.tool_runs == []
    assert ledger.live_calls == 1


def test_serve_tools_keeps_recorded_tool_results(ledger: Ledger) -> None:
    traced = agentracer.trace(make_calculator, ledger)
    traj = traced.run(TASK)
    ledger.reset()

    new = traced.replay(traj, step=3, action="done", serve_tools=True)

    assert ledger.tool_runs == [] and ledger.live_calls == 0
    assert new.steps[2].content == 5
    assert new.metadata["replay_stats"]["tools_served"] == 1


def test_replacing_the_task_step(ledger: Ledger) -> None:
    traced = agentracer.trace(make_calculator, ledger)
    traj = traced.run(TASK)

    new = traced.replay(traj, step=0, action="Please add 10 and 20")

    assert new.steps[0].content == "Please add 10 and 20" and new.steps[0].replaced
    assert new.steps[-1].content == "The sum is 30."
    # the task's step takes a text: anything else is the replay's error (not a failed run of the team), before any
    # model is asked, however the team's own errors are reported
    ledger.reset()
    reporting = agentracer.trace(make_calculator, ledger, raise_on_error=False)
    with pytest.raises(ReplayError, match="step 0 is the task: its replacement must be a text"):
        reporting.replay(traj, step=0, action={"tool_calls": [{"name": "add", "args": {}}]})
    assert ledger.live_calls == 0


def test_bad_replays_raise_specific_errors(ledger: Ledger) -> None:
    traced = agentracer.trace(make_calculator, ledger)
    traj = traced.run(TASK)

    with pytest.raises(ReplayError, match="out of range"):
        traced.replay(traj, step=4, action="x")
    other = traj.model_copy(update={"framework": "autogen"})
    with pytest.raises(ReplayError, match="autogen"):
        traced.replay(other, step=1, action="x")
    renamed = traj.model_copy(deep=True)
    renamed.agents[0].name = "Adder"
    with pytest.raises(ReplayError, match="team shape"):
        traced.replay(renamed, step=1, action="x")


def test_a_failing_agent_is_recorded_as_the_outcome(ledger: Ledger) -> None:
    traced = agentracer.trace(make_calculator, ledger, fail_after_tool=True)
    with pytest.raises(TeamRunError) as info:
        traced.run(TASK)
    traj = info.value.trajectory
    assert [s.kind for s in traj.steps] == ["message", "tool_call", "tool_result", "event"]
    assert traj.outcome.success is False and "the model broke" in traj.outcome.error
    failed = traj.steps[-1]  # the call that raised, at its agent, where the run stopped
    assert failed.metadata == {"failed_model_call": True} and failed.agent == traj.steps[1].agent
    assert failed.model_calls[0].error.startswith("RuntimeError") and not traj.unattached_calls

    quiet = agentracer.trace(make_calculator, ledger, fail_after_tool=True, raise_on_error=False)
    traj = quiet.run(TASK)
    assert len(traj.steps) == 4 and "the model broke" in traj.outcome.error


def test_hooks_pass_through_outside_a_run(ledger: Ledger) -> None:
    agentracer.trace(make_calculator, ledger).run(TASK)  # installs the hooks
    agent = make_calculator(ledger).team
    response = agent.step("Please add 1 and 1")
    assert response.msgs[0].content == "The sum is 2."
    assert agentracer.current_run() is None


def test_a_replacement_tool_call_of_a_tool_the_agent_lacks_is_refused_before_anything_runs(ledger: Ledger) -> None:
    traced = agentracer.trace(make_calculator, ledger)
    traj = traced.run(TASK)
    ledger.reset()
    with pytest.raises(ReplayError, match=r"calls 'mull', which 'Calculator' does not have \(its tools: add, mul\)"):
        traced.replay(traj, step=1, action={"tool_calls": [{"name": "mull", "arguments": {"a": 4, "b": 5}}]})
    assert ledger.tool_runs == [] and ledger.live_calls == 0


def test_replacing_a_step_with_what_it_was_gives_the_recorded_run_even_where_camel_counts_tokens(
        tmp_path, monkeypatch) -> None:
    """CAMEL counts its context from the usage its model reports and summarises its memory by that count: a replaced
    answer reports the recorded prompt's tokens (and its own length's), so the same action takes the same path."""
    monkeypatch.chdir(tmp_path)  # CAMEL writes its summaries under ./context_files
    import json
    import re

    from camel.agents import ChatAgent
    from camel.messages import BaseMessage
    from camel.utils import BaseTokenCounter

    from agentracer_plugins.camel.testing import ScriptedModel

    class LengthCounter(BaseTokenCounter):
        def count_tokens_from_messages(self, messages):
            return sum(len(str(m.get("content") or "")) // 4 + 5 for m in messages)

        def encode(self, text):
            return [0] * (len(text) // 4 + 1)

        def decode(self, ids):
            return ""

    def answer(messages):
        if messages[-1].get("role") == "user" and "summar" in str(messages[-1].get("content")).lower():
            return "SUMMARY"
        seen = sorted(set(re.findall(r"PAGE(\d)", json.dumps(messages))))
        if len(seen) < 3:
            return {"tool_calls": [{"name": "fetch", "arguments": {"page": len(seen) + 1}, "id": f"c{len(seen)}"}]}
        return f"done, saw {seen}"

    def build():
        def fetch(page: int) -> str:
            """Fetch a page.

            Args:
                page: which.
            """
            return f"PAGE{page} " + "lorem ipsum " * 60

        model = ScriptedModel([answer], cycle=True, name="m")
        model._token_counter = LengthCounter()
        return ChatAgent(BaseMessage.make_assistant_message("Reader", "You read pages."), model=model, tools=[fetch],
                         token_limit=600)

    traced = agentracer.trace(build)
    traj = traced.run("read 3 pages")
    same = {"tool_calls": [{"name": c.name, "arguments": c.arguments} for c in traj.steps[1].tool_calls]}
    new = traced.replay(traj, step=1, action=same)
    assert [(s.agent, s.kind, s.content) for s in new.steps] == [(s.agent, s.kind, s.content) for s in traj.steps]


def test_what_a_timed_out_sync_step_records_after_its_timeout_is_an_event_the_team_never_got() -> None:
    """CAMEL's sync ``step`` with ``step_timeout`` raises TimeoutError only once its worker thread has finished: the
    answer that came after the timeout is recorded, as an event marked ``after_step_timeout``, not as a message."""
    import time

    from camel.agents import ChatAgent

    from agentracer_plugins.camel import with_options
    from agentracer_plugins.camel.testing import ScriptedModel

    def slow_after_the_tool(messages):
        if messages[-1].get("role") == "tool":
            time.sleep(0.6)
            return "a late answer"
        return {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}, "id": "c1"}]}

    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: the first.
            b: the second.
        """
        return a + b

    def build():
        agent = ChatAgent("You add.", model=ScriptedModel([slow_after_the_tool], cycle=True), tools=[add],
                          step_timeout=0.3)
        return with_options(agent, mode="sync")

    traj = agentracer.trace(build, raise_on_error=False).run("add 1 and 2")
    assert "TimeoutError" in traj.outcome.error
    assert [(s.kind, s.content) for s in traj.steps[2:]] == [("tool_result", 3), ("event", "a late answer")]
    assert traj.steps[3].metadata["after_step_timeout"] is True
    assert "after_step_timeout" not in traj.steps[2].metadata


def test_a_tool_call_put_in_place_of_the_final_answer_has_an_id_of_its_own(ledger: Ledger) -> None:
    """The recorded call was call_0, and so was the replacement's: CAMEL's memory gave the earlier call's result to
    the new call and the model was sent a call with no result."""
    traced = agentracer.trace(make_calculator, ledger, mode="sync", raise_on_error=False)
    traj = traced.run("Add 2 and 3")
    new = traced.replay(traj, step=3, action={"tool_calls": [{"name": "mul", "arguments": {"a": 2, "b": 3}}]})
    recorded_ids = {c.id for s in traj.steps for c in s.tool_calls}
    (replaced,) = new.steps[3].tool_calls
    assert replaced.id not in recorded_ids and new.outcome.error is None
    result = next(s for s in new.steps[4:] if s.tool_results)
    assert [(r.call_id, r.content) for r in result.tool_results] == [(replaced.id, 6)]


def make_failing_tools(ledger: Ledger, mode: str = "auto", stream: bool = False):
    from camel.agents import ChatAgent
    from camel.messages import BaseMessage

    from agentracer_plugins.camel import with_options

    def divide(a: int, b: int) -> float:
        """Divide two integers.

        Args:
            a: the dividend.
            b: the divisor.
        """
        return a / b

    def answer(messages):
        tools = [m for m in messages if m.get("role") == "tool"]
        if not tools:
            return {"tool_calls": [{"name": "divide", "arguments": {"a": 1, "b": 0}}]}
        if len(tools) == 1:
            return {"tool_calls": [{"name": "no_such_tool", "arguments": {}}, {"name": "divide",
                                                                               "arguments": {"a": 6, "b": 3}}]}
        return "done"

    system = BaseMessage.make_assistant_message("Divider", "You divide numbers with your tools.")
    return with_options(ChatAgent(system, model=ledger.model(answer, "divider", stream), tools=[divide]), mode=mode)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_tool_that_raises_and_an_unknown_tool_are_error_results(ledger: Ledger, mode: str, stream: bool) -> None:
    """CAMEL catches a tool's exception and hands the model a text about it: the result is an error, as the AutoGen
    plugin records the same failure (it was is_error=False)."""
    traj = agentracer.trace(make_failing_tools, ledger, mode=mode, stream=stream).run("divide 1 by 0")
    results = [r for s in traj.steps for r in s.tool_results]
    unknown = [] if stream else [("no_such_tool", True)]  # (CAMEL's streaming path gives the model no result for it)
    assert [(r.name, r.is_error) for r in results] == [("divide", True), *unknown, ("divide", False)]
    assert "division by zero" in str(results[0].content) and results[-1].content == 2.0
    assert round_trips(traj)


def test_a_served_tool_result_with_a_field_named_like_a_secret_replays(ledger: Ledger) -> None:
    """Tool results were redacted by field name while the next request carries them as text (no field names): a
    replay serving the result rebuilt another request and diverged."""
    from camel.agents import ChatAgent
    from camel.messages import BaseMessage

    runs = []

    def answer(messages):
        tools_seen = sum(1 for m in messages if m.get("role") == "tool")
        if tools_seen < 2:  # (the second request carries the first result: it is before the replaced step)
            return {"tool_calls": [{"name": "account", "arguments": {"user": "bob"}, "id": f"c{tools_seen}"}]}
        return "Done: " + str(messages[-1]["content"])[:60]

    def make():
        def account(user: str) -> dict:
            """Look an account up.

            Args:
                user: the user.
            """
            runs.append(user)
            return {"user": user, "password": "plainpw", "session_token": "tok42"}

        system = BaseMessage.make_assistant_message("Clerk", "You look accounts up.")
        return ChatAgent(system, model=ledger.model(answer, "clerk"), tools=[account])

    team = agentracer.trace(make)
    traj = team.run("find bob")
    runs.clear()
    new = team.replay(traj, step=len(traj.steps) - 1, action="done", serve_tools=True)
    assert runs == [] and new.metadata["replay_stats"]["tools_served"] == 2 and new.steps[-1].content == "done"


@pytest.mark.parametrize("value", [(46.9, 7.4), {1: "one", 2: ("a", "b")}, [(1, 2)]])
def test_a_tool_result_that_json_would_change_is_recorded_as_the_model_saw_it_and_served_so(value: object) -> None:
    """The result was recorded as its JSON copy (a tuple became a list, number keys text): not what the model saw,
    and a replay serving it handed CAMEL that copy, which it rendered otherwise, and diverged."""
    from camel.agents import ChatAgent

    from agentracer_plugins.camel.testing import ScriptedModel

    runs = []

    def answer(messages):
        return "done" if sum(m["role"] == "tool" for m in messages) == 2 else {
            "tool_calls": [{"name": "where", "arguments": {}}]}

    def make():
        def where() -> object:
            """Where it is."""
            runs.append(1)
            return value

        return ChatAgent("sys", model=ScriptedModel([answer], cycle=True), tools=[where])

    team = agentracer.trace(make)
    traj = team.run("go")
    results = [s for s in traj.steps if s.kind == "tool_result"]
    seen = [m["content"] for m in traj.steps[-1].model_calls[0].request["messages"] if m["role"] == "tool"]
    assert [s.content for s in results] == [r.content for s in results for r in s.tool_results] == seen == [
        str(value)] * 2
    runs.clear()
    new = team.replay(traj, step=len(traj.steps) - 1, action="x", serve_tools=True)
    assert runs == [] and new.metadata["replay_stats"]["tools_served"] == 2 and new.steps[-1].content == "x"
    assert round_trips(new)
    # a recording made when results were kept as their JSON copy replays with live tools as it did then
    before = traj.model_copy(deep=True)
    copy = json.loads(json.dumps(value))
    for step in before.steps:
        if step.kind == "tool_result":
            step.content = copy
            step.tool_results = [r.model_copy(update={"content": copy}) for r in step.tool_results]
    again = team.replay(before, step=len(before.steps) - 1, action="x")
    assert len(runs) == 2 and [s.content for s in again.steps if s.kind == "tool_result"] == [copy] * 2
