"""Trajectory → OpenInference / OpenTelemetry GenAI spans, as an OTLP/JSON file or sent to an OTLP HTTP endpoint.

One trace per run: a root ``CHAIN`` span for the run, one ``AGENT`` span per step (its children: one ``LLM``
span per model call, one ``TOOL`` span per tool call), and ``LLM`` spans for calls no step followed. Attributes
follow the OpenInference semantic conventions (``openinference.span.kind``, ``input.value``,
``llm.input_messages.N.message.role``…) and the OpenTelemetry GenAI ones (``gen_ai.operation.name``,
``gen_ai.agent.name``, ``gen_ai.usage.input_tokens``…); ours are under ``agentracer.*`` (``agentracer.step.index``,
labels and verdicts as ``agentracer.labels.N.agent/step/source/reason``). Every field of a trajectory is written
(values of any JSON type with a MIME type beside them), so ``otlp_import`` reads an exported run back equal.

Trace and span ids are derived from the trajectory id, so exporting the same trajectory twice gives the same
ids. The OTLP/JSON encoding needs nothing beyond the core; sending to an endpoint needs the ``otel`` extra
(``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-http``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..atomic import write_replacing
from ..errors import InputError, ServiceError
from ..schema import ModelCall, Step, ToolCall, ToolResult, Trajectory, Verdict
from ..urls import without_credentials

SCOPE_NAME = "agentracer"
SERVICE_NAME = "agentracer"
KIND_INTERNAL, KIND_CLIENT = 1, 3  # OTLP SpanKind values
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
_NS = 1_000_000_000
_TICK = 1_000_000  # 1 ms: the synthetic duration of a step that carries no timestamps

AttributeValue = str | bool | int | float | list[str]


class OtlpExportError(ServiceError):
    """The OTLP endpoint did not accept the spans."""


@dataclass
class SpanRecord:
    """One span, independent of any OpenTelemetry library: what both encoders start from."""

    name: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    kind: int = KIND_INTERNAL
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    status_code: int = STATUS_UNSET
    status_message: str = ""
    links: list[tuple[str, str, dict[str, AttributeValue]]] = field(default_factory=list)  # (trace, span, attributes)


# ---- ids and times ----------------------------------------------------------------------------------------

def trace_id_for(trajectory_id: str) -> str:
    """The trace id (32 hex digits, never all zero) of a trajectory."""
    return _hex_id(f"agentracer/trace/{trajectory_id}", 16)


def span_id_for(trajectory_id: str, path: str) -> str:
    """The span id (16 hex digits, never all zero) of the span at ``path`` (e.g. ``step/3/llm/0``)."""
    return _hex_id(f"agentracer/span/{trajectory_id}/{path}", 8)


def _hex_id(key: str, size: int) -> str:
    digest = hashlib.sha256(key.encode("utf-8")).digest()[:size]
    if not any(digest):
        digest = digest[:-1] + b"\x01"
    return digest.hex()


def _ns(seconds: float) -> int:
    return int(round(seconds * _NS))


# ---- attributes -------------------------------------------------------------------------------------------

def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _put(attrs: dict[str, AttributeValue], key: str, value: Any) -> None:
    """Set an attribute, JSON-encoding anything that is not a primitive; skip ``None``."""
    if value is None:
        return
    if isinstance(value, str | bool | int | float):
        attrs[key] = value
    else:
        attrs[key] = _json(value)


def mime_key(key: str) -> str:
    """Where a value's MIME type goes: ``input.value`` → ``input.mime_type`` (OpenInference), else ``KEY.mime_type``."""
    return key[: -len(".value")] + ".mime_type" if key.endswith(".value") else key + ".mime_type"


def _put_value(attrs: dict[str, AttributeValue], key: str, value: Any) -> None:
    """Set a value of any JSON type so that it reads back as it was: a text as itself (``text/plain``), anything
    else as JSON (``application/json``); skip ``None``."""
    if value is None:
        return
    attrs[key] = value if isinstance(value, str) else _json(value)
    attrs[mime_key(key)] = "text/plain" if isinstance(value, str) else "application/json"


_ROLE_OF_TYPE = {"SystemMessage": "system", "UserMessage": "user", "AssistantMessage": "assistant",
                 "FunctionExecutionResultMessage": "tool"}
"""The chat role of a message a framework names by its type instead (AutoGen's ``LLMMessage`` kinds)."""


def _messages(attrs: dict[str, AttributeValue], prefix: str, messages: Any) -> None:
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            _put(attrs, f"{prefix}.{i}.message.content", message)
            continue
        base = f"{prefix}.{i}.message"
        _put(attrs, f"{base}.role", message.get("role") or _ROLE_OF_TYPE.get(str(message.get("type"))))
        _put(attrs, f"{base}.name", message.get("name") or message.get("source"))
        content = message.get("content")
        calls_as_content = _tool_calls(content)  # (AutoGen's AssistantMessage of FunctionCalls)
        calls = _tool_calls(message.get("tool_calls")) or calls_as_content
        results = _tool_results(content) if message.get("type") == "FunctionExecutionResultMessage" else None
        if results is not None and len(results) == 1:  # AutoGen's one result of one call: a tool message
            _put(attrs, f"{base}.tool_call_id", results[0].get("call_id"))
            _put(attrs, f"{base}.content", results[0].get("content"))
        elif not calls_as_content:
            _put(attrs, f"{base}.content", content)
        _put(attrs, f"{base}.tool_call_id", message.get("tool_call_id"))
        _put_tool_calls(attrs, base, calls)


def _tool_calls(value: Any) -> list[Mapping[str, Any]]:
    """Tool calls in OpenAI's form (``{"id", "function": {"name", "arguments"}}``) or AutoGen's (``FunctionCall``:
    ``{"id", "name", "arguments"}``); [] for anything else."""
    if not isinstance(value, list) or not value:
        return []
    calls = [call for call in value if isinstance(call, Mapping)
             and (isinstance(call.get("function"), Mapping) or ("name" in call and "arguments" in call))]
    return calls if len(calls) == len(value) else []


def _tool_results(value: Any) -> list[Mapping[str, Any]] | None:
    """AutoGen's ``FunctionExecutionResult`` list (``{"content", "call_id", ...}``), else None."""
    if isinstance(value, list) and value and all(isinstance(r, Mapping) and "call_id" in r for r in value):
        return value
    return None


def _put_tool_calls(attrs: dict[str, AttributeValue], message: str, calls: list[Mapping[str, Any]]) -> None:
    for j, call in enumerate(calls):
        function = call.get("function")
        if not isinstance(function, Mapping):
            function = call
        base = f"{message}.tool_calls.{j}.tool_call"
        _put(attrs, f"{base}.id", call.get("id"))
        _put(attrs, f"{base}.function.name", function.get("name"))
        _put(attrs, f"{base}.function.arguments", function.get("arguments"))


def _response_tool_calls(response: Any) -> list[Mapping[str, Any]]:
    """The tool calls a recorded response asked for (AutoGen's content list, OpenAI's message.tool_calls)."""
    if not isinstance(response, Mapping):
        return []
    calls = _tool_calls(response.get("content")) or _tool_calls(response.get("tool_calls"))
    choices = response.get("choices")
    if not calls and isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        message = choices[0].get("message")
        if isinstance(message, Mapping):
            calls = _tool_calls(message.get("tool_calls"))
    return calls


def _tools(attrs: dict[str, AttributeValue], tools: Any) -> None:
    """``llm.tools``: each tool offered, as its JSON schema (a tool recorded by name only: its name)."""
    if not isinstance(tools, list):
        return
    for i, tool in enumerate(tools):
        schema = tool if isinstance(tool, Mapping) else {"type": "function", "function": {"name": str(tool)}}
        attrs[f"llm.tools.{i}.tool.json_schema"] = _json(schema)


def _response_text(response: Any) -> str | None:
    """The answer text of a recorded response, for the common encodings (else ``None``)."""
    if isinstance(response, str):
        return response
    if isinstance(response, Mapping):
        for key in ("content", "text", "output_text"):
            if isinstance(response.get(key), str):
                return response[key]
        choices = response.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            message = choices[0].get("message") or {}
            if isinstance(message, Mapping) and isinstance(message.get("content"), str):
                return message["content"]
            if isinstance(choices[0].get("text"), str):
                return choices[0]["text"]
    return None


def _label_attrs(attrs: dict[str, AttributeValue], prefix: str, label: Verdict) -> None:
    _put(attrs, f"{prefix}.agent", label.agent)
    _put(attrs, f"{prefix}.step", label.step)
    _put(attrs, f"{prefix}.source", label.source)
    _put(attrs, f"{prefix}.reason", label.reason)
    _put(attrs, f"{prefix}.confidence", label.confidence)
    _put(attrs, f"{prefix}.raw", label.raw)
    if label.flags:
        attrs[f"{prefix}.flags"] = list(label.flags)
    if label.metadata:
        attrs[f"{prefix}.metadata"] = _json(label.metadata)


# ---- spans ------------------------------------------------------------------------------------------------

def trajectory_spans(trajectory: Trajectory, verdict: Verdict | None = None) -> list[SpanRecord]:
    """The spans of one trajectory: root first, then each step followed by its model and tool calls.

    ``verdict`` (e.g. a tracer's answer) is added as ``agentracer.verdict.*`` on the root span and marks its
    step like the trajectory's own labels do.
    """
    tid = trace_id_for(trajectory.id)
    root_id = span_id_for(trajectory.id, "run")
    tools = _ToolIndex(trajectory)
    base = _ns(trajectory.created_at)
    labels = list(trajectory.labels) + ([verdict] if verdict is not None else [])
    spans: list[SpanRecord] = []
    cursor = base
    for step in trajectory.steps:
        step_spans = _step_spans(trajectory, step, tid, root_id, cursor, labels, tools)
        spans.extend(step_spans)
        cursor = max(cursor + _TICK, step_spans[0].end_ns)
    for i, call in enumerate(trajectory.unattached_calls):
        spans.append(_llm_span(trajectory, call, tid, root_id, f"unattached/{i}", cursor, None, position=i))
    start = min([base, *(s.start_ns for s in spans)])
    end = max([start + _TICK, *(s.end_ns for s in spans)])

    attrs: dict[str, AttributeValue] = {"openinference.span.kind": "CHAIN", "gen_ai.operation.name": "invoke_agent"}
    _put_value(attrs, "input.value", trajectory.task)
    _put_value(attrs, "output.value", trajectory.outcome.answer)
    _put(attrs, "session.id", trajectory.id)
    _put(attrs, "gen_ai.conversation.id", trajectory.id)
    _put(attrs, "agentracer.trajectory.id", trajectory.id)
    _put(attrs, "agentracer.schema_version", trajectory.schema_version)
    _put(attrs, "agentracer.created_at", float(trajectory.created_at))
    _put(attrs, "agentracer.framework", trajectory.framework)
    _put_value(attrs, "agentracer.ground_truth", trajectory.ground_truth)
    _put(attrs, "agentracer.step.count", len(trajectory.steps))
    _put(attrs, "agentracer.span.count", len(spans) + 1)  # (a receiver knows when every span of the run is in)
    attrs["agentracer.agents"] = trajectory.agent_names
    if trajectory.agents:
        attrs["agentracer.agents.info"] = _json([agent.model_dump() for agent in trajectory.agents])
    if trajectory.metadata:
        attrs["agentracer.metadata"] = _json(trajectory.metadata)
    outcome = trajectory.outcome
    _put(attrs, "agentracer.outcome.success", outcome.success)
    _put(attrs, "agentracer.outcome.score", outcome.score)
    _put(attrs, "agentracer.outcome.feedback", outcome.feedback)
    _put(attrs, "agentracer.outcome.error", outcome.error)
    _put(attrs, "agentracer.outcome.stop_reason", outcome.stop_reason)
    if trajectory.replay is not None:
        _put(attrs, "agentracer.replay.parent_id", trajectory.replay.parent_id)
        _put(attrs, "agentracer.replay.step", trajectory.replay.step)
        _put_value(attrs, "agentracer.replay.action", trajectory.replay.action)
        _put(attrs, "agentracer.replay.served_tools", trajectory.replay.served_tools)
    for i, label in enumerate(trajectory.labels):
        _label_attrs(attrs, f"agentracer.labels.{i}", label)
    if verdict is not None:
        _label_attrs(attrs, "agentracer.verdict", verdict)
    failed = outcome.success is False or outcome.error is not None
    root = SpanRecord(
        name=f"run {trajectory.framework or 'team'}", trace_id=tid, span_id=root_id, parent_span_id=None,
        start_ns=start, end_ns=end, attributes=attrs,
        status_code=STATUS_ERROR if failed else (STATUS_OK if outcome.success else STATUS_UNSET),
        status_message=(outcome.error or outcome.feedback or "run failed") if failed else "",
    )
    if trajectory.replay is not None:  # a replay's trace links to the run it replayed (a tool can jump to it)
        parent = trajectory.replay.parent_id
        root.links.append((trace_id_for(parent), span_id_for(parent, "run"),
                           {"agentracer.link": "replay_of", "agentracer.replay.step": trajectory.replay.step}))
    return [root, *spans]


def _step_spans(trajectory: Trajectory, step: Step, tid: str, parent: str, cursor: int,
                labels: list[Verdict], tools: _ToolIndex) -> list[SpanRecord]:
    sid = span_id_for(trajectory.id, f"step/{step.index}")
    start = _ns(step.started_at) if step.started_at is not None else (
        _ns(step.ended_at) - _TICK if step.ended_at is not None else cursor)
    children: list[SpanRecord] = []
    for i, model_call in enumerate(step.model_calls):
        children.append(_llm_span(trajectory, model_call, tid, sid, f"step/{step.index}/llm/{i}", start, step,
                                  position=i))
    results = _match_results(step.tool_calls, step.tool_results)
    for i, (call, result) in enumerate(results):
        children.append(_tool_span(trajectory, step, call, result, tid, sid, i, start, tools))
    end = _ns(step.ended_at) if step.ended_at is not None else start + _TICK
    end = max([end, start, *(c.end_ns for c in children)])
    start = min([start, *(c.start_ns for c in children)])

    attrs: dict[str, AttributeValue] = {
        "openinference.span.kind": "AGENT",
        "agent.name": step.agent,
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": step.agent,
        "graph.node.id": step.agent,
        "agentracer.step.index": step.index,
        "agentracer.step.kind": step.kind,
        "agentracer.step.role": step.role,
        "output.value": step.text,
        "output.mime_type": "text/plain" if isinstance(step.content, str) else "application/json",
    }
    if step.replaced:
        attrs["agentracer.step.replaced"] = True
    _put(attrs, "agentracer.step.started_at", step.started_at)
    _put(attrs, "agentracer.step.ended_at", step.ended_at)
    if step.metadata:
        attrs["agentracer.step.metadata"] = _json(step.metadata)
    if step.usage.total_tokens:
        attrs["llm.token_count.prompt"] = step.usage.prompt_tokens
        attrs["llm.token_count.completion"] = step.usage.completion_tokens
        attrs["llm.token_count.total"] = step.usage.total_tokens
    here = [label for label in labels if label.step == step.index]
    status, message = STATUS_UNSET, ""
    if here:
        attrs["agentracer.mistake"] = True
        attrs["agentracer.label.sources"] = [label.source for label in here]
        _label_attrs(attrs, "agentracer.label", here[0])
        status = STATUS_ERROR
        message = f"mistake ({here[0].source}): {here[0].reason or here[0].agent}"
    span = SpanRecord(
        name=f"step {step.index} {step.agent}", trace_id=tid, span_id=sid, parent_span_id=parent,
        start_ns=start, end_ns=end, attributes=attrs, status_code=status, status_message=message,
    )
    return [span, *children]


def _llm_span(trajectory: Trajectory, call: ModelCall, tid: str, parent: str, path: str, start_default: int,
              step: Step | None, *, position: int) -> SpanRecord:
    start = _ns(call.started_at) if call.started_at is not None else start_default
    end = start + max(_ns(call.latency_s), 0)
    attrs: dict[str, AttributeValue] = {
        "openinference.span.kind": "LLM",
        "gen_ai.operation.name": "chat",
        "gen_ai.agent.name": call.agent,
        "agent.name": call.agent,
        "agentracer.call.id": call.id,
        "agentracer.call.index": call.call_index,
        "agentracer.call.position": position,  # its place among its step's calls (they may overlap in time)
        "agentracer.call.source": call.source,
        "agentracer.call.latency_s": float(call.latency_s),
        "agentracer.call.produces_step": call.produces_step,
        "agentracer.request_hash": call.request_hash,
        "input.value": _json(call.request),
        "input.mime_type": "application/json",
        "llm.token_count.prompt": call.usage.prompt_tokens,
        "llm.token_count.completion": call.usage.completion_tokens,
        "llm.token_count.total": call.usage.total_tokens,
        "gen_ai.usage.input_tokens": call.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": call.usage.completion_tokens,
    }
    _put(attrs, "agentracer.step.index", call.step if call.step is not None else (step.index if step else None))
    if call.step is None and step is not None:  # (a call listed by a step, yet of no step: it comes back so)
        attrs["agentracer.call.no_step"] = True
    _put(attrs, "agentracer.call.model", call.model)
    _put(attrs, "agentracer.call.started_at", call.started_at)
    _put(attrs, "agentracer.call.suspended", call.suspended)
    model = call.model or call.request.get("model")
    _put(attrs, "llm.model_name", model)
    _put(attrs, "gen_ai.request.model", model)
    _messages(attrs, "llm.input_messages", call.request.get("messages"))
    _tools(attrs, call.request.get("tools"))
    params = {k: v for k, v in call.request.items() if k not in ("messages", "model", "tools")}
    if params:
        attrs["llm.invocation_parameters"] = _json(params)
    if call.response is not None:
        _put(attrs, "output.value", call.response)
        attrs["output.mime_type"] = "text/plain" if isinstance(call.response, str) else "application/json"
    text = _response_text(call.response)
    asked = _response_tool_calls(call.response)
    if text is None and not asked and step is not None and call.produces_step and not call.error:
        text = step.text  # (a failed call said nothing: none for it)
    if text is not None or asked:
        attrs["llm.output_messages.0.message.role"] = "assistant"
        _put(attrs, "llm.output_messages.0.message.content", text)
        _put_tool_calls(attrs, "llm.output_messages.0.message", asked)
    return SpanRecord(
        name=f"chat {model or call.agent}", trace_id=tid, span_id=span_id_for(trajectory.id, path),
        parent_span_id=parent, start_ns=start, end_ns=end, kind=KIND_CLIENT, attributes=attrs,
        status_code=STATUS_ERROR if call.error else STATUS_UNSET, status_message=call.error or "",
    )


def _match_results(calls: list[ToolCall], results: list[ToolResult]) -> list[tuple[ToolCall | None, ToolResult | None]]:
    """Pairs each tool call with its result (by call id, else by position); unmatched results stand alone."""
    pairs: list[tuple[ToolCall | None, ToolResult | None]] = []
    left = list(results)
    for position, call in enumerate(calls):
        match = next((r for r in left if call.id and r.call_id == call.id), None)
        if match is None and not call.id and position < len(results) and results[position] in left:
            match = results[position]
        if match is not None:
            left.remove(match)
        pairs.append((call, match))
    pairs.extend((None, result) for result in left)
    return pairs


class _ToolIndex:
    """A run's tool calls and results by call id: a framework that puts a call and its result in two steps (AutoGen,
    CAMEL) still shows, on each of their spans, what the other half holds (arguments on the result's, the result on
    the call's)."""

    def __init__(self, trajectory: Trajectory) -> None:
        self.calls = {c.id: c for s in trajectory.steps for c in s.tool_calls if c.id}
        self.results = {r.call_id: r for s in trajectory.steps for r in s.tool_results if r.call_id}


def _tool_span(trajectory: Trajectory, step: Step, call: ToolCall | None, result: ToolResult | None, tid: str,
               parent: str, position: int, start: int, tools: _ToolIndex) -> SpanRecord:
    name = call.name if call is not None else (result.name if result is not None else "tool")
    attrs: dict[str, AttributeValue] = {
        "openinference.span.kind": "TOOL",
        "gen_ai.operation.name": "execute_tool",
        "tool.name": name,
        "gen_ai.tool.name": name,
        "agentracer.step.index": step.index,
        "agent.name": step.agent,
    }
    call_id = (call.id if call is not None else "") or (result.call_id if result is not None else "")
    _put(attrs, "gen_ai.tool.call.id", call_id or None)
    if call is not None:
        attrs["agentracer.tool.call.id"] = call.id
        attrs["agentracer.tool.call.name"] = call.name
        # its place among its step's calls (their spans all start with the step: arrival order is not theirs)
        attrs["agentracer.tool.call.position"] = next(i for i, c in enumerate(step.tool_calls) if c is call)
        _put_value(attrs, "agentracer.tool.arguments", call.arguments)
        if call.arguments is not None:
            attrs["input.value"] = _json(call.arguments)
        later = tools.results.get(call.id) if result is None and call.id else None
        if later is not None:  # (shown only: the result is its own step's)
            _put_value(attrs, "output.value", later.content)
    elif result is not None and result.call_id in tools.calls:  # (shown only: the call is its own step's)
        asked = tools.calls[result.call_id]
        if asked.arguments is not None:
            attrs["input.value"] = _json(asked.arguments)
    if result is not None:
        _put_value(attrs, "output.value", result.content)
        attrs["agentracer.tool.is_error"] = result.is_error
        attrs["agentracer.tool.result.call_id"] = result.call_id
        attrs["agentracer.tool.result.name"] = result.name
        attrs["agentracer.tool.result.position"] = next(i for i, r in enumerate(step.tool_results) if r is result)
    return SpanRecord(
        name=f"execute_tool {name}", trace_id=tid, span_id=span_id_for(trajectory.id, f"step/{step.index}/tool/{position}"),
        parent_span_id=parent, start_ns=start, end_ns=start, attributes=attrs,
        status_code=STATUS_ERROR if result is not None and result.is_error else STATUS_UNSET,
        status_message=_json(result.content)[:200] if result is not None and result.is_error else "",
    )


# ---- OTLP/JSON --------------------------------------------------------------------------------------------

def _any_value(value: AttributeValue) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": value}


def span_to_otlp_json(span: SpanRecord) -> dict[str, Any]:
    """One span in the OTLP/JSON encoding (hex ids, 64-bit integers as strings)."""
    out: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": [{"key": k, "value": _any_value(v)} for k, v in span.attributes.items()],
        "status": {"code": span.status_code, **({"message": span.status_message} if span.status_message else {})},
    }
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id
    if span.links:
        out["links"] = [{"traceId": trace, "spanId": linked, "attributes": [
            {"key": k, "value": _any_value(v)} for k, v in attributes.items()]} for trace, linked, attributes in span.links]
    return out


def otlp_json_request(spans: Iterable[SpanRecord]) -> dict[str, Any]:
    """An OTLP ``ExportTraceServiceRequest`` in its JSON encoding, holding ``spans``."""
    from .. import __version__

    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICE_NAME}}]},
        "scopeSpans": [{
            "scope": {"name": SCOPE_NAME, "version": __version__},
            "spans": [span_to_otlp_json(span) for span in spans],
        }],
    }]}


def write_otlp_json(trajectories: Iterable[Trajectory], path: str | os.PathLike[str]) -> int:
    """Write the spans of ``trajectories`` as OTLP/JSON: one request for ``.json``, one line per run for
    ``.jsonl`` (the collector's file-exporter shape). Returns the number of spans written. The file is written
    whole or not at all: a run that fails to convert leaves ``path`` as it was."""
    lines = Path(path).suffix.lower() == ".jsonl"

    def write(temporary: Path) -> int:
        count = 0
        if lines:
            with temporary.open("w", encoding="utf-8") as fh:
                for trajectory in trajectories:
                    spans = trajectory_spans(trajectory)
                    fh.write(json.dumps(otlp_json_request(spans), ensure_ascii=False) + "\n")
                    count += len(spans)
            return count
        # one request, streamed: the request's JSON around an empty span list, the spans written into it as each
        # run is converted (the same bytes as dumping the whole request, without holding every span)
        head, marker, tail = json.dumps(otlp_json_request([]), ensure_ascii=False).partition('"spans": []')
        assert marker, "the request's JSON has a span list"
        with temporary.open("w", encoding="utf-8") as fh:
            fh.write(head + '"spans": [')
            for trajectory in trajectories:
                for span in trajectory_spans(trajectory):
                    fh.write((", " if count else "") + json.dumps(span_to_otlp_json(span), ensure_ascii=False))
                    count += 1
            fh.write("]" + tail)
        return count

    return write_replacing(path, write, empty=True)


# ---- OpenTelemetry SDK / OTLP over HTTP -------------------------------------------------------------------

def _otel() -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.export import SpanExportResult
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError("OTLP export needs OpenTelemetry: pip install 'agentracer[otel]'") from None
    return (OTLPSpanExporter, Resource, ReadableSpan, SpanExportResult, InstrumentationScope,
            SpanContext, SpanKind, Status, StatusCode, TraceFlags)


def to_sdk_spans(spans: Iterable[SpanRecord]) -> list[Any]:
    """The spans as ``opentelemetry.sdk.trace.ReadableSpan`` objects, ready for any SDK span exporter."""
    from .. import __version__

    (_, Resource, ReadableSpan, _, InstrumentationScope, SpanContext, SpanKind, Status, StatusCode,
     TraceFlags) = _otel()
    from opentelemetry.trace import Link
    resource = Resource.create({"service.name": SERVICE_NAME})
    scope = InstrumentationScope(SCOPE_NAME, __version__)
    kinds = {KIND_INTERNAL: SpanKind.INTERNAL, KIND_CLIENT: SpanKind.CLIENT}
    codes = {STATUS_UNSET: StatusCode.UNSET, STATUS_OK: StatusCode.OK, STATUS_ERROR: StatusCode.ERROR}
    out = []
    for span in spans:
        trace_id = int(span.trace_id, 16)
        context = SpanContext(trace_id, int(span.span_id, 16), is_remote=False,
                              trace_flags=TraceFlags(TraceFlags.SAMPLED))
        parent = (SpanContext(trace_id, int(span.parent_span_id, 16), is_remote=False,
                              trace_flags=TraceFlags(TraceFlags.SAMPLED)) if span.parent_span_id else None)
        code = codes[span.status_code]
        status = Status(code, span.status_message or None) if code is StatusCode.ERROR else Status(code)
        links = [Link(SpanContext(int(trace, 16), int(linked, 16), is_remote=True,
                                  trace_flags=TraceFlags(TraceFlags.SAMPLED)), dict(attributes))
                 for trace, linked, attributes in span.links]
        out.append(ReadableSpan(
            name=span.name, context=context, parent=parent, resource=resource, attributes=dict(span.attributes),
            kind=kinds[span.kind], status=status, start_time=span.start_ns, end_time=span.end_ns,
            instrumentation_scope=scope, links=links,
        ))
    return out


def traces_endpoint(url: str) -> str:
    """``http://host:4318`` → ``http://host:4318/v1/traces``; a URL with a path is kept as given."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"not an http(s) URL: {url!r}", where="--endpoint")
    return url.rstrip("/") + "/v1/traces" if parts.path in ("", "/") else url


def export_otlp_http(
    trajectories: Iterable[Trajectory], endpoint: str, *, headers: Mapping[str, str] | None = None,
    timeout: float = 10.0, batch_spans: int = 512, skipped: int = 0,
) -> int:
    """Send the spans of ``trajectories`` to an OTLP/HTTP (protobuf) endpoint; returns the number sent.

    Raises ``OtlpExportError`` when the endpoint does not accept a batch, saying how many trajectories it took
    (counting ``skipped``: those of the same source left out before ``trajectories``, so that the count is the
    one to skip next time).
    """
    OTLPSpanExporter, *_rest = _otel()
    SpanExportResult = _rest[2]
    url = traces_endpoint(endpoint)
    exporter = OTLPSpanExporter(endpoint=url, headers=dict(headers or {}), timeout=timeout)
    sent, accepted = 0, skipped
    with _SdkLogScreen(url) as log:
        try:
            for batch, whole in _batches(trajectories, batch_spans):
                result = exporter.export(to_sdk_spans(batch))
                if result is not SpanExportResult.SUCCESS:
                    why = log.why()
                    done = (f"the first {accepted} trajectories were accepted ({sent} spans now): run again with "
                            f"--skip {accepted} to send the rest") if accepted else "none was accepted"
                    raise OtlpExportError(f"{without_credentials(url)} did not accept {len(batch)} spans{why}; {done}")
                sent += len(batch)
                accepted += whole
        finally:
            exporter.shutdown()
    return sent


class _SdkLogScreen(logging.Filter):
    """While an export runs: the OTLP exporter's log lines show the endpoint without its credentials (a query
    parameter holding a key), and the last one is kept, to say why a batch was not accepted."""

    PREFIX = "opentelemetry.exporter.otlp.proto.http"

    def __init__(self, url: str) -> None:
        from ..redact import Redactor
        from ..urls import url_secrets

        super().__init__()
        self._redactor = Redactor(secrets=url_secrets(url))
        self.said: list[str] = []
        self._loggers: list[logging.Logger] = []
        self._thread = threading.get_ident()  # the exporter logs in the thread that calls it

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact this endpoint's secrets from every line (another export's screen redacts its own); keep only the
        lines of this export's own thread (a line of another export at the same time is not its reason)."""
        record.msg, record.args = self._redactor.text(record.getMessage()), ()
        if record.msg and record.thread == self._thread:
            self.said.append(record.msg.splitlines()[0][:300])
        return True

    def why(self) -> str:
        """What the exporter last said, and first (a refused connection) when that was something else."""
        if not self.said:
            return ""
        first, last = self.said[0], self.said[-1]
        return f": {last}" + (f" (first: {first})" if first != last else "")

    def __enter__(self) -> _SdkLogScreen:
        names = [self.PREFIX, *(name for name in list(logging.root.manager.loggerDict) if name.startswith(self.PREFIX))]
        self._loggers = [logging.getLogger(name) for name in dict.fromkeys(names)]
        for logger in self._loggers:
            logger.addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)


def _batches(trajectories: Iterable[Trajectory], size: int) -> Iterator[tuple[list[SpanRecord], int]]:
    """Batches of about ``size`` spans, each of whole trajectories, with how many trajectories each holds."""
    batch: list[SpanRecord] = []
    count = 0
    for trajectory in trajectories:
        batch.extend(trajectory_spans(trajectory))
        count += 1
        if len(batch) >= size:
            yield batch, count
            batch, count = [], 0
    if batch:
        yield batch, count
