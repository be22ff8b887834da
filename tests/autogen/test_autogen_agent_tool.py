"""An agent run as a tool (``AgentTool``): its model calls are its own, so its steps replay like any agent's."""

from __future__ import annotations

import agentracer
from ag_helpers import CountingClient, RuleClient, tool_call
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_agentchat.tools import AgentTool
from autogen_core.models import FunctionExecutionResultMessage

CAPITALS = {"Switzerland": "Bern", "Denmark": "Copenhagen"}


def browser(messages):
    query = str(messages[-1].content)
    if "flag" in query:
        return "Switzerland"
    return next((city for country, city in CAPITALS.items() if country in query), "not found")


def researcher(messages):
    last = messages[-1]
    if not isinstance(last, FunctionExecutionResultMessage):
        return tool_call("Browser", "c1", task="the flag that is red with a white cross")
    found = last.content[0].content.split()[-1]
    if found in CAPITALS:
        return tool_call("Browser", "c2", task=f"the capital of {found}")
    return f"The capital is {found}."


def make_researcher():
    browsing = AssistantAgent("Browser", model_client=RuleClient(browser), description="Browses the web.")
    agent = AssistantAgent("Researcher", model_client=RuleClient(researcher, tools=True), tools=[AgentTool(browsing)],
                           max_tool_iterations=3)
    return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(6))


def test_the_tool_agents_model_calls_are_its_own_and_its_message_can_be_replaced():
    traced = agentracer.trace(make_researcher)
    traj = traced.run("Which capital?")
    shape = [(s.agent, s.kind) for s in traj.steps[:10]]
    assert shape == [("user", "message"), ("Researcher", "tool_call"), ("user", "message"), ("Browser", "message"),
                     ("Researcher", "tool_result"), ("Researcher", "tool_call"), ("user", "message"),
                     ("Browser", "message"), ("Researcher", "tool_result"), ("Researcher", "message")]
    made_by = [[c.agent for c in s.model_calls] for s in traj.steps[:10]]
    assert made_by == [[], ["Researcher"], [], ["Browser"], [], ["Researcher"], [], ["Browser"], [], ["Researcher"]]

    CountingClient.live = 0
    new = traced.replay(traj, step=3, action="Denmark")
    assert new.steps[3].replaced and new.steps[3].model_calls[0].source == "replacement"
    assert [c.source for s in new.steps[:3] for c in s.model_calls] == ["cassette"]
    assert new.steps[4].content == "Browser: Denmark" and new.steps[7].content == "Copenhagen"
    assert new.steps[9].content == "The capital is Copenhagen."
