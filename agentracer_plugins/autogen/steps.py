"""AutoGen messages and events as steps: text, tool calls and results, handoffs, summaries, ledgers.

A ``ThoughtEvent`` (a reasoning model's thought) comes from the same model output as the message or tool
call that follows it, so it is kept in that step's ``metadata["thought"]``, not made a step of its own:
replacing that step replaces the whole output.
"""

from __future__ import annotations

import json
from typing import Any

from agentracer import Run, ToolCall, ToolResult
from agentracer.schema import tool_calls_content
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    BaseTextChatMessage,
    HandoffMessage,
    ModelClientStreamingChunkEvent,
    MultiModalMessage,
    SelectSpeakerEvent,
    StopMessage,
    TextMessage,
    ThoughtEvent,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
    ToolCallSummaryMessage,
    UserInputRequestedEvent,
)
from autogen_agentchat.teams._group_chat._events import GroupChatMessage, GroupChatStart
from autogen_agentchat.teams._group_chat._magentic_one._prompts import ORCHESTRATOR_TASK_LEDGER_FULL_PROMPT
from autogen_core import FunctionCall
from autogen_core.models import FunctionExecutionResult

from .codec import LEDGER_INSTRUCTION_KEY
from .context import RunState

NOT_STEPS = (ModelClientStreamingChunkEvent, SelectSpeakerEvent, UserInputRequestedEvent)
TASK_LEDGER_OPENING = ORCHESTRATOR_TASK_LEDGER_FULL_PROMPT.strip().splitlines()[0]


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return raw


def _orchestrator_kind(text: str, orchestrator: str, state: RunState) -> tuple[str, dict[str, Any]]:
    if text.lstrip().startswith(TASK_LEDGER_OPENING):
        return "ledger", {}
    ledger = state.last_ledgers.get(orchestrator)
    if ledger is not None and text == ledger.get(LEDGER_INSTRUCTION_KEY, {}).get("answer"):
        return "instruction", {"progress_ledger": ledger}
    return "message", {}


_SHAPES: tuple[tuple[type, str], ...] = (  # the first that matches names a message type's shape
    (ToolCallRequestEvent, "tool_call"), (ToolCallExecutionEvent, "tool_result"), (HandoffMessage, "handoff"),
    (ToolCallSummaryMessage, "summary"), (ThoughtEvent, "thought"), (StopMessage, "stop"),
    (BaseTextChatMessage, "text"), (BaseChatMessage, "chat"), (BaseAgentEvent, "event"),
)
_SHAPE_OF: dict[type, str | None] = {}  # message type -> shape (None: not a step), filled as types appear


def _shape(kind: type) -> str | None:
    if issubclass(kind, NOT_STEPS):
        shape = None
    else:
        shape = next((name for base, name in _SHAPES if issubclass(kind, base)), None)
    _SHAPE_OF[kind] = shape
    return shape


def step_of(message: Any, state: RunState) -> dict[str, Any] | None:
    """Keyword arguments for ``Run.add_step`` describing ``message``, or None when it is not a step."""
    kind = type(message)
    shape = _SHAPE_OF[kind] if kind in _SHAPE_OF else _shape(kind)
    if shape is None:
        return None
    agent = message.source
    if shape == "thought":  # same model output as the agent's next step: kept with it
        state.thoughts[agent] = message.content
        return None
    metadata: dict[str, Any] = {"type": message.type}
    step: dict[str, Any] = {"agent": agent, "role": "user" if agent == "user" else "assistant", "metadata": metadata}
    if shape == "text":
        step["kind"], step["content"] = "message", message.content
        if state.orchestrators and agent in state.orchestrators:
            step["kind"], extra = _orchestrator_kind(message.content, agent, state)
            metadata.update(extra)
    elif shape == "tool_call":
        calls = [ToolCall(id=c.id, name=c.name, arguments=_arguments(c.arguments)) for c in message.content]
        step.update(kind="tool_call", tool_calls=calls,
                    content=tool_calls_content(calls))
    elif shape == "tool_result":
        results = [ToolResult(call_id=r.call_id, name=r.name, content=r.content, is_error=bool(r.is_error))
                   for r in message.content]
        step.update(kind="tool_result", role="tool", tool_results=results,
                    content="\n".join(str(r.content) for r in results))
    elif shape == "handoff":
        step.update(kind="handoff", content=message.content)
        metadata["target"] = message.target
    elif shape == "summary":
        step.update(kind="summary", content=message.content)
    elif shape == "stop":
        step.update(kind="event", content=message.content)
    elif shape == "chat":
        step.update(kind="message", content=message.to_model_text())
    else:
        step.update(kind="event", content=message.to_text())
    if state.thoughts:
        thought = state.thoughts.pop(agent, None)
        if thought is not None:
            metadata["thought"] = thought
    return step


def record_message(run: Run, message: Any, state: RunState | None) -> None:
    """Add ``message`` to the run as a step, when it is one and was not recorded already."""
    if state is None:
        state = RunState()
    key = id(message)
    if key in state.recorded:
        return
    state.recorded[key] = message
    fields = step_of(message, state)
    if fields is not None:
        run.add_step(**fields)


def record_output(run: Run, published: Any, state: RunState | None, *, nested: bool = False) -> None:
    """Record what a group chat manager publishes to its output topic: the task, or its own messages.

    The task of a ``nested`` team (a team that is a participant of another one) is the outer conversation so
    far, already recorded: it is not recorded again."""
    if isinstance(published, GroupChatStart):
        if nested:
            return
        for message in published.messages or []:
            record_message(run, message, state)
    elif isinstance(published, GroupChatMessage):
        record_message(run, published.message, state)


def record_tool_run_item(run: Run, item: Any, state: RunState | None) -> None:
    """Record a message or event an agent run as a tool (``AgentTool``) streams, as it makes it."""
    if isinstance(item, (BaseChatMessage, BaseAgentEvent)):
        record_message(run, item, state)


def copied_messages(steps: list[Any], state: RunState | None) -> list[Any]:
    """The messages and events of steps copied from a recording, rebuilt as AutoGen made them and marked recorded:
    the agent that gets them from a tool streams them on, and a termination condition counts them as it did.

    AutoGen's own message types are rebuilt from what a step keeps; another type (a custom one, a structured message
    whose model is not known here) is left out: a stand-in would not be registered with the team."""
    messages: list[Any] = []
    calls: dict[str, list[FunctionCall]] = {}  # an agent's last tool calls and results: its summary's
    results: dict[str, list[FunctionExecutionResult]] = {}
    for step in steps:
        thought = step.metadata.get("thought")
        if isinstance(thought, str):
            messages.append(ThoughtEvent(source=step.agent, content=thought))
        message = _rebuilt(step, calls, results)
        if message is not None:
            messages.append(message)
    if state is not None:
        for message in messages:
            state.recorded[id(message)] = message
    return messages


def _rebuilt(step: Any, calls: dict[str, list[FunctionCall]],
             results: dict[str, list[FunctionExecutionResult]]) -> Any:
    """The AutoGen message or event ``step`` was made from, or None where its type cannot be rebuilt."""
    kind, source, content = step.metadata.get("type"), step.agent, step.content
    if kind == "ToolCallRequestEvent":
        calls[source] = [FunctionCall(id=c.id, name=c.name, arguments=c.arguments if isinstance(c.arguments, str)
                                      else json.dumps(c.arguments, ensure_ascii=False)) for c in step.tool_calls]
        return ToolCallRequestEvent(source=source, content=calls[source])
    if kind == "ToolCallExecutionEvent":
        results[source] = [FunctionExecutionResult(
            call_id=r.call_id, name=r.name, is_error=r.is_error,
            content=r.content if isinstance(r.content, str) else json.dumps(r.content, ensure_ascii=False, default=str),
        ) for r in step.tool_results]
        return ToolCallExecutionEvent(source=source, content=results[source])
    if not isinstance(content, str):
        return None
    if kind == "TextMessage":
        return TextMessage(source=source, content=content)
    if kind == "ToolCallSummaryMessage":
        return ToolCallSummaryMessage(source=source, content=content, tool_calls=calls.get(source, []),
                                      results=results.get(source, []))
    if kind == "HandoffMessage":
        return HandoffMessage(source=source, content=content, target=str(step.metadata.get("target", "")))
    if kind == "StopMessage":
        return StopMessage(source=source, content=content)
    if kind == "MultiModalMessage":  # (its text as its model saw it: the images are not kept)
        return MultiModalMessage(source=source, content=[content])
    return None
