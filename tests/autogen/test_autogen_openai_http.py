"""A real OpenAIChatCompletionClient talking HTTP to a loopback OpenAI-compatible server the test starts."""

from __future__ import annotations

import agentracer
import pytest
from ag_helpers import TOOL_RUNS, add
from agentracer.testing import OpenAIServer
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.openai import OpenAIChatCompletionClient

API_KEY = "sk-agentracer-test-0123456789abcdef"


def echo_turn(request):
    """Answer with the speaker's name and how many messages it was sent."""
    system = request["messages"][0]["content"]
    return f"{system.split()[-1]} answers after {len(request['messages'])} messages"


def client(server):
    return OpenAIChatCompletionClient(model="gpt-4o-mini-2024-07-18", base_url=server.base_url, api_key=API_KEY)


@pytest.mark.parametrize("stream", [False, True])
def test_http_team_records_and_replays_without_touching_the_server_for_the_prefix(stream):
    with OpenAIServer(echo_turn) as server:
        def team():
            shared = client(server)
            agents = [AssistantAgent(n, model_client=shared, system_message=f"You are {n}",
                                     model_client_stream=stream) for n in ("alpha", "beta")]
            return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(5))

        traced = agentracer.trace(team)
        traj = traced.run("count the messages")
        assert [s.content for s in traj.steps[1:]] == [
            "alpha answers after 2 messages", "beta answers after 3 messages",
            "alpha answers after 4 messages", "beta answers after 5 messages"]
        assert len(server.requests) == 4 and all(bool(r.get("stream")) == stream for r in server.requests)
        call = traj.steps[1].model_calls[0]
        assert call.model == "gpt-4o-mini-2024-07-18" and call.request.get("stream", False) == stream
        assert call.usage.prompt_tokens > 0 or stream  # a stream reports usage only when asked to
        assert API_KEY not in traj.to_json()

        before = len(server.requests)
        new = traced.replay(traj, step=3, action="alpha changes its mind")
        assert len(server.requests) - before == 1  # only step 4 reached the server
        assert [s.content for s in new.steps[:3]] == [s.content for s in traj.steps[:3]]
        assert new.steps[3].content == "alpha changes its mind"
        sent = [m["content"] for m in server.requests[-1]["messages"]]
        assert "alpha changes its mind" in sent


def test_http_tool_calls_round_trip():
    def responder(request):
        if request["messages"][-1]["role"] == "tool":
            return "the sum is " + request["messages"][-1]["content"]
        return {"content": None, "tool_calls": [{"name": "add", "arguments": {"a": 20, "b": 22}}]}

    with OpenAIServer(responder) as server:
        def team():
            agent = AssistantAgent("calc", model_client=client(server), tools=[add], reflect_on_tool_use=True)
            return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(2))

        traced = agentracer.trace(team)
        traj = traced.run("add 20 and 22")
        assert [s.kind for s in traj.steps] == ["message", "tool_call", "tool_result", "message"]
        assert traj.steps[1].tool_calls[0].arguments == {"a": 20, "b": 22}
        assert traj.steps[3].content == "the sum is 42"
        assert server.requests[0]["tools"][0]["function"]["name"] == "add"
        TOOL_RUNS.clear()
        before = len(server.requests)
        new = traced.replay(traj, step=1, action={"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]})
        assert TOOL_RUNS == [("add", {"a": 1, "b": 2})] and new.steps[3].content == "the sum is 3"
        assert len(server.requests) - before == 1
