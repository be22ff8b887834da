"""Offline AutoGen building blocks for the plugin's tests: scripted clients that count live calls, tools."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

from autogen_core import FunctionCall
from autogen_core.models import CreateResult, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

TOOL_MODEL_INFO = ModelInfo(vision=False, function_calling=True, json_output=False, family="unknown",
                            structured_output=False)


class CountingClient(ReplayChatCompletionClient):
    """A ReplayChatCompletionClient that counts the calls that reach it (a user's own subclass)."""

    live = 0  # across every instance: replay must leave it untouched for the prefix

    async def create(self, *args: Any, **kwargs: Any) -> CreateResult:
        CountingClient.live += 1
        return await super().create(*args, **kwargs)

    def create_stream(self, *args: Any, **kwargs: Any) -> Any:
        CountingClient.live += 1
        return super().create_stream(*args, **kwargs)


def counting(script: Sequence[str | CreateResult], *, tools: bool = False) -> CountingClient:
    return CountingClient(list(script), model_info=TOOL_MODEL_INFO if tools else None)


def tool_call(name: str, call_id: str = "call-1", **arguments: Any) -> CreateResult:
    """A scripted model answer that calls one tool."""
    return CreateResult(finish_reason="function_calls", cached=False,
                        usage=RequestUsage(prompt_tokens=3, completion_tokens=2),
                        content=[FunctionCall(id=call_id, name=name, arguments=json.dumps(arguments))])


TOOL_RUNS: list[tuple[str, dict[str, Any]]] = []


def add(a: int, b: int) -> int:
    """Add two integers."""
    TOOL_RUNS.append(("add", {"a": a, "b": b}))
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    TOOL_RUNS.append(("multiply", {"a": a, "b": b}))
    return a * b


BUILDS = itertools.count()


class RuleClient(CountingClient):
    """A scripted client whose answer depends on the conversation: ``rule(messages) -> str | CreateResult``."""

    def __init__(self, rule: Any, *, tools: bool = False) -> None:
        super().__init__([], model_info=TOOL_MODEL_INFO if tools else None)
        self.rule = rule

    async def create(self, messages: Any, **kwargs: Any) -> CreateResult:
        self.chat_completions, self._current_index = [self.rule(messages)], 0
        return await super().create(messages, **kwargs)


def after_tool(first: Any, then: str) -> Any:
    """A rule: ``first`` until the conversation ends with a tool result, then ``then``."""
    return lambda messages: then if type(messages[-1]).__name__ == "FunctionExecutionResultMessage" else first
