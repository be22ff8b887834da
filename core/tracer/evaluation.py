"""Run an attribution method over labelled trajectories, streaming one JSON row per trajectory to disk.

Rows are appended (and flushed) as results come, so an interrupted run loses at most the items in flight;
running again with the same output file skips every id already there for the same setting (w/ or w/o G).
Each item fails on its own: a bad file, an empty trajectory, a model that is down or answers garbage give
a row with ``error`` (and ``error_kind``) instead of stopping the run.

Inputs: a Who&When folder or ``.json`` file (ids are the files' relative paths, from above the subset folder when
the data is one: ``Hand-Crafted/3.json`` whether ``--data`` names ``whowhen`` or ``whowhen/Hand-Crafted``), or a TracerTraj
``.parquet`` / ``.jsonl`` file (ids are the rows' ``question_ID``, made unique).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AgentracerError, InputError
from ..fingerprint import run_content_key, stable_digest
from ..models.base import ModelError
from ..redact import Redactor
from ..schema import Trajectory, Verdict
from .base import AnswerError, redacted_verdict

TRACERTRAJ_SUFFIXES = {".parquet", ".pq", ".jsonl"}


@dataclass
class EvalItem:
    """One thing to evaluate: its id and subset, and the trajectory or the error loading it gave."""

    id: str
    subset: str | None
    trajectory: Trajectory | None = None
    error: Exception | None = None


def _subset_of_tracertraj(trajectory: Trajectory, default: str) -> str:
    extra = (trajectory.metadata.get("tracertraj") or {}).get("extra") or {}
    for key in ("subset", "domain", "category", "benchmark"):
        if extra.get(key):
            return str(extra[key])
    return str(trajectory.metadata.get("subset") or default)


def iter_items(data: str | os.PathLike[str]) -> Iterator[EvalItem]:
    """The items under ``data`` (Who&When folder/file, or TracerTraj Parquet/JSONL)."""
    path = Path(data)
    if not path.exists():
        raise InputError(f"no such file or folder: {path}")
    if path.is_file() and path.suffix.lower() in TRACERTRAJ_SUFFIXES:
        from ..formats.tracertraj import iter_tracertraj

        for where, result in iter_tracertraj(path):
            if isinstance(result, Trajectory):
                yield EvalItem(result.id, _subset_of_tracertraj(result, path.stem), result)
            else:
                yield EvalItem(where, path.stem, error=result)
        return
    from ..formats.whowhen import SUBSETS, iter_whowhen_dir, subset_of

    base = path if path.is_dir() else path.parent
    # (a subset folder's files are named as from above it: its 3.json and the other subset's are two items)
    prefix = Path(base.resolve().name) if base.resolve().name in SUBSETS else Path()
    for relative, result in iter_whowhen_dir(path):
        item_id = str(prefix / relative)
        if isinstance(result, Trajectory):
            subset = result.metadata.get("subset") or subset_of(base / relative)
            yield EvalItem(item_id, subset, result)
        else:
            yield EvalItem(item_id, subset_of(base / relative), error=result)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, AnswerError):
        return "answer"
    if isinstance(exc, ModelError):
        return "model"
    if isinstance(exc, InputError):
        return "input"
    return "other"


def _label_fields(trajectory: Trajectory | None) -> dict[str, Any]:
    label = None if trajectory is None else trajectory.training_label()  # (never a tracer's own verdict)
    return {"mistake_agent": label.agent if label else None, "mistake_step": label.step if label else None}


def input_key(item: EvalItem) -> str | None:
    """A digest of what an item's row was scored on: the run, its ground truth and its label (None for an item that
    did not load). A results row whose key differs is stale: the data changed since it was written."""
    if item.trajectory is None:
        return None
    return stable_digest([run_content_key(item.trajectory), item.trajectory.ground_truth,
                          _label_fields(item.trajectory)], 24)


def prompt_budget_of(method: Any) -> int | None:
    """The most prompt tokens ``method`` shows its model (a longer trajectory is cut to fit), None for a model-free
    method: results scored under two budgets do not mix in one file."""
    budget = getattr(method, "max_prompt_tokens", None) if getattr(method, "model", None) is not None else None
    return int(budget) if budget is not None else None


def answers_depend_on(method: Any, model_spec: str | None = None) -> dict[str, Any]:
    """What ``method``'s answers depend on besides its name, model and prompt budget: the seed of ``random`` and
    ``binary-search``, the reference labels ``majority`` counts (a digest), a ``scripted:`` model's answers (a
    digest: every inline script is named ``scripted:inline``). Results of two such settings do not mix in one file."""
    setting: dict[str, Any] = {}
    if getattr(method, "seed", None) is not None:
        setting["seed"] = method.seed
    blamed = getattr(method, "blamed", None)
    if blamed is not None:
        setting["references"] = stable_digest(sorted(blamed.items()), 16) if blamed else None
    if model_spec is not None and model_spec.startswith("scripted:"):
        rest = model_spec[len("scripted:"):]
        script = Path(rest).expanduser()
        is_file = rest.endswith(".jsonl") and "||" not in rest and script.is_file()  # (as the registry reads it)
        setting["script"] = stable_digest(script.read_bytes().decode("utf-8", "replace") if is_file else rest, 16)
    return setting


def make_row(item: EvalItem, *, with_gt: bool, method: str, model: str | None,
             verdict: Verdict | None = None, error: BaseException | None = None, latency_s: float = 0.0,
             prompt_budget: int | None = None, setting: dict[str, Any] | None = None) -> dict:
    """The results.jsonl row of one item (``prompt_budget``: the most prompt tokens a model method was shown;
    ``setting``: what else its answers depend on, ``answers_depend_on``)."""
    row: dict[str, Any] = {"id": item.id, "subset": item.subset, "with_gt": with_gt, "method": method,
                           "model": model, "prompt_budget": prompt_budget, "setting": setting or {},
                           "predicted_agent": None,
                           "predicted_step": None,
                           **_label_fields(item.trajectory), "error": None, "error_kind": None,
                           "input_key": input_key(item)}
    if verdict is not None:
        verdict = redacted_verdict(verdict)
        row.update(predicted_agent=verdict.agent, predicted_step=verdict.step, reason=_shortened(verdict.reason),
                   flags=list(verdict.flags), strict=verdict.metadata.get("strict"), raw=verdict.raw,
                   usage=verdict.metadata.get("usage"), requests=verdict.metadata.get("requests"),
                   cached_requests=verdict.metadata.get("cached_requests"))
    if error is not None:
        message = str(error) or type(error).__name__
        row.update(error=message if isinstance(error, AgentracerError) else f"{type(error).__name__}: {message}",
                   error_kind=_error_kind(error))
        if isinstance(error, AnswerError):
            row.update(raw=Redactor()(error.raw), flags=error.flags)
    row["latency_s"] = round(latency_s, 4)
    return row


REASON_CHARS = 2000
"""How much of a verdict's reason a results row keeps: the whole answer is in its ``raw`` (a model that rambles for
megabytes would otherwise be stored twice per row)."""


def _shortened(reason: str | None) -> str | None:
    if reason is None or len(reason) <= REASON_CHARS:
        return reason
    return reason[:REASON_CHARS] + f"… [{len(reason) - REASON_CHARS} more characters in raw]"


def _lines(path: Path) -> tuple[list[str], bool]:
    """The non-blank lines of a results file and whether its last line is unterminated (an interrupted write).
    Such a last line that is not even UTF-8 (a kill can cut a character in two) is dropped; any other line that is
    not UTF-8 is an error naming it."""
    data = path.read_bytes()
    pieces = data.split(b"\n")  # (not splitlines: a row may hold U+2028)
    lines = []
    for number, piece in enumerate(pieces, 1):
        try:
            line = piece.decode("utf-8")
        except UnicodeDecodeError as exc:
            if number == len(pieces):
                break
            raise InputError(f"{path}:{number}: not a results row (not UTF-8: {exc.reason} at byte "
                             f"{exc.start + 1})") from None
        if line.strip():
            lines.append(line)
    return lines, bool(data) and not data.endswith(b"\n")


def _rows_of(lines: list[str]) -> list[dict[str, Any]]:
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "id" in row:
            rows.append(row)
    return rows


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a results file; a torn last line (an interrupted write) is dropped."""
    path = Path(path)
    if not path.exists():
        return []
    return _rows_of(_lines(path)[0])


def one_row_per_item(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with one row per item and setting (id, with_gt): the first that has no error, else the first (a
    file two runs once wrote at the same time holds items twice, which would count them twice)."""
    chosen: dict[tuple[str, Any], int] = {}
    for position, row in enumerate(rows):
        key = (str(row["id"]), row.get("with_gt"))
        earlier = chosen.get(key)
        if earlier is None or (rows[earlier].get("error") and not row.get("error")):
            chosen[key] = position
    return [rows[position] for position in sorted(chosen.values())]


def _rewrite(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def prepare_output(path: str | os.PathLike[str], *, with_gt: bool, method: str,
                   retry_errors: bool = False, items: Sequence[EvalItem] = (),
                   stale: list[str] | None = None) -> set[str]:
    """Ids already done in ``path`` for this setting; repairs a torn file, keeps one row per item and setting
    (``one_row_per_item``), drops errored rows on request, and the rows of ``items`` that are stale (their run, ground truth or label changed since: re-scoring them against the
    old label gave old scores), whose ids go to ``stale``."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return set()
    lines, unterminated = _lines(path)
    rows = _rows_of(lines)
    others = sorted(str(r["method"]) for r in rows if r.get("method") not in (method, None))
    if others:
        raise InputError(f"{path} holds results of method {others[0]!r}; write {method!r} to another file")
    torn = unterminated or len(rows) != len(lines)
    unique = one_row_per_item(rows)
    torn, rows = torn or len(unique) != len(rows), unique
    if retry_errors:
        kept = [r for r in rows if not (r.get("error") and r.get("with_gt") == with_gt)]
        torn = torn or len(kept) != len(rows)
        rows = kept
    current = {item.id: item for item in items}
    renamed = _subset_ids(rows, current)
    torn = torn or renamed
    _refuse_other_subsets(path, rows, current)
    fresh = [r for r in rows if not _stale(r, current.get(str(r["id"])))]
    if len(fresh) != len(rows):
        if stale is not None:
            stale.extend(sorted({str(r["id"]) for r in rows} - {str(r["id"]) for r in fresh}))
        torn, rows = True, fresh
    if torn:
        _rewrite(path, rows)
    return {str(r["id"]) for r in rows if r.get("with_gt") == with_gt}


def _subset_ids(rows: list[dict[str, Any]], current: dict[str, EvalItem]) -> bool:
    """Give the rows an earlier version wrote for a subset folder (``3.json`` of subset ``Hand-Crafted``) the id
    that folder's items have now (``Hand-Crafted/3.json``); whether any was renamed."""
    taken = {(str(r["id"]), r.get("with_gt")) for r in rows}
    renamed = False
    for row in rows:
        subset, old = row.get("subset"), str(row["id"])
        new = f"{subset}/{old}"
        if (old not in current and subset and new in current and current[new].subset == subset
                and (new, row.get("with_gt")) not in taken):
            taken.add((new, row.get("with_gt")))
            row["id"], renamed = new, True
    return renamed


def _refuse_other_subsets(path: Path, rows: list[dict[str, Any]], current: dict[str, EvalItem]) -> None:
    """Refuse rows whose id is an item's but whose subset is another: they were scored on another file (two folders'
    ``3.json``), which resuming would take for done, or drop as stale."""
    for row in rows:
        item = current.get(str(row["id"]))
        if item is not None and row.get("subset") and item.subset and row["subset"] != item.subset:
            raise InputError(f"{path} holds a row for {row['id']!r} of subset {row['subset']!r}, and this data's "
                             f"{row['id']!r} is of subset {item.subset!r}: another file of the same name; write "
                             "these results to another file")


def _stale(row: dict[str, Any], item: EvalItem | None) -> bool:
    """Whether a results row was scored on other data than ``item`` now holds (a row of an earlier version, without
    its input key, by its label)."""
    if item is None or item.trajectory is None:
        return False
    key = row.get("input_key")
    if key is not None:
        return key != input_key(item)
    labels = _label_fields(item.trajectory)
    return (row.get("mistake_agent"), row.get("mistake_step")) != (labels["mistake_agent"], labels["mistake_step"])


async def evaluate_items(
    items: list[EvalItem],
    method: Any,
    output: str | os.PathLike[str],
    *,
    with_gt: bool,
    method_name: str,
    model_name: str | None = None,
    concurrency: int = 8,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    setting: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate ``items`` with ``method`` (at most ``concurrency`` at once), appending rows to ``output``
    (``setting``: what else the answers depend on, recorded in each row; ``answers_depend_on``)."""
    gate = asyncio.Semaphore(max(1, concurrency))
    rows: list[dict[str, Any]] = []
    row_of = functools.partial(make_row, with_gt=with_gt, method=method_name, model=model_name,
                               prompt_budget=prompt_budget_of(method),
                               setting=answers_depend_on(method) if setting is None else setting)

    async def one(item: EvalItem) -> dict[str, Any]:
        if item.error is not None or item.trajectory is None:
            return row_of(item, error=item.error or InputError("no trajectory"))
        async with gate:
            started = time.perf_counter()
            try:
                verdict = await method.alocate(item.trajectory, with_ground_truth=with_gt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad item never sinks the run; its row says why
                return row_of(item, error=exc, latency_s=time.perf_counter() - started)
            return row_of(item, verdict=verdict, latency_s=time.perf_counter() - started)

    with open(output, "a", encoding="utf-8") as sink:
        for finished in asyncio.as_completed([one(item) for item in items]):
            row = await finished
            sink.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            sink.flush()
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows
