"""A tool that runs an agent of its own (OWL's browser toolkit does): its result can be replaced and served."""

from __future__ import annotations

import agentracer
import pytest
from camel_teams import Ledger, make_researcher, round_trips

TASK = "Which country has a red flag with a white cross, and what is its capital?"
RECORDED = [("user", "message"), ("Researcher", "tool_call"), ("Browser", "message"), ("Researcher", "tool_result"),
            ("Researcher", "tool_call"), ("Browser", "message"), ("Researcher", "tool_result"),
            ("Researcher", "message")]


def sources(traj: agentracer.Trajectory) -> list[list[str]]:
    return [[c.source for c in s.model_calls] for s in traj.steps]


def test_the_tools_agent_is_recorded_between_the_tool_call_and_its_result(ledger: Ledger) -> None:
    traj = agentracer.trace(make_researcher, ledger).run(TASK)
    assert [(s.agent, s.kind) for s in traj.steps] == RECORDED
    assert [traj.steps[i].content for i in (2, 3, 5, 6)] == ["Switzerland", "Switzerland", "Bern", "Bern"]
    assert traj.outcome.answer == "The capital is Bern."


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("serve_tools", [False, True])
def test_replacing_its_result_does_not_run_the_tool_and_serves_its_agents_steps(
        ledger: Ledger, mode: str, serve_tools: bool) -> None:
    traced = agentracer.trace(make_researcher, ledger, mode=mode)
    traj = traced.run(TASK)
    ledger.reset()

    new = traced.replay(traj, step=3, action="Denmark", serve_tools=serve_tools)

    assert [(s.agent, s.kind) for s in new.steps] == RECORDED
    assert new.steps[2].content == "Switzerland" and not new.steps[2].replaced  # the recording's, not re-run
    assert new.steps[3].content == "Denmark" and new.steps[3].replaced
    assert [s.replaced for s in new.steps].count(True) == 1 and new.metadata["replay_stats"]["replacement"] == 1
    assert sources(new) == [[], ["cassette"], ["cassette"], [], ["live"], ["live"], [], ["live"]]
    assert ledger.tool_runs == [("browse", {"query": "the capital of Denmark"})]  # only the call after the step
    assert ledger.live_calls == 3 and new.steps[5].content == "Copenhagen"
    assert new.outcome.answer == "The capital is Copenhagen."
    assert round_trips(new)


def test_serve_tools_serves_the_tools_agent_too(ledger: Ledger) -> None:
    traced = agentracer.trace(make_researcher, ledger)
    traj = traced.run(TASK)
    ledger.reset()

    new = traced.replay(traj, step=7, action="It is Bern.", serve_tools=True)

    assert [(s.agent, s.kind, s.content) for s in new.steps[:7]] == [(s.agent, s.kind, s.content)
                                                                      for s in traj.steps[:7]]
    assert ledger.tool_runs == [] and ledger.live_calls == 0
    assert new.metadata["replay_stats"]["tools_served"] == 2
    assert new.outcome.answer == "It is Bern."


def test_replacing_the_tools_agents_message_runs_the_tool_with_it(ledger: Ledger) -> None:
    traced = agentracer.trace(make_researcher, ledger)
    traj = traced.run(TASK)
    ledger.reset()

    new = traced.replay(traj, step=2, action="Denmark")

    assert [(s.agent, s.kind) for s in new.steps] == RECORDED
    assert new.steps[2].replaced and new.steps[2].model_calls[0].source == "replacement"
    assert new.steps[3].content == "Denmark" and not new.steps[3].replaced  # what the tool returned
    assert [query for _, args in ledger.tool_runs for query in args.values()] == [
        "the flag that is red with a white cross", "the capital of Denmark"]
    assert new.outcome.answer == "The capital is Copenhagen."


def test_the_steps_a_tool_agent_makes_are_marked_as_its_tools(ledger: Ledger) -> None:
    traj = agentracer.trace(make_researcher, ledger).run("Which capital?")
    assert traj.metadata["tool_scopes"] is True
    marked = [(s.agent, s.metadata.get("inside_tool_of")) for s in traj.steps if s.metadata.get("inside_tool_of")]
    assert marked and all(owner != agent for agent, owner in marked)
    assert {owner for _, owner in marked} == {s.agent for s in traj.steps if s.kind == "tool_call"}


def test_a_tools_own_agent_without_a_role_name_is_told_apart_from_its_caller(ledger: Ledger) -> None:
    """Both built from plain-string system messages (OWL's browser agent is): both were recorded as 'assistant', and a
    replay of the inner agent's steps was checked against the caller's tools and prompt, and diverged."""
    from camel.agents import ChatAgent

    def inner_answer(messages):
        last = messages[-1]
        if last["role"] == "tool":
            return f"Expert says: {str(last['content'])[:40]}"
        return {"tool_calls": [{"name": "search", "arguments": {"query": str(last["content"])}, "id": "in1"}]}

    def outer_answer(messages):
        last = messages[-1]
        if last["role"] == "tool":
            return f"Final: {last['content']}"
        return {"tool_calls": [{"name": "ask_expert", "arguments": {"question": "moons of Mars"}, "id": "out1"}]}

    def build():
        def search(query: str) -> str:
            """Search the web.

            Args:
                query: what to look for.
            """
            return "Mars has 2 moons"

        inner = ChatAgent("You are an expert.", model=ledger.model(inner_answer, "inner"), tools=[search])

        def ask_expert(question: str) -> str:
            """Ask the expert.

            Args:
                question: the question.
            """
            inner.reset()
            return inner.step(question).msgs[0].content

        return ChatAgent("You are a manager.", model=ledger.model(outer_answer, "outer"), tools=[ask_expert])

    traced = agentracer.trace(build)
    traj = traced.run("How many moons has Mars?")
    inner_steps = [s for s in traj.steps if s.agent == "assistant #2"]
    assert inner_steps and {s.agent for s in traj.steps} == {"user", "assistant", "assistant #2"}
    assert [a.name for a in traj.agents] == ["assistant"]  # (the team's own agent; the expert is the tool's)
    for step in inner_steps:  # each of the expert's steps replays with what it recorded
        action = ({"tool_calls": [{"name": c.name, "arguments": c.arguments} for c in step.tool_calls]}
                  if step.tool_calls else step.content)
        if step.kind == "tool_result":
            continue
        again = traced.replay(traj, step=step.index, action=action)
        assert [(s.agent, s.text) for s in again.steps] == [(s.agent, s.text) for s in traj.steps]
