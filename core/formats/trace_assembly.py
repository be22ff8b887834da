"""Spans arriving a few at a time, put together into runs: a trace becomes a trajectory, appended to a store, once its
root span has arrived (a root ends after every span inside it), once it has been quiet for ``idle_s`` seconds (its
root is in another process), or when the assembler is flushed. A run agentracer exported says how many spans (or
steps) it has, and its root comes first: it waits for the rest (a batch processor may split it over requests)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import InputError
from .otlp_import import trajectory_of_trace
from .otlp_spans import Span, group_traces

log = logging.getLogger(__name__)


class TraceAssembler:
    """Collects spans by trace and writes each finished trace to ``store`` (a store, or a ``.jsonl``/``.db`` path)
    as a trajectory; ``collected`` lists the ids written."""

    def __init__(self, store: Any, *, idle_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from ..store import open_store

        self.store = open_store(store) if isinstance(store, str | os.PathLike) else store
        self.idle_s = idle_s
        self.collected: list[str] = []
        self._clock = clock
        self._pending: dict[str, list[Span]] = {}
        self._last_seen: dict[str, float] = {}
        self._span_ids: dict[str, set[str]] = {}  # per open trace: the spans it holds (an exporter resends a batch)
        self._rooted: dict[str, Span] = {}  # open traces whose root came before the rest of their spans
        self._written: dict[str, int] = {}  # traces written -> spans that came after (kept for the last 10,000)
        self.late_spans = 0
        self._lock = threading.Lock()

    def add(self, spans: Iterable[tuple[Span, bool]]) -> bool:
        """Take ``(span, is_root)`` pairs; write the traces that are finished (or idle). False if one could not be
        written (it is logged; the others are still written)."""
        now = self._clock()
        rooted: list[str] = []  # finished once the whole batch is in (a batch may list a root before its children)
        with self._lock:
            for span, is_root in spans:
                if span.trace_id in self._written:  # its run is stored already (a store is appended to only)
                    self._late(span.trace_id)
                    continue
                seen = self._span_ids.setdefault(span.trace_id, set())
                if span.span_id and span.span_id in seen:
                    continue  # resent
                seen.add(span.span_id)
                self._pending.setdefault(span.trace_id, []).append(span)
                self._last_seen[span.trace_id] = now
                if is_root:
                    self._rooted[span.trace_id] = span
                if span.trace_id in self._rooted and span.trace_id not in rooted:
                    rooted.append(span.trace_id)
            finished = [self._take(trace_id) for trace_id in rooted if self._complete(trace_id)]
            if self.idle_s is not None:
                idle = [t for t, seen in self._last_seen.items() if now - seen >= self.idle_s]
                finished.extend(self._take(trace_id) for trace_id in idle)
        return self._write(finished)

    def flush(self) -> bool:
        """Write every trace still open, as it is."""
        with self._lock:
            open_traces = [self._take(trace_id) for trace_id in list(self._pending)]
        return self._write(open_traces)

    @property
    def open_traces(self) -> int:
        """How many traces are waiting for their root."""
        with self._lock:
            return len(self._pending)

    def _complete(self, trace_id: str) -> bool:
        """Whether a rooted trace holds every span its root counts (agentracer's own runs count them; others are
        complete with their root)."""
        root, members = self._rooted[trace_id], self._pending[trace_id]
        try:
            spans = root.optional_integer("agentracer.span.count")
            steps = root.optional_integer("agentracer.step.count")
        except ValueError:  # (the import says what is wrong with it)
            return True
        if "agentracer.trajectory.id" not in root.attributes:
            return True
        if spans is not None:
            return len(members) >= spans
        if steps is not None:  # (an export from before spans were counted)
            return sum(1 for s in members if s.parent_id == root.span_id and s.kind == "AGENT"
                       and "agentracer.step.index" in s.attributes) >= steps
        return True

    def _take(self, trace_id: str) -> tuple[str, list[Span]]:
        self._last_seen.pop(trace_id, None)
        self._rooted.pop(trace_id, None)
        self._span_ids.pop(trace_id, None)
        self._written[trace_id] = 0
        if len(self._written) > 10_000:
            del self._written[next(iter(self._written))]
        return trace_id, self._pending.pop(trace_id)

    def _late(self, trace_id: str) -> None:
        """A span of a trace written already: left out, and said once per trace (not a traceback per span)."""
        self.late_spans += 1
        self._written[trace_id] += 1
        if self._written[trace_id] == 1:
            log.warning("agentracer: trace %s got spans after its run was written (its root had arrived); they are "
                        "not in the stored run", trace_id)

    def _write(self, traces: list[tuple[str, list[Span]]]) -> bool:
        ok = True
        for trace_id, members in traces:
            try:
                trajectory = trajectory_of_trace(trace_id, group_traces(members)[trace_id])
                self.store.append(trajectory)
            except (InputError, ValueError, RecursionError) as exc:  # bad spans, a run stored already: one line
                log.warning("agentracer: trace %s could not be written as a trajectory: %s", trace_id,
                            "its spans nest too deep" if isinstance(exc, RecursionError) else exc)
            except Exception:  # a bad trace must not stop the others, nor the application being traced
                log.exception("agentracer: trace %s could not be written as a trajectory", trace_id)
            else:
                self.collected.append(trajectory.id)
                continue
            ok = False
            with self._lock:  # not written: spans still to come are not "late" (they make a trace of their own)
                self._written.pop(trace_id, None)
        return ok
