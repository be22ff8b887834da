"""OTLP/JSON trace files read as spans: one ``ExportTraceServiceRequest`` in its JSON encoding per ``.json`` file,
or one per line of a ``.jsonl`` file (an OpenTelemetry collector's file exporter). Ids may be hex (the OTLP/JSON
rule) or base64 (protobuf's JSON mapping); field names camelCase or snake_case; spans of one trace may be spread
over several requests."""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..schema import Usage
from .openinference import mime_key

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
    odd_status: str | None = None  # a status code OTLP does not define, as sent (JSON): the span reads as unset
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

    @property
    def start_s(self) -> float:
        return self.start_ns / _NS

    @property
    def end_s(self) -> float:
        return self.end_ns / _NS

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / _NS

    def json(self, key: str, default: Any) -> Any:
        """An attribute holding JSON, decoded; ``default`` when it is absent. ``ValueError`` naming the attribute when
        it is not JSON text (an attribute agentracer wrote: a damaged file, not another tracer's convention)."""
        value = self.attributes.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ValueError(f"attribute {key} must be JSON text, got {type(value).__name__}")
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"attribute {key} is not JSON ({exc})") from None

    def integer(self, key: str, default: int | None = None) -> int:
        """An integer attribute (OTLP/JSON writes 64-bit integers as strings); ``default`` when absent; ``ValueError``
        naming the attribute when it is not an integer, or absent without a default."""
        value = self.optional_integer(key)
        if value is not None:
            return value
        if default is None:
            raise ValueError(f"attribute {key} is missing")
        return default

    def optional_integer(self, key: str) -> int | None:
        """An integer attribute, or None when absent; ``ValueError`` naming the attribute when it is not an integer."""
        value = self.attributes.get(key)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ValueError(f"attribute {key} must be an integer, got {value!r}")

    def flag(self, key: str, default: bool) -> bool:
        """A boolean attribute; ``default`` when absent; ``ValueError`` naming the attribute when it is not a boolean."""
        value = self.attributes.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        raise ValueError(f"attribute {key} must be true or false, got {value!r}")

    def usage(self) -> Usage:
        """Token counts, by OpenInference's names or the GenAI conventions'."""
        a = self.attributes
        prompt = a.get("llm.token_count.prompt", a.get("gen_ai.usage.input_tokens", 0))
        completion = a.get("llm.token_count.completion", a.get("gen_ai.usage.output_tokens", 0))
        return Usage(prompt_tokens=int(prompt or 0), completion_tokens=int(completion or 0))

    def walk(self) -> Iterator[Span]:
        """This span and every span below it, depth first, children in start order."""
        yield self
        for child in self.children:
            yield from child.walk()


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


_SCALAR_KEYS = (("stringValue", "string_value"), ("boolValue", "bool_value"), ("intValue", "int_value"),
                ("doubleValue", "double_value"))


def _scalar(key: str, raw: Any, where: str) -> Any:
    """A scalar ``AnyValue`` (JSON writes 64-bit integers as strings, and doubles may be "NaN" or "Infinity")."""
    if key == "stringValue" and isinstance(raw, str):
        return raw
    if key == "boolValue" and isinstance(raw, bool):
        return raw
    if key == "intValue" and not isinstance(raw, bool):
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and raw.lstrip("-").isdigit():
            return int(raw)
    if key == "doubleValue" and not isinstance(raw, bool):
        if isinstance(raw, int | float):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                pass
    raise InputError(f"{key} {str(raw)[:40]!r} is not a {key[:-5]}", where=where)


def _any_value(value: Any, where: str) -> Any:
    """An OTLP ``AnyValue`` as a plain value."""
    if not isinstance(value, dict):
        raise InputError(f"an attribute value must be an object, got {type(value).__name__}", where=where)
    for camel, snake in _SCALAR_KEYS:
        if camel in value or snake in value:
            return _scalar(camel, _get(value, camel, snake), where)
    array = _get(value, "arrayValue", "array_value")
    if array is not None:
        return [_any_value(v, where) for v in _list(_object(array, where).get("values"), where)]
    kvlist = _get(value, "kvlistValue", "kvlist_value")
    if kvlist is not None:
        return _attributes(_object(kvlist, where).get("values"), where)
    return _get(value, "bytesValue", "bytes_value")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"expected an object, got {type(value).__name__}", where=where)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"expected a list, got {type(value).__name__}", where=where)
    return value


def _attributes(items: Any, where: str) -> dict[str, Any]:
    """A list of ``{"key", "value"}`` pairs (or, from some exporters, a plain mapping) as a dict."""
    if isinstance(items, dict):
        return dict(items)
    attributes: dict[str, Any] = {}
    for i, kv in enumerate(_list(items, where)):
        here = f"{where}.attributes[{i}]"
        if not isinstance(_object(kv, here).get("key"), str):
            raise InputError("an attribute needs a string key", where=here)
        attributes[kv["key"]] = _any_value(kv.get("value", {}), here) if kv.get("value") is not None else None
    return attributes


def _status(status: Any, where: str) -> tuple[int, str, str | None]:
    """A span's status: (code, message, the code as sent when OTLP does not define it). An unknown code (a newer
    OTLP's, a misbehaving exporter's) reads as unset rather than costing the request its other spans."""
    if status is None:
        return 0, "", None
    status = _object(status, f"{where}.status")
    raw = status.get("code")
    code = 0 if raw is None else raw
    if isinstance(raw, str):
        code = int(raw) if raw.isascii() and raw.isdigit() else _STATUS_NAMES.get(raw.upper())
    message = status.get("message") or ""
    message = message if isinstance(message, str) else str(message)
    if isinstance(code, bool) or code not in _STATUS_NAMES.values():
        return 0, message, json.dumps(raw, ensure_ascii=False, default=str)[:40]
    return int(code), message, None


def odd_status_note(spans: Iterable[Span]) -> str | None:
    """One line saying which spans had a status code OTLP does not define (read as unset), or None if none did."""
    odd = [span.odd_status for span in spans if span.odd_status is not None]
    if not odd:
        return None
    codes = list(dict.fromkeys(odd))
    shown = ", ".join(codes[:3]) + (f" and {len(codes) - 3} more" if len(codes) > 3 else "")
    return f"{len(odd)} span(s) had a status code OTLP does not define ({shown}): read as unset"


def _span(data: Any, where: str, service: str | None) -> Span:
    data = _object(data, where)
    trace_id = _id(_get(data, "traceId", "trace_id"), 16, f"{where}.traceId")
    span_id = _id(_get(data, "spanId", "span_id"), 8, f"{where}.spanId")
    if trace_id is None or span_id is None:
        raise InputError("a span needs a traceId and a spanId", where=where)
    code, message, odd_status = _status(data.get("status"), where)
    try:
        start = int(_get(data, "startTimeUnixNano", "start_time_unix_nano") or 0)
        end = int(_get(data, "endTimeUnixNano", "end_time_unix_nano") or start)
    except (TypeError, ValueError, OverflowError):
        raise InputError("span times must be integers (nanoseconds)", where=where) from None
    name = data.get("name") or ""
    return Span(trace_id=trace_id, span_id=span_id,
                parent_id=_id(_get(data, "parentSpanId", "parent_span_id"), 8, f"{where}.parentSpanId"),
                name=name if isinstance(name, str) else str(name), start_ns=start, end_ns=end,
                attributes=_attributes(data.get("attributes"), where), status_code=code, status_message=message,
                service=service, odd_status=odd_status)


def spans_of_request(document: Any, where: str) -> Iterator[Span]:
    """The spans of one OTLP ``ExportTraceServiceRequest`` in its JSON encoding (``InputError`` naming ``where``)."""
    if not isinstance(document, dict) or _get(document, "resourceSpans", "resource_spans") is None:
        raise InputError("not an OTLP trace request: no resourceSpans", where=where)
    for r, resource_spans in enumerate(_list(_get(document, "resourceSpans", "resource_spans"), where)):
        here = f"{where}: resourceSpans[{r}]"
        resource_spans = _object(resource_spans, here)
        resource = _attributes(_object(resource_spans.get("resource") or {}, f"{here}.resource").get("attributes"),
                               f"{here}.resource")
        service = resource.get("service.name") if isinstance(resource.get("service.name"), str) else None
        scopes = (_get(resource_spans, "scopeSpans", "scope_spans")
                  or _get(resource_spans, "instrumentationLibrarySpans", "instrumentation_library_spans"))
        for s, scope in enumerate(_list(scopes, here)):
            for i, data in enumerate(_list(_object(scope, f"{here}.scopeSpans[{s}]").get("spans"), here)):
                yield _span(data, f"{here}.scopeSpans[{s}].spans[{i}]", service)


def read_spans(path: str | Path) -> Iterator[tuple[str, list[Span] | InputError]]:
    """(where, the spans of one OTLP request or its error) for each request in ``path``; spans with a status code
    OTLP does not define are read as unset, and one warning at the end says how many there were."""
    odd: list[Span] = []
    for where, item in _requests(Path(path)):
        if not isinstance(item, InputError):
            odd.extend(span for span in item if span.odd_status is not None)
        yield where, item
    note = odd_status_note(odd)
    if note is not None:
        warnings.warn(f"{path}: {note}", stacklevel=2)


def _requests(path: Path) -> Iterator[tuple[str, list[Span] | InputError]]:
    if not path.is_file():
        yield str(path), InputError("no such file", where=str(path))
        return
    found = False
    try:
        if path.suffix.lower() == ".jsonl":
            with path.open(encoding="utf-8-sig") as lines:
                for number, line in enumerate(lines, start=1):
                    if line.strip():
                        for item in _parse_request(line, f"{path}:{number}"):
                            found = True
                            yield item
        else:
            text = path.read_text(encoding="utf-8-sig")  # (a BOM some editors write is not JSON)
            for item in _parse_request(text, str(path), lines_if_several=True):
                found = True
                yield item
    except UnicodeDecodeError:
        yield str(path), InputError("not UTF-8 text: OTLP/JSON (.json or .jsonl) is expected, not a binary file",
                                    where=str(path))
        return
    if not found:
        yield str(path), InputError("holds no OTLP request (no resourceSpans)", where=str(path))


def _parse_request(text: str, where: str, *, lines_if_several: bool = False
                   ) -> Iterator[tuple[str, list[Span] | InputError]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        if lines_if_several and exc.msg == "Extra data":  # one request per line (a collector's file exporter writes
            for number, line in enumerate(text.split("\n"), start=1):  # them so, in a .json too)
                if line.strip():
                    yield from _parse_request(line, f"{where}:{number}")
            return
        yield where, InputError(f"not valid JSON ({exc})", where=where)
        return
    except (ValueError, RecursionError) as exc:
        yield where, InputError(f"not valid JSON ({exc})", where=where)
        return
    for i, request in enumerate(document if isinstance(document, list) else [document]):
        here = f"{where}[{i}]" if isinstance(document, list) else where
        try:
            yield here, list(spans_of_request(request, here))
        except InputError as exc:
            yield here, exc


def group_traces(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Spans by trace, each trace's spans linked to their parents (children in start order). A span given again (an
    exporter's retry, a collector writing a batch twice) counts once: the first of its (trace id, span id) is kept."""
    traces: dict[str, list[Span]] = {}
    seen: set[tuple[str, str]] = set()
    for span in spans:
        if (span.trace_id, span.span_id) not in seen:
            seen.add((span.trace_id, span.span_id))
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


def roots(members: list[Span]) -> list[Span]:
    """The spans of a trace whose parent is not in it (its root, or the tops of a trace exported in parts)."""
    ids = {span.span_id for span in members}
    return sorted((s for s in members if s.parent_id not in ids or s.parent_id == s.span_id),
                  key=lambda s: (s.start_ns, -s.end_ns))
