"""Through the network path of a real deployment: CAMEL's OpenAI-compatible backend talking to a loopback server."""

from __future__ import annotations

from typing import Any

import agentracer
import pytest
from agentracer.testing import OpenAIServer
from camel.agents import ChatAgent
from camel.messages import BaseMessage
from camel.models import OpenAICompatibleModel
from camel.models.stub_model import StubTokenCounter
from camel.societies import RolePlaying
from camel_teams import ROLE_TASK, calculator_answer, instructor_answer, poet_answer, round_trips

from agentracer_plugins.camel import with_options

API_KEY = "sk-agentracer-test-0123456789abcdef"


def http_model(server: OpenAIServer) -> OpenAICompatibleModel:
    # CAMEL's default token counter downloads a tiktoken table; offline, count with CAMEL's stub counter
    return OpenAICompatibleModel("scripted", {"temperature": 0.0}, api_key=API_KEY, url=server.base_url,
                                 token_counter=StubTokenCounter())


def from_request(answer: Any) -> Any:
    return lambda request: answer(request["messages"])


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first integer.
        b: the second integer.
    """
    return a + b


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_chat_agent_with_tools_over_http(mode: str) -> None:
    with OpenAIServer(from_request(calculator_answer)) as server:
        def make_agent() -> Any:
            system = BaseMessage.make_assistant_message("Calculator", "You add numbers with your tools.")
            return with_options(ChatAgent(system, model=http_model(server), tools=[add]), mode=mode)

        traced = agentracer.trace(make_agent)
        traj = traced.run("Please add 40 and 2")
        assert [s.kind for s in traj.steps] == ["message", "tool_call", "tool_result", "message"]
        assert traj.steps[3].content == "The sum is 42."
        assert len(server.requests) == 2
        assert server.requests[1]["messages"][-1]["role"] == "tool"
        assert server.requests[0]["tools"][0]["function"]["name"] == "add"
        assert API_KEY not in traj.to_json() and round_trips(traj)

        new = traced.replay(traj, step=3, action="The sum is forty-two.")
        assert len(server.requests) == 2  # nothing live: prefix served, step 3 replaced
        assert new.steps[3].content == "The sum is forty-two."


def test_role_playing_over_http_replays_with_no_prefix_requests() -> None:
    with OpenAIServer(from_request(poet_answer)) as poet, OpenAIServer(from_request(instructor_answer(3))) as editor:
        def make_society() -> Any:
            return RolePlaying("Poet", "Editor", task_prompt=ROLE_TASK, with_task_specify=False,
                               assistant_agent_kwargs={"model": http_model(poet)},
                               user_agent_kwargs={"model": http_model(editor)})

        traced = agentracer.trace(make_society)
        traj = traced.run(ROLE_TASK)
        assert [s.agent for s in traj.steps] == ["Editor", "Poet"] * 4
        recorded = len(poet.requests) + len(editor.requests)
        assert recorded == 8

        new = traced.replay(traj, step=3, action="Solution: replaced line. Next request.")
        live = len(poet.requests) + len(editor.requests) - recorded
        assert live == len(new.steps) - 4
        assert all(c.source == "cassette" for s in new.steps[:3] for c in s.model_calls)
        assert any("replaced line" in str(m["content"]) for m in editor.requests[recorded // 2]["messages"])
