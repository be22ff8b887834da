"""Agents whose model streams (``stream=True``): each answer is recorded whole, replayed as a stream of chunks."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import agentracer
import pytest
from agentracer import ReplayError
from agentracer.testing import OpenAIServer
from camel.agents import ChatAgent
from camel.messages import BaseMessage
from camel.models import OpenAICompatibleModel
from camel.models.stub_model import StubTokenCounter
from camel_teams import (
    ROLE_TASK,
    Ledger,
    calculator_answer,
    make_calculator,
    make_role_play,
    make_workforce,
    round_trips,
)
from pydantic import BaseModel

from agentracer_plugins.camel import with_options
from agentracer_plugins.camel.codec import CODEC, assemble, chunks_of, completion

TASK = "Please add 2 and 3"
STEP_KINDS = [("user", "message"), ("Calculator", "tool_call"), ("Calculator", "tool_result"),
              ("Calculator", "message")]


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    with warnings.catch_warnings():  # CAMEL warns that stream_accumulate's default changed
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@pytest.mark.parametrize("answer", [
    completion("a text long enough to be cut into several parts", model="m", usage=(7, 9)),
    completion(None, [{"name": "add", "arguments": {"a": 2, "b": 3}}, {"name": "mul", "arguments": {"a": 4}}],
               model="m", usage=(1, 2)),
])
def test_chunks_add_up_to_the_completion_they_were_cut_from(answer: Any) -> None:
    chunks = chunks_of(answer, pieces=4)
    assert len(chunks) > 4 and chunks[-1].usage is not None
    assert CODEC.encode(assemble(chunks)) == CODEC.encode(answer)
    with pytest.raises(ValueError, match="before its first chunk"):
        assemble([])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_streaming_agent_is_recorded_whole_and_replayed_without_live_calls(ledger: Ledger, mode: str) -> None:
    traced = agentracer.trace(make_calculator, ledger, mode=mode, stream=True)
    traj = traced.run(TASK)

    assert [(s.agent, s.kind) for s in traj.steps] == STEP_KINDS
    assert traj.steps[1].tool_calls[0].arguments == {"a": 2, "b": 3}
    assert traj.steps[2].tool_results[0].content == 5
    assert traj.steps[3].content == "The sum is 5." and traj.outcome.answer == "The sum is 5."
    calls = [c for s in traj.steps for c in s.model_calls]
    assert len(calls) == 2 and all(c.request["stream"] is True for c in calls)
    assert calls[1].response["choices"][0]["message"]["content"] == "The sum is 5."  # the chunks, put together
    assert calls[1].usage == agentracer.Usage(prompt_tokens=10, completion_tokens=5)
    assert ledger.live_calls == 2 and round_trips(traj)
    ledger.reset()

    new = traced.replay(traj, step=3, action="The sum is 6.")
    assert ledger.live_calls == 0 and ledger.tool_runs == [("add", {"a": 2, "b": 3})]  # tools run live
    assert [c.source for s in new.steps for c in s.model_calls] == ["cassette", "replacement"]
    assert new.steps[3].content == "The sum is 6." and new.outcome.answer == "The sum is 6."
    ledger.reset()

    other = traced.replay(traj, step=1, action={"tool_calls": [{"name": "mul", "arguments": {"a": 4, "b": 5}}]})
    assert [(s.kind, s.content) for s in other.steps[2:]] == [("tool_result", 20), ("message", "The sum is 20.")]
    assert ledger.live_calls == 1 and ledger.tool_runs == [("mul", {"a": 4, "b": 5})]


def test_the_agents_caller_still_reads_the_answer_as_it_streams(ledger: Ledger) -> None:
    parts: list[str] = []

    def read_the_stream(agent: Any) -> str:
        for response in agent.step(TASK):
            parts.extend(m.content for m in response.msgs if m.content)
        return "".join(parts)

    agent = make_calculator(ledger, stream=True).team
    traj = agentracer.trace(lambda: with_options(agent, loop=read_the_stream)).run(TASK)
    assert len(parts) == 3 and "".join(parts) == "The sum is 5."  # the live chunks, as the model sent them
    assert traj.outcome.answer == "The sum is 5." and [s.kind for s in traj.steps][-1] == "message"


def test_replays_that_would_need_a_streaming_agents_tools_served_are_refused_before_anything_runs(
        ledger: Ledger) -> None:
    traced = agentracer.trace(make_calculator, ledger, stream=True)
    traj = traced.run(TASK)
    ledger.reset()
    with pytest.raises(ReplayError, match="tools always run live"):
        traced.replay(traj, step=3, action="The sum is 6.", serve_tools=True)
    with pytest.raises(ReplayError, match="step 2 is a tool result of 'Calculator'.*replace the tool call step"):
        traced.replay(traj, step=2, action="6")
    assert ledger.live_calls == 0 and ledger.tool_runs == []


@pytest.mark.parametrize("mode", ["sync", "auto"])
def test_a_streaming_role_play_stops_on_its_done_word_and_replays(ledger: Ledger, mode: str) -> None:
    """CAMEL's streaming replies hold increments (``stream_accumulate=False``): the rules read the whole text."""
    traced = agentracer.trace(make_role_play, ledger, mode=mode, stream=True)
    traj = traced.run(ROLE_TASK)
    assert [s.agent for s in traj.steps] == ["Editor", "Poet"] * 4
    assert traj.steps[6].content == "CAMEL_TASK_DONE" and traj.outcome.stop_reason == "done"
    assert traj.outcome.answer == "Solution: line 4 of the poem. Next request."
    live = ledger.live_calls
    new = traced.replay(traj, step=3, action="Solution: a line of my own. Next request.")
    assert [c.source for s in new.steps[:4] for c in s.model_calls] == ["cassette"] * 3 + ["replacement"]
    assert ledger.live_calls - live == 4 and new.steps[3].content == "Solution: a line of my own. Next request."


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_streaming_over_http_from_a_loopback_server(mode: str) -> None:
    def answer(request: dict[str, Any]) -> Any:
        return calculator_answer(request["messages"])

    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: the first integer.
            b: the second integer.
        """
        return a + b

    with OpenAIServer(answer) as server:
        def make_agent() -> Any:
            model = OpenAICompatibleModel(
                "scripted", {"stream": True, "stream_options": {"include_usage": True}},
                api_key="sk-agentracer-test-0123456789abcdef", url=server.base_url, token_counter=StubTokenCounter())
            system = BaseMessage.make_assistant_message("Calculator", "You add numbers with your tools.")
            return with_options(ChatAgent(system, model=model, tools=[add]), mode=mode)

        traced = agentracer.trace(make_agent)
        traj = traced.run("Please add 40 and 2")
        assert [s.kind for s in traj.steps] == ["message", "tool_call", "tool_result", "message"]
        assert traj.steps[3].content == "The sum is 42." and traj.steps[2].tool_results[0].content == 42
        assert all(r.get("stream") is True for r in server.requests) and len(server.requests) == 2
        assert traj.steps[3].model_calls[0].usage.completion_tokens > 0  # from the stream's usage chunk
        assert "sk-agentracer-test" not in traj.to_json() and round_trips(traj)

        new = traced.replay(traj, step=3, action="The sum is forty-two.")
        assert len(server.requests) == 2 and new.outcome.answer == "The sum is forty-two."


def test_a_workforce_worker_whose_model_streams_is_recorded_under_its_node(ledger: Ledger) -> None:
    build = ledger.model
    ledger.model = lambda answer, name, stream=False: build(answer, name, stream=name == "adder")  # type: ignore[method-assign]
    traj = agentracer.trace(make_workforce, ledger).run("Compute 2+3 and report the sum")
    (adder,) = [s for s in traj.steps if s.agent.startswith("worker-0")]
    assert adder.agent == "worker-0 (Adder: adds numbers)" and '"content": "5"' in adder.content
    assert adder.model_calls[0].request["stream"] is True
    assert all("stream" not in c.request for s in traj.steps if s is not adder for c in s.model_calls)
    assert traj.outcome.stop_reason == "task DONE"


class Total(BaseModel):
    total: int


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_structured_output_streams_through_a_stand_in_for_the_stream_manager(mode: str) -> None:
    """With ``response_format`` a streaming model answers with a stream manager of events (openai's own, over HTTP
    here): CAMEL gets the events it would have had, and a replay hands it the replaced answer parsed."""
    parsed: list[Any] = []

    async def ask_async(agent: Any) -> str:
        response = await (await agent.astep("add 40 and 2", response_format=Total))
        parsed.append(response.msgs[0].parsed)
        return response.msgs[0].content

    def ask(agent: Any) -> str:
        last = list(agent.step("add 40 and 2", response_format=Total))[-1]
        parsed.append(last.msgs[0].parsed)
        return last.msgs[0].content

    with OpenAIServer(lambda request: '{"total": 42}') as server:
        def make_agent() -> Any:
            model = OpenAICompatibleModel("scripted", {"stream": True}, api_key="sk-agentracer-test-0123456789abcdef",
                                          url=server.base_url, token_counter=StubTokenCounter())
            agent = ChatAgent(BaseMessage.make_assistant_message("Adder", "You add numbers."), model=model)
            return with_options(agent, loop=ask_async if mode == "async" else ask)

        traced = agentracer.trace(make_agent)
        traj = traced.run("add 40 and 2")
        assert [(s.agent, s.content) for s in traj.steps] == [("Adder", '{"total": 42}')]
        assert parsed == [Total(total=42)] and server.requests[0]["stream"] is True
        assert traj.outcome.answer == '{"total": 42}'

        new = traced.replay(traj, step=0, action='{"total": 7}')
        assert len(server.requests) == 1 and parsed[-1] == Total(total=7)
        assert new.steps[0].model_calls[0].source == "replacement" and new.outcome.answer == '{"total": 7}'


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_streaming_agents_answer_is_its_whole_message_not_its_last_increment(mode: str) -> None:
    """CAMEL's default ``stream_accumulate=False`` leaves only the last increment in the agent's final reply."""
    text = "The final answer, after careful thought, is forty-two."
    with OpenAIServer(text) as server:
        def make_agent() -> Any:
            model = OpenAICompatibleModel("scripted", {"stream": True}, api_key="k", url=server.base_url,
                                          token_counter=StubTokenCounter())
            return with_options(ChatAgent("You answer.", model=model, stream_accumulate=False), mode=mode)

        traj = agentracer.trace(make_agent).run("question?")
    assert traj.steps[-1].content == text and traj.outcome.answer == text


def test_async_mode_on_a_streaming_society_is_refused_before_any_model_call(ledger: Ledger, tmp_path: Path) -> None:
    """A usage error, not the team's failure: raised as itself even where the team's errors are outcomes, and no
    failed run is stored (a dataset would have taken it for a run to attribute)."""
    from agentracer import JsonlStore, UsageError
    from camel_teams import make_role_play

    store = tmp_path / "runs.jsonl"
    traced = agentracer.trace(make_role_play, ledger, mode="async", stream=True, store=store, raise_on_error=False)
    with pytest.raises(UsageError, match="mode='async' cannot run a society with a streaming agent"):
        traced.run("t")
    assert ledger.live_calls == 0
    assert not store.exists() or list(JsonlStore(store)) == []
