"""Runs another tracer recorded: an AutoGen team instrumented by OpenInference's own AutoGen instrumentor (the one
Phoenix users run), its spans collected by agentracer's OpenTelemetry exporter, agree with agentracer's recording of
the same run; the tracer then reads the collected run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import agentracer
import pytest
from ag_helpers import add
from agentracer.formats.otel_collect import TrajectoryExporter
from agentracer.store import open_store
from agentracer.testing import OpenAIServer
from agentracer.tracer import locate
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.openai import OpenAIChatCompletionClient
from openinference.instrumentation.autogen_agentchat import AutogenAgentChatInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

REPLIES = {"planner": "Plan: add 2 and 2.", "coder": "2 + 2 = 5", "reviewer": "Looks right to me."}


def reply(request: dict) -> str:
    """Each agent's scripted answer, by the name its system message gives it."""
    return REPLIES[request["messages"][0]["content"].split()[-1]]


@pytest.fixture
def collected(tmp_path: Path) -> Iterator[TrajectoryExporter]:
    collector = TrajectoryExporter(tmp_path / "collected.jsonl")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(collector))
    instrumentor = AutogenAgentChatInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield collector
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def test_openinference_spans_of_a_team_agree_with_the_recording(collected: TrajectoryExporter) -> None:
    with OpenAIServer(reply) as server:
        def team() -> RoundRobinGroupChat:
            client = OpenAIChatCompletionClient(model="gpt-4o-mini-2024-07-18", base_url=server.base_url, api_key="sk-x")
            agents = [AssistantAgent(n, model_client=client, system_message=f"You are {n}") for n in REPLIES]
            return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(4))

        recorded = agentracer.trace(team).run("What is 2 + 2?")
    collected.force_flush()  # (rather than wait out the grace for spans that end after the run's root)
    [run] = list(open_store(collected.store.path))
    assert collected.collected == [run.id]
    assert [(s.agent, s.kind, s.content) for s in run.steps] == [(s.agent, s.kind, s.content) for s in recorded.steps]
    assert [s.agent for s in run.steps] == ["user", "planner", "coder", "reviewer"]
    assert run.task == "What is 2 + 2?" and run.outcome.answer == "Looks right to me." and run.framework is None
    calls = [c for s in run.steps for c in s.model_calls]
    assert [c.agent for c in calls] == ["planner", "coder", "reviewer"]
    assert calls[1].request["messages"][-1]["content"] == "Plan: add 2 and 2."  # what the coder was sent
    assert calls[1].usage.prompt_tokens > 0
    verdict = locate(run)
    assert verdict.agent in REPLIES and 0 <= verdict.step < len(run.steps)


def test_a_turn_with_a_tool_call_becomes_the_same_steps_as_recorded(collected: TrajectoryExporter) -> None:
    def responder(request: dict) -> Any:
        if request["messages"][-1]["role"] == "tool":
            return "the sum is " + request["messages"][-1]["content"]
        if request["messages"][0]["content"].endswith("coder"):
            return {"content": None, "tool_calls": [{"name": "add", "arguments": {"a": 20, "b": 22}}]}
        return "Plan: use add."

    with OpenAIServer(responder) as server:
        def team() -> RoundRobinGroupChat:
            client = OpenAIChatCompletionClient(model="gpt-4o-mini-2024-07-18", base_url=server.base_url, api_key="sk-x")
            return RoundRobinGroupChat([
                AssistantAgent("planner", model_client=client, system_message="You are planner"),
                AssistantAgent("coder", model_client=client, system_message="You are coder", tools=[add],
                               reflect_on_tool_use=True),
            ], termination_condition=MaxMessageTermination(4))

        recorded = agentracer.trace(team).run("add 20 and 22")
    collected.force_flush()  # (rather than wait out the grace for spans that end after the run's root)
    [run] = list(open_store(collected.store.path))
    steps = [(s.agent, s.kind, s.content) for s in run.steps]
    assert steps == [(s.agent, s.kind, s.content) for s in recorded.steps]
    assert ("coder", "tool_call", [{"name": "add", "arguments": {"a": 20, "b": 22}}]) in steps
    assert ("coder", "tool_result", "42") in steps and ("coder", "message", "the sum is 42") in steps
