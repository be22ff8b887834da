"""Trajectories straight from an OpenTelemetry SDK: a span exporter that turns each finished trace into a
trajectory and appends it to a store, beside whatever else the tracer provider exports to (Phoenix, a collector).

    provider.add_span_processor(SimpleSpanProcessor(TrajectoryExporter("runs.jsonl")))

Any OpenInference or OpenTelemetry GenAI instrumentation works (OpenInference's AutoGen instrumentor, a hand-made
``AGENT``/``LLM``/``TOOL`` span tree): spans map onto steps as ``agentracer import openinference`` maps them. A
trace is complete when its local root span ends (it ends after every span inside it); traces still open when the
exporter shuts down are written as they are. Needs the ``otel`` extra.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

try:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("collecting trajectories from OpenTelemetry needs its SDK: pip install 'agentracer[otel]'") from exc

from ..schema import Trajectory
from ..store import open_store
from .otlp_import import trajectory_of_trace
from .otlp_spans import Span, group_traces

log = logging.getLogger(__name__)


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
        self.store = open_store(store) if isinstance(store, str | os.PathLike) else store
        self.collected: list[str] = []
        self._pending: dict[str, list[Span]] = {}
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        finished: list[tuple[str, list[Span]]] = []
        with self._lock:
            for sdk_span in spans:
                span = span_from_sdk(sdk_span)
                self._pending.setdefault(span.trace_id, []).append(span)
                if _is_local_root(sdk_span):
                    finished.append((span.trace_id, self._pending.pop(span.trace_id)))
        return SpanExportResult.SUCCESS if self._write(finished) else SpanExportResult.FAILURE

    def _write(self, traces: list[tuple[str, list[Span]]]) -> bool:
        ok = True
        for trace_id, members in traces:
            try:
                trajectory: Trajectory = trajectory_of_trace(trace_id, group_traces(members)[trace_id])
                self.store.append(trajectory)
            except Exception:  # a bad trace must not stop the others, nor the application being traced
                log.exception("agentracer: trace %s could not be written as a trajectory", trace_id)
                ok = False
                continue
            self.collected.append(trajectory.id)
        return ok

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Traces are written as their roots end; nothing is buffered but traces still open."""
        return True

    def shutdown(self) -> None:
        """Write the traces still open (their root never ended here) as they are."""
        with self._lock:
            open_traces, self._pending = list(self._pending.items()), {}
        self._write(open_traces)
