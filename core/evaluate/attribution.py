"""Attribution metrics over ``results.jsonl`` rows, and the paper's table.

A row holds ``subset``, ``with_gt``, ``predicted_agent``/``predicted_step``, ``mistake_agent``/``mistake_step``
and ``error`` (with ``error_kind``: ``answer`` for an unparsable model answer, ``model`` for a backend
failure, ``input`` for a bad trajectory). Scores, per subset and setting (w/ or w/o the ground truth G):

* agent / step accuracy and exact match (both right), over every labelled row — an errored row counts as
  wrong, as in the paper; a row with no label (bad input: a file that did not load) cannot be scored and is left
  out; agent names compare case-insensitively;
* step accuracy within ±1 and ±3 steps;
* the Who&When authors' substring scoring, for comparison with numbers produced by their ``evaluate.py``:
  a hit when the gold value's text is *contained in* the predicted text (so gold ``1`` hits prediction
  ``12``), divided by all files of the group, errored or not;
* the count of unparsed answers and of all errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ALL = "All"
INVALID_ANSWER_FLAGS = frozenset({"unknown_agent", "step_out_of_range"})
"""Flags of an answer that names no agent or no step of its run: read, scored as wrong, and counted as invalid."""


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def agent_hit(row: dict[str, Any]) -> bool:
    return row.get("error") is None and bool(_text(row.get("predicted_agent"))) and (
        _text(row.get("predicted_agent")).lower() == _text(row.get("mistake_agent")).lower())


def step_distance(row: dict[str, Any]) -> int | None:
    """|predicted − gold| steps, or ``None`` when either is missing or the predicted step is not a step of the run
    (invalid: a miss in every step metric, even one past the gold last step)."""
    if row.get("error") is not None or "step_out_of_range" in (row.get("flags") or ()):
        return None
    try:
        return abs(int(row["predicted_step"]) - int(row["mistake_step"]))
    except (KeyError, TypeError, ValueError):
        return None


def substring_hit(row: dict[str, Any], key: str) -> bool:
    """The Who&When scorer: gold text contained in the predicted text (case-sensitive)."""
    gold, predicted = row.get(f"mistake_{key}"), row.get(f"predicted_{key}")
    return gold is not None and predicted is not None and str(gold) in str(predicted)


@dataclass
class GroupScore:
    """Counts for one subset in one setting; ``pct`` turns a count into a percentage of the labelled rows."""

    subset: str
    with_gt: bool | None
    files: int = 0
    labelled: int = 0
    agent: int = 0
    step: int = 0
    exact: int = 0
    within1: int = 0
    within3: int = 0
    unparsed: int = 0
    invalid: int = 0  # answers naming an agent or a step the run does not have (they count as wrong)
    errors: int = 0
    substring_agent: int = 0
    substring_step: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        self.files += 1
        if row.get("error") is not None:
            self.errors += 1
            kind = str(row.get("error_kind") or "other")
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
            if kind == "answer":
                self.unparsed += 1
        elif set(row.get("flags") or ()) & INVALID_ANSWER_FLAGS:
            self.invalid += 1
        self.substring_agent += substring_hit(row, "agent")
        self.substring_step += substring_hit(row, "step")
        if row.get("mistake_agent") is None or row.get("mistake_step") is None:
            return
        self.labelled += 1
        a = agent_hit(row)
        distance = step_distance(row)
        self.agent += a
        self.step += distance == 0
        self.exact += a and distance == 0
        self.within1 += distance is not None and distance <= 1
        self.within3 += distance is not None and distance <= 3

    def pct(self, count: int) -> float:
        return 100.0 * count / self.labelled if self.labelled else 0.0

    def substring_pct(self, count: int) -> float:
        return 100.0 * count / self.files if self.files else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "subset": self.subset, "with_gt": self.with_gt, "files": self.files, "labelled": self.labelled,
            "agent_accuracy": self.pct(self.agent), "step_accuracy": self.pct(self.step),
            "exact_match": self.pct(self.exact), "step_within_1": self.pct(self.within1),
            "step_within_3": self.pct(self.within3), "unparsed": self.unparsed, "invalid": self.invalid,
            "errors": self.errors,
            "substring_agent_accuracy": self.substring_pct(self.substring_agent),
            "substring_step_accuracy": self.substring_pct(self.substring_step),
        }


def summarize(rows: Iterable[dict[str, Any]]) -> list[GroupScore]:
    """One ``GroupScore`` per (subset, setting), subsets sorted, then an ``All`` row per setting."""
    groups: dict[tuple[str, bool | None], GroupScore] = {}
    totals: dict[bool | None, GroupScore] = {}
    for row in rows:
        setting = row.get("with_gt")
        subset = str(row.get("subset") or "unknown")
        groups.setdefault((subset, setting), GroupScore(subset, setting)).add(row)
        totals.setdefault(setting, GroupScore(ALL, setting)).add(row)
    ordered = [groups[k] for k in sorted(groups, key=lambda k: (str(k[1]), k[0]))]
    if len({k[0] for k in groups}) > 1:
        ordered += [totals[s] for s in sorted(totals, key=str)]
    return ordered


def _setting(with_gt: bool | None) -> str:
    return {True: "w/ G", False: "w/o G"}.get(with_gt, "?")  # type: ignore[arg-type]


def format_table(scores: list[GroupScore], *, title: str = "", paper_layout: bool = True) -> str:
    """The paper's table (agent/step accuracy per subset and setting) with the extra columns, and (unless
    ``paper_layout`` is False) the same two figures per subset as the paper lays them out."""
    head = (f"{'subset':<22}{'G':<7}{'n':>5}{'agent%':>9}{'step%':>8}{'exact%':>8}{'±1%':>8}{'±3%':>8}"
            f"{'unparsed':>10}{'invalid':>9}{'errors':>8}{'substr agent%':>15}{'substr step%':>14}")
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for s in scores:
        lines.append(
            f"{s.subset:<22}{_setting(s.with_gt):<7}{s.labelled:>5}{s.pct(s.agent):>9.2f}{s.pct(s.step):>8.2f}"
            f"{s.pct(s.exact):>8.2f}{s.pct(s.within1):>8.2f}{s.pct(s.within3):>8.2f}{s.unparsed:>10}{s.invalid:>9}"
            f"{s.errors:>8}{s.substring_pct(s.substring_agent):>15.2f}{s.substring_pct(s.substring_step):>14.2f}"
        )
    paper = [s for s in scores if s.subset != ALL] if paper_layout else []
    if paper:
        lines.append("")
        lines.append("paper layout (agent / step accuracy, %):")
        for s in paper:
            lines.append(f"  {s.subset} {_setting(s.with_gt)}: agent {s.pct(s.agent):.2f}  step {s.pct(s.step):.2f}")
    return "\n".join(lines)
