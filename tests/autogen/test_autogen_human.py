"""A human in the loop (``UserProxyAgent``): the input is recorded, served before step t, replaced at t."""

from __future__ import annotations

import agentracer
import pytest
from ag_helpers import RuleClient
from agentracer import ReplayError
from autogen_agentchat.agents import AssistantAgent, UserProxyAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat

ASKED: list[str] = []


def human(prompt: str) -> str:
    ASKED.append(prompt)
    return f"human answer #{len(ASKED)}"  # a human rarely types the same thing twice


def make_team():
    writer = AssistantAgent("writer", model_client=RuleClient(lambda m: "draft after: " + str(m[-1].content)))
    editor = AssistantAgent("editor", model_client=RuleClient(lambda m: "edited: " + str(m[-1].content)))
    return RoundRobinGroupChat([writer, UserProxyAgent("human", input_func=human), editor],
                               termination_condition=MaxMessageTermination(6))


def test_a_humans_input_is_recorded_served_before_t_and_replaceable_at_t():
    traced = agentracer.trace(make_team)
    ASKED.clear()
    traj = traced.run("write a slogan")
    assert [(s.agent, s.content) for s in traj.steps[1:4]] == [
        ("writer", "draft after: write a slogan"), ("human", "human answer #1"), ("editor", "edited: human answer #1")]
    (call,) = traj.steps[2].model_calls
    assert call.model == "human" and call.response == {"content": "human answer #1"}

    ASKED.clear()
    new = traced.replay(traj, step=4, action="REPLACED")
    assert [s.content for s in new.steps[:4]] == [s.content for s in traj.steps[:4]]
    assert len(ASKED) == 1 and new.steps[5].content == "human answer #1"  # only the human's turn after t is live

    ASKED.clear()
    new = traced.replay(traj, step=2, action="make it shorter")
    assert len(ASKED) == 1 and new.steps[2].replaced and new.steps[2].content == "make it shorter"
    assert new.steps[3].content == "edited: make it shorter"

    with pytest.raises(ReplayError, match="step 2 is a human's input .*must be a text"):
        traced.replay(traj, step=2, action={"tool_calls": [{"name": "x", "arguments": {}}]})
