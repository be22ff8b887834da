"""Traces other instrumentations wrote (OpenInference, OpenTelemetry GenAI) as trajectories a tracer can read.

Spans map onto steps as the conventions say what they are, at agentracer's own granularity: the innermost ``AGENT``
spans (no ``AGENT`` span inside them) are the agents' turns, in the order they started, each a step per model call
(``LLM`` span: its answer, a message or tool calls) and per tool execution (``TOOL`` span: its result) inside it,
then its output when no model call already said it; an ``LLM`` or ``TOOL`` span outside every turn (a trace
without ``AGENT`` spans, a call choosing who speaks next) is a step of its own. The root span's input is the task (step 0, by the user, as in Who&When) and its
output the answer; an error status on the root or an agent's span marks the run failed.
"""

from __future__ import annotations

import json
from typing import Any

from ..schema import AgentInfo, ModelCall, Outcome, Step, ToolCall, ToolResult, Trajectory, tool_calls_content
from .openinference import STATUS_ERROR
from .otlp_spans import Span


def _agent_name(span: Span, ancestors: list[Span]) -> str:
    for candidate in [span, *reversed(ancestors)]:
        a = candidate.attributes
        for key in ("agent.name", "gen_ai.agent.name", "graph.node.id"):
            if isinstance(a.get(key), str) and a[key]:
                return str(a[key])
        if candidate.kind == "AGENT" and candidate.name:
            return candidate.name
    return "assistant"


def _text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, dict | list) else value
    return value


def _genai_message(message: Any) -> dict[str, Any] | None:
    """One message of the OpenTelemetry GenAI conventions (``{"role", "parts": [{"type": "text", "content"},
    {"type": "tool_call", "id", "name", "arguments"}, {"type": "tool_call_response", "id", "response"}]}``, or a
    plain ``{"role", "content"}``) as ``{"role", "content", "tool_calls"}``."""
    if not isinstance(message, dict):
        return None
    out: dict[str, Any] = {"role": message.get("role")}
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = [str(p.get("content")) for p in parts if isinstance(p, dict) and p.get("type") == "text"
                 and p.get("content") is not None]
        responses = [p.get("response") for p in parts if isinstance(p, dict) and p.get("type") == "tool_call_response"]
        calls = [ToolCall(id=str(p.get("id") or ""), name=str(p.get("name")), arguments=_text(p.get("arguments")))
                 for p in parts if isinstance(p, dict) and p.get("type") == "tool_call" and p.get("name")]
        out["content"] = "\n".join(texts) if texts else (responses[0] if len(responses) == 1 else responses or None)
        out["tool_calls"] = calls
    else:
        out["content"], out["tool_calls"] = message.get("content"), []
    return out


def _genai_messages(span: Span, key: str, legacy: str) -> list[dict[str, Any]]:
    """A GenAI span's input or output messages: ``gen_ai.input.messages``/``gen_ai.output.messages`` (JSON), else the
    older indexed ``gen_ai.prompt.N.*``/``gen_ai.completion.N.*`` attributes."""
    a = span.attributes
    value = _text(a.get(key))
    if isinstance(value, list):
        return [m for m in map(_genai_message, value) if m is not None]
    messages, i = [], 0
    while f"{legacy}.{i}.role" in a or f"{legacy}.{i}.content" in a:
        calls = _indexed_tool_calls(a, f"{legacy}.{i}.tool_calls", "name", "arguments")
        messages.append({"role": a.get(f"{legacy}.{i}.role"), "content": a.get(f"{legacy}.{i}.content"),
                         "tool_calls": calls})
        i += 1
    return messages


def _indexed_tool_calls(a: dict[str, Any], prefix: str, name: str, arguments: str) -> list[ToolCall]:
    """Tool calls written as indexed attributes: ``{prefix}.{j}.{name}``, ``.{arguments}`` and ``.id``."""
    calls, j = [], 0
    while f"{prefix}.{j}.{name}" in a:
        base = f"{prefix}.{j}"
        calls.append(ToolCall(id=str(a.get(f"{base}.id") or a.get(f"{base}.tool_call.id") or ""),
                              name=str(a[f"{base}.{name}"]), arguments=_text(a.get(f"{base}.{arguments}"))))
        j += 1
    return calls


def _output_message(span: Span) -> tuple[Any, list[ToolCall]]:
    """An LLM span's answer: its first output message (text and tool calls), else its output value."""
    a = span.attributes
    if "llm.output_messages.0.message.role" not in a and "llm.output_messages.0.message.content" not in a:
        genai = _genai_messages(span, "gen_ai.output.messages", "gen_ai.completion")
        if genai:
            return genai[0].get("content"), list(genai[0].get("tool_calls") or [])
    prefix = "llm.output_messages.0.message"
    calls = _indexed_tool_calls(a, f"{prefix}.tool_calls", "tool_call.function.name", "tool_call.function.arguments")
    content = a.get(f"{prefix}.content")
    if content is None and not calls:  # no output message: the span's output value
        content = _text(a.get("output.value"))
    return content, calls


def _foreign_model_call(span: Span, agent: str, index: int) -> ModelCall:
    a = span.attributes
    messages = _openinference_messages(a)
    if not messages:
        messages = [{k: v for k, v in (("role", m.get("role")), ("content", m.get("content")),
                                       ("tool_calls", tool_calls_content(m["tool_calls"]) or None)) if v is not None}
                    for m in _genai_messages(span, "gen_ai.input.messages", "gen_ai.prompt")]
    request: dict[str, Any] = {**_invocation_parameters(a), "messages": messages} if messages else {}
    if not request and a.get("input.value") is not None:
        request = {"input": _text(a.get("input.value"))}
    response = _text(a.get("output.value"))
    if response is None and a.get("gen_ai.output.messages") is not None:
        response = _text(a.get("gen_ai.output.messages"))
    model = a.get("llm.model_name") or a.get("gen_ai.request.model")
    return ModelCall(
        id=span.span_id, agent=agent, call_index=index, model=None if model is None else str(model),
        request=request, response=response, latency_s=span.duration_s,
        usage=span.usage(), started_at=span.start_s,
        error=(span.status_message or "error") if span.status_code == STATUS_ERROR else None,
    )


def _openinference_messages(a: dict[str, Any]) -> list[dict[str, Any]]:
    """An LLM span's ``llm.input_messages.N.message.*`` (a message's text parts, ``contents.M.message_content.text``,
    joined)."""
    messages, i = [], 0
    while any(f"llm.input_messages.{i}.message.{k}" in a for k in ("role", "content", "contents.0.message_content.type",
                                                                    "contents.0.message_content.text")):
        base = f"llm.input_messages.{i}.message"
        content = a.get(f"{base}.content")
        if content is None:
            texts, j = [], 0
            while f"{base}.contents.{j}.message_content.type" in a or f"{base}.contents.{j}.message_content.text" in a:
                text = a.get(f"{base}.contents.{j}.message_content.text")
                if text is not None:
                    texts.append(str(text))
                j += 1
            content = "\n".join(texts) if texts else None
        calls = _indexed_tool_calls(a, f"{base}.tool_calls", "tool_call.function.name", "tool_call.function.arguments")
        messages.append({k: v for k, v in (("role", a.get(f"{base}.role")), ("name", a.get(f"{base}.name")),
                                           ("content", content), ("tool_calls", _calls_with_ids(calls) or None),
                                           ("tool_call_id", a.get(f"{base}.tool_call_id"))) if v is not None})
        i += 1
    return messages


def _calls_with_ids(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """A message's tool calls as a request holds them: name, arguments and, where the span gave it, the call's id."""
    return [{**({"id": call.id} if call.id else {}), **shown}
            for call, shown in zip(calls, tool_calls_content(calls), strict=True)]


def _invocation_parameters(a: dict[str, Any]) -> dict[str, Any]:
    """``llm.invocation_parameters`` (JSON: temperature, max tokens...), as fields of the request."""
    value = _text(a.get("llm.invocation_parameters"))
    return {k: v for k, v in value.items() if k != "messages"} if isinstance(value, dict) else {}


def _last_user_text(messages: list[Any]) -> str | None:
    """The text of the last user message of a list of messages (dicts, or ``(role, text)`` pairs as LangGraph
    writes them)."""
    for message in reversed(messages):
        if isinstance(message, dict):
            role, content = message.get("role") or message.get("type"), message.get("content")
        elif isinstance(message, list | tuple) and len(message) == 2:
            role, content = message
        else:
            continue
        if role in ("user", "human") and isinstance(content, str) and content:
            return content
    return None


_TASK_KEYS = ("task", "input", "query", "question", "prompt", "message")


def _task(root: Span) -> str | None:
    """The run's task: the root span's input text, or the text under a task-like key of its JSON input (an
    instrumentation that records a call's arguments writes ``{"task": ..., ...}``)."""
    a = root.attributes
    value = _text(a.get("input.value"))
    if isinstance(value, dict):
        messages = value.get("messages")  # (LangGraph's state, an OpenAI request's arguments)
        value = next((value[key] for key in _TASK_KEYS if isinstance(value.get(key), str)), None) or (
            _last_user_text(messages) if isinstance(messages, list) else None)
    if value is None:  # a model call, or an agent, alone: its user message
        value = _last_user_text(_openinference_messages(a)) or _last_user_text(
            _genai_messages(root, "gen_ai.input.messages", "gen_ai.prompt"))
    return value if isinstance(value, str) and value else None


def _answer(root: Span) -> Any:
    """The run's answer: the root span's output, or, for an output holding the run's messages (a team's result),
    the last message's text."""
    value = _text(root.attributes.get("output.value"))
    if value is None:
        genai = _genai_messages(root, "gen_ai.output.messages", "gen_ai.completion")
        value = genai[-1].get("content") if genai else (_output_message(root)[0] if root.kind == "LLM" else None)
    messages = value.get("messages") if isinstance(value, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict) \
            and isinstance(messages[-1].get("content"), str):
        return messages[-1]["content"]
    return value


def _holding_agents(root: Span) -> set[int]:
    """Ids of the spans with an ``AGENT`` span somewhere below them."""
    holding: set[int] = set()

    def visit(span: Span) -> bool:
        below = False
        for child in span.children:
            below = visit(child) or child.kind == "AGENT" or below
        if below:
            holding.add(id(span))
        return below

    visit(root)
    return holding


def foreign_trajectory(root: Span, trace_id: str, service: str | None) -> Trajectory:
    """A run another instrumentation traced: its agents' turns (or model calls and tools) as steps."""
    holds_agent = _holding_agents(root)
    has_agents = id(root) in holds_agent
    steps: list[Step] = []
    task = _task(root)
    if task:
        steps.append(Step(index=0, agent="user", role="user", content=task, started_at=root.start_s,
                          ended_at=root.start_s))
    counts: dict[str, int] = {}

    def visit(span: Span, ancestors: list[Span]) -> None:
        if has_agents and span.kind == "AGENT" and span is not root and id(span) not in holds_agent:
            steps.extend(_agent_steps(span, ancestors, len(steps), counts))
            return
        # a call outside every agent's turn (choosing who speaks next, an orphan moved under the root) is a step too
        if span.kind in ("LLM", "TOOL") and id(span) not in holds_agent:
            steps.append(_call_step(span, _agent_name(span, ancestors), len(steps), counts))
            return
        for child in span.children:
            visit(child, [*ancestors, span])

    visit(root, [])
    if len(steps) == (1 if task else 0) and root.kind == "AGENT":  # an agent's span alone: its turn is the run
        steps.extend(_agent_steps(root, [], len(steps), counts))
    failed = any(s.status_code == STATUS_ERROR for s in root.walk() if s is root or s.kind == "AGENT")
    return Trajectory(
        id=trace_id, task=task, framework=None if (service or "").startswith("unknown_service") else service,
        agents=[AgentInfo(name=name) for name in dict.fromkeys(s.agent for s in steps if s.agent != "user")],
        steps=steps, created_at=root.start_s,
        outcome=Outcome(success=False if failed else None, answer=_answer(root),
                        error=(root.status_message or None) if root.status_code == STATUS_ERROR else None),
        metadata={"imported_from": "otlp", "trace_id": trace_id, "root_span": root.name},
    )


def _agent_steps(span: Span, ancestors: list[Span], first: int, counts: dict[str, int]) -> list[Step]:
    """An agent's turn: a step per model call and tool execution in it (as agentracer records one), and its output
    when no model call already said it; a turn with neither is one empty step."""
    agent = _agent_name(span, ancestors)
    steps = [_call_step(inner, agent, first + i, counts)
             for i, inner in enumerate(s for s in list(span.walk())[1:] if s.kind in ("LLM", "TOOL"))]
    output = _text(span.attributes.get("output.value"))
    if (output is not None and (not steps or steps[-1].content != output)) or not steps:
        steps.append(Step(index=first + len(steps), agent=agent, content="" if output is None else output,
                          started_at=span.start_s, ended_at=span.end_s, metadata={"span": span.name}))
    return steps


def _tool_result(span: Span) -> ToolResult:
    a = span.attributes
    output = a.get("output.value") if a.get("output.value") is not None else a.get("gen_ai.tool.call.result")
    return ToolResult(call_id=str(a.get("gen_ai.tool.call.id") or a.get("tool_call.id") or ""),
                      name=str(a.get("tool.name") or a.get("gen_ai.tool.name") or span.name),
                      content=_text(output), is_error=span.status_code == STATUS_ERROR)


def _call_step(span: Span, agent: str, index: int, counts: dict[str, int]) -> Step:
    """A model call (its answer: a message or tool calls) or a tool execution (its result) as a step of ``agent``."""
    if span.kind == "TOOL":
        result = _tool_result(span)
        return Step(index=index, agent=agent, role="tool", kind="tool_result", content=result.content,
                    tool_results=[result], started_at=span.start_s, ended_at=span.end_s,
                    metadata={"span": span.name})
    call = _foreign_model_call(span, agent, counts.get(agent, 0))
    counts[agent] = counts.get(agent, 0) + 1
    call.step = index
    content, tool_calls = _output_message(span)
    if tool_calls and not content:  # as agentracer records a tool-call step
        return Step(index=index, agent=agent, kind="tool_call", tool_calls=tool_calls, model_calls=[call],
                    content=tool_calls_content(tool_calls),
                    started_at=span.start_s, ended_at=span.end_s, usage=call.usage, metadata={"span": span.name})
    return Step(index=index, agent=agent, content="" if content is None else content, tool_calls=tool_calls,
                model_calls=[call], started_at=span.start_s, ended_at=span.end_s, usage=call.usage,
                metadata={"span": span.name})
