"""OTLP/JSON trace files → trajectories: spans agentracer exported come back as they were; spans any other
OpenInference / OpenTelemetry GenAI instrumentation wrote (Phoenix, an OTel collector's file exporter) become a
trajectory a tracer can read.

A file holds one OTLP ``ExportTraceServiceRequest`` in its JSON encoding (``.json``), or one per line (``.jsonl``,
the collector's file exporter). Ids may be hex (the OTLP/JSON rule) or base64 (protobuf's JSON mapping); field
names camelCase or snake_case. One trace is one run.

Spans of another instrumentation map onto steps as the conventions say what they are: the innermost ``AGENT``
spans (no ``AGENT`` span inside them) are the agents' turns, in the order they started, with the model calls
(``LLM`` spans) and tool executions (``TOOL`` spans) inside them; a trace without ``AGENT`` spans has a step per
``LLM`` span (its output message) and per ``TOOL`` span (its result). The root span's input is the task (step 0,
by the user, as in Who&When) and its output the answer; an error status on the root marks the run failed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..schema import (
    AgentInfo,
    ModelCall,
    Outcome,
    ReplayInfo,
    Step,
    ToolCall,
    ToolResult,
    Trajectory,
    Usage,
    Verdict,
)
from .openinference import STATUS_ERROR, mime_key

_NS = 1_000_000_000
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


@dataclass
class Span:
    """One span as read from OTLP/JSON: hex ids, nanosecond times, plain attribute values."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int = 0
    status_message: str = ""
    service: str | None = None  # the resource's service.name
    children: list[Span] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The OpenInference span kind (``AGENT``, ``LLM``, ``TOOL``, ``CHAIN``…), upper-case; ``""`` if none."""
        kind = self.attributes.get("openinference.span.kind")
        if isinstance(kind, str):
            return kind.upper()
        operation = self.attributes.get("gen_ai.operation.name")
        return {"invoke_agent": "AGENT", "chat": "LLM", "text_completion": "LLM", "generate_content": "LLM",
                "execute_tool": "TOOL"}.get(operation, "") if isinstance(operation, str) else ""

    def value(self, key: str) -> Any:
        """An attribute read back as written: JSON when its MIME type says so (see ``_put_value``)."""
        value = self.attributes.get(key)
        if isinstance(value, str) and self.attributes.get(mime_key(key)) == "application/json":
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def walk(self) -> Iterator[Span]:
        """This span and every span below it, depth first, children in start order."""
        yield self
        for child in self.children:
            yield from child.walk()


# ---- reading OTLP/JSON ------------------------------------------------------------------------------------

def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _id(value: Any, size: int, where: str) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id as hex: OTLP/JSON writes hex, protobuf's JSON mapping base64."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InputError(f"an id must be a string, got {type(value).__name__}", where=where)
    text = value.strip()
    if len(text) == 2 * size and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise InputError(f"{text!r} is neither a hex nor a base64 id of {size} bytes", where=where)
    return raw.hex() if any(raw) else None


def _any_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "string_value"):
        if key in value:
            return value[key]
    for key in ("boolValue", "bool_value"):
        if key in value:
            return bool(value[key])
    for key in ("intValue", "int_value"):
        if key in value:
            return int(value[key])
    for key in ("doubleValue", "double_value"):
        if key in value:
            return float(value[key])
    array = _get(value, "arrayValue", "array_value")
    if array is not None:
        return [_any_value(v) for v in array.get("values", [])]
    kvlist = _get(value, "kvlistValue", "kvlist_value")
    if kvlist is not None:
        return {kv.get("key"): _any_value(kv.get("value")) for kv in kvlist.get("values", [])}
    data = _get(value, "bytesValue", "bytes_value")
    return data


def _attributes(items: Any) -> dict[str, Any]:
    if isinstance(items, dict):  # already a mapping (some exporters)
        return dict(items)
    return {kv["key"]: _any_value(kv.get("value")) for kv in items or [] if isinstance(kv, dict) and "key" in kv}


def _status(status: Any) -> tuple[int, str]:
    if not isinstance(status, dict):
        return 0, ""
    code = status.get("code", 0)
    if isinstance(code, str):
        code = _STATUS_NAMES.get(code.upper(), 0)
    return int(code or 0), str(status.get("message") or "")


def _span(data: Any, where: str, service: str | None) -> Span:
    if not isinstance(data, dict):
        raise InputError("a span must be an object", where=where)
    trace_id = _id(_get(data, "traceId", "trace_id"), 16, f"{where}.traceId")
    span_id = _id(_get(data, "spanId", "span_id"), 8, f"{where}.spanId")
    if trace_id is None or span_id is None:
        raise InputError("a span needs a traceId and a spanId", where=where)
    code, message = _status(data.get("status"))
    try:
        start = int(_get(data, "startTimeUnixNano", "start_time_unix_nano") or 0)
        end = int(_get(data, "endTimeUnixNano", "end_time_unix_nano") or start)
    except (TypeError, ValueError):
        raise InputError("span times must be integers (nanoseconds)", where=where) from None
    return Span(trace_id=trace_id, span_id=span_id,
                parent_id=_id(_get(data, "parentSpanId", "parent_span_id"), 8, f"{where}.parentSpanId"),
                name=str(data.get("name") or ""), start_ns=start, end_ns=end,
                attributes=_attributes(data.get("attributes")), status_code=code, status_message=message,
                service=service)


def _spans_of_request(document: Any, where: str) -> Iterator[Span]:
    if not isinstance(document, dict) or _get(document, "resourceSpans", "resource_spans") is None:
        raise InputError("not an OTLP trace request: no resourceSpans", where=where)
    for r, resource_spans in enumerate(_get(document, "resourceSpans", "resource_spans") or []):
        resource = _attributes((resource_spans.get("resource") or {}).get("attributes"))
        service = resource.get("service.name") if isinstance(resource.get("service.name"), str) else None
        scopes = (_get(resource_spans, "scopeSpans", "scope_spans")
                  or _get(resource_spans, "instrumentationLibrarySpans", "instrumentation_library_spans") or [])
        for s, scope in enumerate(scopes):
            for i, data in enumerate(scope.get("spans") or []):
                yield _span(data, f"{where}: resourceSpans[{r}].scopeSpans[{s}].spans[{i}]", service)


def read_spans(path: str | Path) -> Iterator[tuple[str, list[Span] | InputError]]:
    """(where, the spans of one OTLP request or its error) for each request in ``path``."""
    path = Path(path)
    if not path.is_file():
        yield str(path), InputError("no such file", where=str(path))
        return
    if path.suffix.lower() == ".jsonl":
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield from _parse_request(line, f"{path}:{number}")
        return
    yield from _parse_request(path.read_text(encoding="utf-8"), str(path))


def _parse_request(text: str, where: str) -> Iterator[tuple[str, list[Span] | InputError]]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        yield where, InputError(f"not valid JSON ({exc})", where=where)
        return
    for i, request in enumerate(document if isinstance(document, list) else [document]):
        here = f"{where}[{i}]" if isinstance(document, list) else where
        try:
            yield here, list(_spans_of_request(request, here))
        except InputError as exc:
            yield here, exc


def group_traces(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Spans by trace, each trace's spans linked to their parents (children in start order)."""
    traces: dict[str, list[Span]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    for members in traces.values():
        by_id = {span.span_id: span for span in members}
        for span in members:
            span.children = []
        for span in sorted(members, key=lambda s: (s.start_ns, s.end_ns)):
            parent = by_id.get(span.parent_id or "")
            if parent is not None and parent is not span:
                parent.children.append(span)
    return traces


def _roots(members: list[Span]) -> list[Span]:
    ids = {span.span_id for span in members}
    return sorted((s for s in members if s.parent_id not in ids or s.parent_id == s.span_id),
                  key=lambda s: (s.start_ns, -s.end_ns))


# ---- spans → trajectory -------------------------------------------------------------------------------------

def _seconds(ns: int) -> float:
    return ns / _NS


def _json_attr(span: Span, key: str, default: Any) -> Any:
    value = span.attributes.get(key)
    if not isinstance(value, str):
        return default
    try:
        return json.loads(value)
    except ValueError:
        return default


def _usage(span: Span) -> Usage:
    prompt = span.attributes.get("llm.token_count.prompt", span.attributes.get("gen_ai.usage.input_tokens", 0))
    completion = span.attributes.get("llm.token_count.completion",
                                     span.attributes.get("gen_ai.usage.output_tokens", 0))
    return Usage(prompt_tokens=int(prompt or 0), completion_tokens=int(completion or 0))


def _labels(span: Span, prefix: str) -> list[Verdict]:
    found, i = [], 0
    while f"{prefix}.{i}.agent" in span.attributes:
        found.append(_label(span, f"{prefix}.{i}"))
        i += 1
    return found


def _label(span: Span, prefix: str) -> Verdict:
    a = span.attributes
    return Verdict(agent=str(a[f"{prefix}.agent"]), step=int(a.get(f"{prefix}.step", 0)),
                   reason=a.get(f"{prefix}.reason"), source=a.get(f"{prefix}.source", "human"),
                   raw=a.get(f"{prefix}.raw"), confidence=a.get(f"{prefix}.confidence"),
                   flags=list(a.get(f"{prefix}.flags") or []), metadata=_json_attr(span, f"{prefix}.metadata", {}))


def _own_model_call(span: Span) -> ModelCall:
    a = span.attributes
    response = span.value("output.value")
    step = a.get("agentracer.step.index")
    return ModelCall(
        id=a.get("agentracer.call.id") or span.span_id, agent=str(a.get("gen_ai.agent.name") or a.get("agent.name")),
        call_index=int(a.get("agentracer.call.index", 0)), step=None if step is None else int(step),
        produces_step=bool(a.get("agentracer.call.produces_step", True)), model=a.get("agentracer.call.model"),
        request=_json_attr(span, "input.value", {}), response=response,
        request_hash=str(a.get("agentracer.request_hash") or ""),
        latency_s=float(a.get("agentracer.call.latency_s", _seconds(span.end_ns - span.start_ns))),
        usage=_usage(span), started_at=a.get("agentracer.call.started_at"),
        source=a.get("agentracer.call.source", "live"),
        error=(span.status_message or None) if span.status_code == STATUS_ERROR else None,
    )


def _own_step(span: Span) -> Step:
    a = span.attributes
    tool_calls: list[ToolCall] = []
    results: list[tuple[int, ToolResult]] = []
    calls: list[ModelCall] = []
    for child in span.children:
        kind = child.kind
        if kind == "LLM":
            calls.append(_own_model_call(child))
        elif kind == "TOOL":
            c = child.attributes
            if "agentracer.tool.call.name" in c:
                tool_calls.append(ToolCall(id=str(c.get("agentracer.tool.call.id") or ""),
                                           name=str(c["agentracer.tool.call.name"]),
                                           arguments=child.value("agentracer.tool.arguments")))
            if "agentracer.tool.result.position" in c:
                results.append((int(c["agentracer.tool.result.position"]), ToolResult(
                    call_id=str(c.get("agentracer.tool.result.call_id") or ""),
                    name=str(c.get("agentracer.tool.result.name") or ""), content=child.value("output.value"),
                    is_error=bool(c.get("agentracer.tool.is_error", False)))))
    content = span.value("output.value")
    usage = _usage(span) if "llm.token_count.prompt" in a else Usage()
    return Step(
        index=int(a["agentracer.step.index"]), agent=str(a.get("agent.name") or a.get("gen_ai.agent.name")),
        role=str(a.get("agentracer.step.role", "assistant")), kind=a.get("agentracer.step.kind", "message"),
        content="" if content is None else content, tool_calls=tool_calls,
        tool_results=[result for _, result in sorted(results, key=lambda pair: pair[0])], model_calls=calls,
        started_at=a.get("agentracer.step.started_at"), ended_at=a.get("agentracer.step.ended_at"), usage=usage,
        replaced=bool(a.get("agentracer.step.replaced", False)), metadata=_json_attr(span, "agentracer.step.metadata", {}),
    )


def _own_trajectory(root: Span) -> Trajectory:
    """A run agentracer exported: every field it wrote, read back."""
    a = root.attributes
    steps = sorted((_own_step(s) for s in root.children if "agentracer.step.index" in s.attributes and s.kind == "AGENT"),
                   key=lambda step: step.index)
    unattached = [_own_model_call(s) for s in root.children if s.kind == "LLM"]
    agents = [AgentInfo.model_validate(info) for info in _json_attr(root, "agentracer.agents.info", [])]
    replay = None
    if "agentracer.replay.parent_id" in a:
        replay = ReplayInfo(parent_id=str(a["agentracer.replay.parent_id"]), step=int(a.get("agentracer.replay.step", 0)),
                            action=root.value("agentracer.replay.action"),
                            served_tools=bool(a.get("agentracer.replay.served_tools", False)))
    labels = _labels(root, "agentracer.labels")
    if "agentracer.verdict.agent" in a:  # a verdict exported beside the run
        verdict = _label(root, "agentracer.verdict")
        if verdict not in labels:
            labels.append(verdict)
    fields: dict[str, Any] = {
        "id": str(a["agentracer.trajectory.id"]), "task": root.value("input.value"),
        "ground_truth": root.value("agentracer.ground_truth"), "framework": a.get("agentracer.framework"),
        "agents": agents, "steps": steps, "labels": labels, "replay": replay, "unattached_calls": unattached,
        "created_at": float(a.get("agentracer.created_at", _seconds(root.start_ns))),
        "metadata": _json_attr(root, "agentracer.metadata", {}),
        "outcome": Outcome(success=a.get("agentracer.outcome.success"), score=a.get("agentracer.outcome.score"),
                           answer=root.value("output.value"), feedback=a.get("agentracer.outcome.feedback"),
                           error=a.get("agentracer.outcome.error"), stop_reason=a.get("agentracer.outcome.stop_reason")),
    }
    if "agentracer.schema_version" in a:
        fields["schema_version"] = str(a["agentracer.schema_version"])
    return Trajectory(**fields)


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


def _output_message(span: Span) -> tuple[Any, list[ToolCall]]:
    """An LLM span's answer: its first output message (text and tool calls), else its output value."""
    a = span.attributes
    prefix = "llm.output_messages.0.message"
    calls, j = [], 0
    while f"{prefix}.tool_calls.{j}.tool_call.function.name" in a:
        base = f"{prefix}.tool_calls.{j}.tool_call"
        calls.append(ToolCall(id=str(a.get(f"{base}.id") or ""), name=str(a[f"{base}.function.name"]),
                              arguments=_text(a.get(f"{base}.function.arguments"))))
        j += 1
    content = a.get(f"{prefix}.content")
    if content is None:
        content = _text(a.get("output.value"))
    return content, calls


def _foreign_model_call(span: Span, agent: str, index: int) -> ModelCall:
    a = span.attributes
    messages, i = [], 0
    while f"llm.input_messages.{i}.message.role" in a or f"llm.input_messages.{i}.message.content" in a:
        base = f"llm.input_messages.{i}.message"
        messages.append({k: v for k, v in (("role", a.get(f"{base}.role")), ("name", a.get(f"{base}.name")),
                                           ("content", a.get(f"{base}.content"))) if v is not None})
        i += 1
    request: dict[str, Any] = {"messages": messages} if messages else {}
    if not request and a.get("input.value") is not None:
        request = {"input": _text(a.get("input.value"))}
    return ModelCall(
        id=span.span_id, agent=agent, call_index=index, model=a.get("llm.model_name") or a.get("gen_ai.request.model"),
        request=request, response=_text(a.get("output.value")), latency_s=_seconds(span.end_ns - span.start_ns),
        usage=_usage(span), started_at=_seconds(span.start_ns),
        error=(span.status_message or "error") if span.status_code == STATUS_ERROR else None,
    )


def _foreign_trajectory(root: Span, trace_id: str, service: str | None) -> Trajectory:
    """A run another instrumentation traced: its agents' turns (or model calls and tools) as steps."""
    every = list(root.walk())
    has_agents = any(s.kind == "AGENT" and s is not root for s in every)
    steps: list[Step] = []
    task = _text(root.attributes.get("input.value"))
    if isinstance(task, str) and task:
        steps.append(Step(index=0, agent="user", role="user", content=task, started_at=_seconds(root.start_ns),
                          ended_at=_seconds(root.start_ns)))
    counts: dict[str, int] = {}

    def visit(span: Span, ancestors: list[Span]) -> None:
        inner_agents = any(s.kind == "AGENT" for child in span.children for s in child.walk())
        if has_agents and span.kind == "AGENT" and span is not root and not inner_agents:
            steps.append(_agent_step(span, ancestors, len(steps), counts))
            return
        if not has_agents and span.kind in ("LLM", "TOOL"):
            steps.append(_call_step(span, ancestors, len(steps), counts))
            return
        for child in span.children:
            visit(child, [*ancestors, span])

    visit(root, [])
    failed = root.status_code == STATUS_ERROR or any(s.kind == "AGENT" and s.status_code == STATUS_ERROR for s in every)
    return Trajectory(
        id=trace_id, task=task if isinstance(task, str) else None, framework=service,
        agents=[AgentInfo(name=name) for name in dict.fromkeys(s.agent for s in steps if s.agent != "user")],
        steps=steps, created_at=_seconds(root.start_ns),
        outcome=Outcome(success=False if failed else None, answer=_text(root.attributes.get("output.value")),
                        error=(root.status_message or None) if root.status_code == STATUS_ERROR else None),
        metadata={"imported_from": "otlp", "trace_id": trace_id, "root_span": root.name},
    )


def _agent_step(span: Span, ancestors: list[Span], index: int, counts: dict[str, int]) -> Step:
    agent = _agent_name(span, ancestors)
    calls, results = [], []
    tool_calls: list[ToolCall] = []
    for inner in list(span.walk())[1:]:
        if inner.kind == "LLM":
            calls.append(_foreign_model_call(inner, agent, counts.get(agent, 0)))
            counts[agent] = counts.get(agent, 0) + 1
            tool_calls.extend(_output_message(inner)[1])
        elif inner.kind == "TOOL":
            results.append(_tool_result(inner))
    content = _text(span.attributes.get("output.value"))
    if content is None and calls:
        content = calls[-1].response
    for call in calls:
        call.step = index
    return Step(index=index, agent=agent, content="" if content is None else content, tool_calls=tool_calls,
                tool_results=results, model_calls=calls, started_at=_seconds(span.start_ns),
                ended_at=_seconds(span.end_ns), usage=sum((c.usage for c in calls), Usage()),
                metadata={"span": span.name})


def _tool_result(span: Span) -> ToolResult:
    a = span.attributes
    return ToolResult(call_id=str(a.get("gen_ai.tool.call.id") or a.get("tool_call.id") or ""),
                      name=str(a.get("tool.name") or a.get("gen_ai.tool.name") or span.name),
                      content=_text(a.get("output.value")), is_error=span.status_code == STATUS_ERROR)


def _call_step(span: Span, ancestors: list[Span], index: int, counts: dict[str, int]) -> Step:
    agent = _agent_name(span, ancestors)
    if span.kind == "TOOL":
        result = _tool_result(span)
        return Step(index=index, agent=agent, role="tool", kind="tool_result", content=result.content,
                    tool_results=[result], started_at=_seconds(span.start_ns), ended_at=_seconds(span.end_ns),
                    metadata={"span": span.name})
    call = _foreign_model_call(span, agent, counts.get(agent, 0))
    counts[agent] = counts.get(agent, 0) + 1
    call.step = index
    content, tool_calls = _output_message(span)
    return Step(index=index, agent=agent, kind="tool_call" if tool_calls and not content else "message",
                content="" if content is None else content, tool_calls=tool_calls, model_calls=[call],
                started_at=_seconds(span.start_ns), ended_at=_seconds(span.end_ns), usage=call.usage,
                metadata={"span": span.name})


def trajectories_from_spans(spans: Iterable[Span]) -> Iterator[Trajectory]:
    """One trajectory per trace of ``spans``."""
    for trace_id, members in group_traces(spans).items():
        roots = _roots(members)
        own = next((r for r in roots if "agentracer.trajectory.id" in r.attributes), None)
        if own is not None:
            yield _own_trajectory(own)
        else:
            root = roots[0]
            if len(roots) > 1:  # a trace exported in parts: its top spans under one stand-in root
                root = Span(trace_id=trace_id, span_id="", parent_id=None, name="trace",
                            start_ns=min(r.start_ns for r in roots), end_ns=max(r.end_ns for r in roots),
                            attributes={}, children=roots)
            yield _foreign_trajectory(root, trace_id, next((r.service for r in roots if r.service), None))


def iter_otlp(path: str | Path) -> Iterator[tuple[str, Trajectory | InputError]]:
    """(where, trajectory or its error) for every trace in an OTLP/JSON ``.json`` or ``.jsonl`` file.

    Spans of one trace may be spread over several requests (a collector batches by time): traces are put
    together from the whole file before they become trajectories."""
    spans: list[Span] = []
    first_seen: dict[str, str] = {}
    for where, item in read_spans(path):
        if isinstance(item, InputError):
            yield where, item
            continue
        for span in item:
            first_seen.setdefault(span.trace_id, where)
        spans.extend(item)
    yield from _converted(spans, first_seen)


def _converted(spans: list[Span], first_seen: dict[str, str]) -> Iterator[tuple[str, Trajectory | InputError]]:
    for trace_id, members in group_traces(spans).items():
        where = f"{first_seen.get(trace_id, '?')}: trace {trace_id}"
        try:
            yield where, next(iter(trajectories_from_spans(members)))
        except (ValueError, TypeError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
            yield where, InputError(f"spans do not make a trajectory: {exc}", where=where)
