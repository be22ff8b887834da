"""OTLP/JSON trace files → trajectories: spans agentracer exported come back as they were (every field the
exporter writes is read back); traces of other instrumentations go through ``otlp_foreign``. One trace is one run.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import InputError
from ..schema import (
    SCHEMA_VERSION,
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
from ..schema.compat import is_later_minor
from ..store import validation_message
from .imported import redacted
from .openinference import STATUS_ERROR
from .otlp_foreign import foreign_trajectory
from .otlp_spans import Span, group_traces, read_spans, roots


def _labels(span: Span, prefix: str) -> list[Verdict]:
    found, i = [], 0
    while f"{prefix}.{i}.agent" in span.attributes:
        found.append(_label(span, f"{prefix}.{i}"))
        i += 1
    return found


def _label(span: Span, prefix: str) -> Verdict:
    a = span.attributes
    return Verdict(agent=str(a[f"{prefix}.agent"]), step=span.integer(f"{prefix}.step", 0),
                   reason=a.get(f"{prefix}.reason"), source=a.get(f"{prefix}.source", "human"),
                   raw=a.get(f"{prefix}.raw"), confidence=a.get(f"{prefix}.confidence"),
                   flags=list(a.get(f"{prefix}.flags") or []), metadata=span.json(f"{prefix}.metadata", {}))


def _own_model_call(span: Span) -> ModelCall:
    a = span.attributes
    response = span.value("output.value")
    return ModelCall(
        id=a.get("agentracer.call.id") or span.span_id, agent=str(a.get("gen_ai.agent.name") or a.get("agent.name")),
        call_index=span.integer("agentracer.call.index", 0),
        step=None if span.flag("agentracer.call.no_step", False) else span.optional_integer("agentracer.step.index"),
        produces_step=span.flag("agentracer.call.produces_step", True), model=a.get("agentracer.call.model"),
        request=span.json("input.value", {}), response=response,
        request_hash=str(a.get("agentracer.request_hash") or ""),
        latency_s=float(a.get("agentracer.call.latency_s", span.duration_s)),
        usage=span.usage(), started_at=a.get("agentracer.call.started_at"),
        source=a.get("agentracer.call.source", "live"),
        error=(span.status_message or None) if span.status_code == STATUS_ERROR else None,
        suspended=span.flag("agentracer.call.suspended", False) if "agentracer.call.suspended" in a else None,
    )


def _own_model_calls(spans: list[Span]) -> list[ModelCall]:
    """The model calls of these spans in the order their step (or run) listed them: by the position the export wrote
    (calls may overlap in time, so start order is not theirs), else by start."""
    ordered = sorted(enumerate(spans), key=lambda pair: (pair[1].attributes.get("agentracer.call.position", pair[0]),
                                                          pair[0]))
    return [_own_model_call(span) for _, span in ordered]


def _own_step(span: Span) -> Step:
    a = span.attributes
    tool_calls: list[tuple[int, ToolCall]] = []
    results: list[tuple[int, ToolResult]] = []
    llm_spans: list[Span] = []
    for child in span.children:
        kind = child.kind
        if kind == "LLM":
            llm_spans.append(child)
        elif kind == "TOOL":
            c = child.attributes
            if "agentracer.tool.call.name" in c:
                tool_calls.append((child.integer("agentracer.tool.call.position", len(tool_calls)), ToolCall(
                    id=str(c.get("agentracer.tool.call.id") or ""), name=str(c["agentracer.tool.call.name"]),
                    arguments=child.value("agentracer.tool.arguments"))))
            if "agentracer.tool.result.position" in c:
                results.append((child.integer("agentracer.tool.result.position"), ToolResult(
                    call_id=str(c.get("agentracer.tool.result.call_id") or ""),
                    name=str(c.get("agentracer.tool.result.name") or ""), content=child.value("output.value"),
                    is_error=child.flag("agentracer.tool.is_error", False))))
    content = span.value("output.value") if "output.value" in a else ""
    usage = span.usage() if "llm.token_count.prompt" in a else Usage()
    return Step(
        index=span.integer("agentracer.step.index"), agent=str(a.get("agent.name") or a.get("gen_ai.agent.name")),
        role=str(a.get("agentracer.step.role", "assistant")), kind=a.get("agentracer.step.kind", "message"),
        content=content, tool_calls=[call for _, call in sorted(tool_calls, key=lambda pair: pair[0])],
        tool_results=[result for _, result in sorted(results, key=lambda pair: pair[0])],
        model_calls=_own_model_calls(llm_spans),
        started_at=a.get("agentracer.step.started_at"), ended_at=a.get("agentracer.step.ended_at"), usage=usage,
        replaced=span.flag("agentracer.step.replaced", False), metadata=span.json("agentracer.step.metadata", {}),
    )


def _own_trajectory(root: Span) -> Trajectory:
    """A run agentracer exported: every field it wrote, read back."""
    a = root.attributes
    steps = sorted((_own_step(s) for s in root.children if "agentracer.step.index" in s.attributes and s.kind == "AGENT"),
                   key=lambda step: step.index)
    if "agentracer.step.count" in a and root.integer("agentracer.step.count") != len(steps):
        raise ValueError(f"it is incomplete: the run had {root.integer('agentracer.step.count')} steps and "
                         f"{len(steps)} of them arrived (spans lost, or a file cut short)")
    unattached = _own_model_calls([s for s in root.children if s.kind == "LLM"])
    agents = [AgentInfo.model_validate(info) for info in root.json("agentracer.agents.info", [])]
    replay = None
    if "agentracer.replay.parent_id" in a:
        replay = ReplayInfo(parent_id=str(a["agentracer.replay.parent_id"]), step=root.integer("agentracer.replay.step", 0),
                            action=root.value("agentracer.replay.action"),
                            served_tools=root.flag("agentracer.replay.served_tools", False))
    labels = _labels(root, "agentracer.labels")
    if "agentracer.verdict.agent" in a:  # a verdict exported beside the run
        verdict = _label(root, "agentracer.verdict")
        if verdict not in labels:
            labels.append(verdict)
    fields: dict[str, Any] = {
        "id": str(a["agentracer.trajectory.id"]), "task": root.value("input.value"),
        "ground_truth": root.value("agentracer.ground_truth"), "framework": a.get("agentracer.framework"),
        "agents": agents, "steps": steps, "labels": labels, "replay": replay, "unattached_calls": unattached,
        "created_at": float(a.get("agentracer.created_at", root.start_s)),
        "metadata": root.json("agentracer.metadata", {}),
        "outcome": Outcome(success=a.get("agentracer.outcome.success"), score=a.get("agentracer.outcome.score"),
                           answer=root.value("output.value"), feedback=a.get("agentracer.outcome.feedback"),
                           error=a.get("agentracer.outcome.error"), stop_reason=a.get("agentracer.outcome.stop_reason")),
    }
    version = str(a.get("agentracer.schema_version") or SCHEMA_VERSION)
    if is_later_minor(version, SCHEMA_VERSION):  # (its spans' attributes this release does not know are not read)
        warnings.warn(f"spans written by a later agentracer (schema {version}): read as schema {SCHEMA_VERSION}",
                      stacklevel=2)
    else:
        fields["schema_version"] = version
    return Trajectory(**fields)


def trajectory_of_trace(trace_id: str, members: list[Span]) -> Trajectory:
    """The run one trace's spans (linked by ``group_traces``) recorded, with secrets redacted as in a recording."""
    tops = roots(members)
    if not tops:
        raise ValueError("its spans' parent links form a cycle: no span is the top of the trace")
    unreached = len(members) - len(_reached(tops))
    if unreached:
        raise ValueError(f"{unreached} of its spans' parent links form a cycle: no top of the trace leads to them")
    own = next((r for r in tops if "agentracer.trajectory.id" in r.attributes), None)
    if own is not None:
        return redacted(_own_trajectory(own))
    root = tops[0]
    true_roots = [top for top in tops if top.parent_id is None]
    if len(tops) > 1 and len(true_roots) == 1:  # the root, and spans whose parent was lost (sampled out, a batch
        root = true_roots[0]                    # dropped): they go under the root, which keeps the task and outcome
        root.children = sorted([*root.children, *(top for top in tops if top is not root)],
                               key=lambda s: (s.start_ns, s.end_ns))
    elif len(tops) > 1:  # a trace exported in parts: its top spans under one stand-in root
        root = Span(trace_id=trace_id, span_id="", parent_id=None, name="trace", start_ns=min(r.start_ns for r in tops),
                    end_ns=max(r.end_ns for r in tops), attributes={}, children=tops)
    return redacted(foreign_trajectory(root, trace_id, next((r.service for r in tops if r.service), None)))


def _reached(tops: list[Span]) -> set[int]:
    """Ids of the spans below ``tops`` (and theirs), walked without recursion."""
    reached: set[int] = set()
    stack = list(tops)
    while stack:
        span = stack.pop()
        if id(span) not in reached:
            reached.add(id(span))
            stack.extend(span.children)
    return reached


def trajectories_from_spans(spans: Iterable[Span]) -> Iterator[Trajectory]:
    """One trajectory per trace of ``spans``."""
    for trace_id, members in group_traces(spans).items():
        yield trajectory_of_trace(trace_id, members)


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
            yield where, trajectory_of_trace(trace_id, members)
        except ValidationError as exc:
            yield where, InputError(f"spans do not make a trajectory: {validation_message(exc)}", where=where)
        except (ValueError, TypeError, KeyError) as exc:
            yield where, InputError(f"spans do not make a trajectory: {exc}", where=where)
        except RecursionError:
            yield where, InputError("spans do not make a trajectory: they nest too deep", where=where)
