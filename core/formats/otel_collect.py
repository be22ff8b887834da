"""Trajectories straight from an OpenTelemetry SDK: a span exporter that turns each finished trace into a
trajectory and appends it to a store, beside whatever else the tracer provider exports to (Phoenix, a collector).

    provider.add_span_processor(SimpleSpanProcessor(TrajectoryExporter("runs.jsonl")))

Any OpenInference or OpenTelemetry GenAI instrumentation works (OpenInference's AutoGen instrumentor, a hand-made
``AGENT``/``LLM``/``TOOL`` span tree): spans map onto steps as ``agentracer import openinference`` maps them. A
trace is complete when its local root span ends (it ends after every span inside it); traces still open when the
exporter shuts down are written as they are. Needs the ``otel`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("collecting trajectories from OpenTelemetry needs its SDK: pip install 'agentracer[otel]'") from exc

from .otlp_spans import Span
from .trace_assembly import TraceAssembler


def span_from_sdk(span: ReadableSpan) -> Span:
    """An SDK span (``ReadableSpan``) as the span the OTLP importer reads."""
    context = span.context
    parent = span.parent
    resource = span.resource.attributes if span.resource is not None else {}
    service = resource.get("service.name")
    return Span(
        trace_id=format(context.trace_id, "032x"), span_id=format(context.span_id, "016x"),
        parent_id=format(parent.span_id, "016x") if parent is not None else None, name=span.name,
        start_ns=int(span.start_time or 0), end_ns=int(span.end_time or span.start_time or 0),
        attributes={k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
        status_code=int(span.status.status_code.value), status_message=span.status.description or "",
        service=service if isinstance(service, str) else None,
    )


def _is_local_root(span: ReadableSpan) -> bool:
    return span.parent is None or bool(span.parent.is_remote)


class TrajectoryExporter(SpanExporter):
    """An OpenTelemetry span exporter that writes one trajectory per finished trace to ``store`` (a store object,
    or the path of a ``.jsonl``/``.db`` one); ``collected`` lists the ids written."""

    def __init__(self, store: Any) -> None:
        self._traces = TraceAssembler(store)
        self.store = self._traces.store
        self.collected = self._traces.collected

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self._traces.add((span_from_sdk(span), _is_local_root(span)) for span in spans)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Traces are written as their roots end; nothing is buffered but traces still open."""
        return True

    def shutdown(self) -> None:
        """Write the traces still open (their root never ended here) as they are."""
        self._traces.flush()
