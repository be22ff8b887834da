"""Trajectories straight from an OpenTelemetry SDK: a span exporter that turns each finished trace into a
trajectory and appends it to a store, beside whatever else the tracer provider exports to (Phoenix, a collector).

    provider.add_span_processor(SimpleSpanProcessor(TrajectoryExporter("runs.jsonl")))

Any OpenInference or OpenTelemetry GenAI instrumentation works (OpenInference's AutoGen instrumentor, a hand-made
``AGENT``/``LLM``/``TOOL`` span tree): spans map onto steps as ``agentracer import openinference`` maps them. A
trace is written when its local root span ends, or, with ``grace_s``, once that many seconds have passed after it
without another span of the trace (a streamed model call in async code may end after the agent span around it;
another service's part of the trace, its own root under a remote parent, may end after ours): all its parts make one
trajectory, as the OTLP receiver makes of a trace. ``force_flush()`` writes the traces waiting out their grace (the
SDK's span processors never call it: ``provider.shutdown()`` does, at exit too); traces still open when the exporter
shuts down are written as they are. Needs the ``otel`` extra.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

try:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("collecting trajectories from OpenTelemetry needs its SDK: pip install 'agentracer[otel]'") from exc

from ..errors import InputError
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
    or the path of a ``.jsonl``/``.db`` one); ``collected`` lists the ids written. A trace is written ``grace_s``
    seconds after its local root ended and its last span arrived (0, the default: as its root ends, stored before the
    span processor's call returns); a span that ends later than that is left out with a warning."""

    def __init__(self, store: Any, *, grace_s: float = 0.0) -> None:
        if isinstance(grace_s, bool) or not isinstance(grace_s, int | float) or not 0 <= grace_s < math.inf:
            raise InputError(f"{grace_s!r} is not a number of seconds, 0 or more", where="grace_s")
        self._traces = TraceAssembler(store)
        self.store = self._traces.store
        self.collected = self._traces.collected
        self.grace_s = float(grace_s)
        self._roots: dict[str, list[Span]] = {}  # traces whose local root(s) ended -> those roots, not yet handed on
        self._due: dict[str, float] = {}  # the same traces -> when their grace is over (each span of theirs extends it)
        self._changed = threading.Condition()  # guards the two above and the two below
        self._closed = False
        self._ticker: threading.Thread | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        now = time.monotonic()
        ready: list[tuple[Span, bool]] = []
        with self._changed:
            for sdk_span in spans:
                span = span_from_sdk(sdk_span)
                if _is_local_root(sdk_span) and not self._closed:  # the assembler gets it when the grace is over
                    self._roots.setdefault(span.trace_id, []).append(span)
                else:  # (waits in the assembler for its root)
                    ready.append((span, _is_local_root(sdk_span)))
                if span.trace_id in self._roots:
                    self._due[span.trace_id] = now + self.grace_s
            ready.extend(self._take(now))
            if self._roots and self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="agentracer-otel-grace", daemon=True)
                self._ticker.start()
            self._changed.notify_all()
        ok = self._traces.add(ready)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write the traces whose root has ended now, without waiting out their grace."""
        with self._changed:
            ready = self._take(math.inf)
        return self._traces.add(ready)

    def shutdown(self) -> None:
        """Write every trace: those waiting out their grace, and those still open (their root never ended here) as
        they are."""
        with self._changed:
            self._closed = True
            ready = self._take(math.inf)
            self._changed.notify_all()
            ticker = self._ticker
        if ticker is not None:
            ticker.join()  # (a trace it is handing on is written before the open ones are)
        self._traces.add(ready)
        self._traces.flush()

    def _take(self, now: float) -> list[tuple[Span, bool]]:
        """The held roots of the traces whose grace is over by ``now``, released (the caller holds the lock)."""
        ready: list[tuple[Span, bool]] = []
        for trace_id in [t for t, due in self._due.items() if due <= now]:
            del self._due[trace_id]
            ready.extend((root, True) for root in self._roots.pop(trace_id))
        return ready

    def _tick(self) -> None:
        """Hand on each trace when its grace is over, whether or not more spans come; end when none is held (the
        next held trace starts another), so that an exporter nobody shuts down is not kept alive by its thread."""
        while True:
            with self._changed:
                while not self._closed and self._due and min(self._due.values()) > time.monotonic():
                    self._changed.wait(min(self._due.values()) - time.monotonic())
                if self._closed or not self._due:
                    self._ticker = None
                    return
                now = time.monotonic()
                ready = self._take(now)
            self._traces.add(ready)
