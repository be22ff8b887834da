"""TracerTraj rows ⇄ Trajectory: the training-data format of the AgenTracer paper, as Parquet or JSON Lines.

A row has ``question_ID, question, ground_truth, history[{content, name, role, step}], mistake_agent,
mistake_step, mistake_reason``; we add an optional ``mistake_source`` column so a label's origin
(human, counterfactual, injection, tracer) survives a round trip, and, in Parquet (whose ``ground_truth`` column is
text), a ``ground_truth_json`` column holding a ground truth that is not text as JSON, read back as that value, and
a ``subset`` column when the run has one (Who&When's subsets: ``eval`` scores each apart).
``mistake_step`` is a ``step`` value of
``history`` (0-based, like ``Step.index``). Any other column of a JSONL row is kept under
``metadata["tracertraj"]["extra"]`` and written back to JSONL.

Parquet needs the ``parquet`` extra (pyarrow); reading streams record batches, so memory stays flat.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast, get_args

from pydantic import ValidationError

from ..atomic import write_replacing
from ..errors import InputError
from ..fingerprint import task_key
from ..schema import LabelSource, Step, Trajectory, Verdict, new_id, outcome_fields, read_outcome
from ..store import utf8_text, validation_message
from .imported import redacted
from .whowhen import role_kind

COLUMNS = ("question_ID", "question", "ground_truth", "history", "mistake_agent", "mistake_step", "mistake_reason")
SOURCE_COLUMN = "mistake_source"
GROUND_TRUTH_JSON_COLUMN = "ground_truth_json"  # Parquet: a ground truth that is not text, as JSON
SUBSET_COLUMN = "subset"  # the run's subset (Who&When's Hand-Crafted / Algorithm-Generated), when it has one
OUTCOME_COLUMN = "outcome_json"  # the run's outcome (success, feedback, error, answer…) as JSON, when it has one
RUN_ID_COLUMN = "trajectory_id"  # the run's own id, when reading question_ID would not give it back
_OUR_COLUMNS = (SOURCE_COLUMN, GROUND_TRUTH_JSON_COLUMN, SUBSET_COLUMN, OUTCOME_COLUMN, RUN_ID_COLUMN)
HISTORY_FIELDS = ("content", "name", "role", "step")
LABEL_SOURCES: tuple[str, ...] = get_args(LabelSource)
_BATCH_ROWS = 256


def parquet_available() -> bool:
    """Whether Parquet can be written here: pyarrow with its parquet module (some packages, e.g. MetaGPT's
    dependency qianfan, install a stand-in ``pyarrow`` module without it)."""
    try:
        _pyarrow()
    except InputError:
        return False
    return True


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError("Parquet needs pyarrow: pip install 'agentracer[parquet]'") from None
    return pa, pq


def is_parquet(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a Parquet file (by suffix)."""
    return Path(path).suffix.lower() in {".parquet", ".pq"}


def _int(value: Any, field: str, where: str) -> int:
    if isinstance(value, bool):
        raise InputError(f"field '{field}' must be an integer, got {value!r}", where=where)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InputError(f"field '{field}' must be an integer, got {value!r}", where=where)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def from_row(row: Any, *, where: str, default_source: str = "counterfactual") -> Trajectory:
    """A Trajectory from one TracerTraj row; ``InputError`` names the row and field that is wrong.

    ``default_source`` is the label's source when the row has no ``mistake_source`` column.
    """
    if not isinstance(row, dict):
        raise InputError(f"expected an object (row), got {type(row).__name__}", where=where)
    if "history" not in row:
        raise InputError("missing field 'history'", where=where)
    history = row["history"]
    if not isinstance(history, list):
        raise InputError(f"field 'history' must be a list, got {type(history).__name__}", where=where)
    steps: list[Step] = []
    positions: dict[int, int] = {}
    for i, item in enumerate(history):
        at = f"{where}: history[{i}]"
        if not isinstance(item, dict):
            raise InputError(f"expected an object, got {type(item).__name__}", where=at)
        if "content" not in item:
            raise InputError("missing field 'content'", where=at)
        number = i if item.get("step") is None else _int(item["step"], "step", at)
        if number in positions:
            raise InputError(f"field 'step' {number} repeats history[{positions[number]}]", where=at)
        positions[number] = i
        name, role = item.get("name"), item.get("role")
        meta: dict[str, Any] = {}
        if number != i:
            meta["step"] = number
        if name == "":  # the step's agent is then its role: the row's empty name is written back as it was
            meta["name"] = name
        missing = [k for k in HISTORY_FIELDS if k not in item or item[k] is None]
        if missing:
            meta["missing"] = missing
        extra = {k: v for k, v in item.items() if k not in HISTORY_FIELDS}
        if extra:
            meta["extra"] = extra
        steps.append(Step(
            index=i, agent=str(name) if name not in (None, "") else (str(role) if role else "unknown"),
            role=str(role) if role is not None else "", content=item["content"], kind=role_kind(str(role or "")),
            metadata={"tracertraj": meta} if meta else {},
        ))
    labels: list[Verdict] = []
    if row.get("mistake_agent") is not None or row.get("mistake_step") is not None:
        if row.get("mistake_agent") is None:
            raise InputError("field 'mistake_agent' is missing while 'mistake_step' is set", where=where)
        if row.get("mistake_step") is None:
            raise InputError("field 'mistake_step' is missing while 'mistake_agent' is set", where=where)
        number = _int(row["mistake_step"], "mistake_step", where)
        if number not in positions:
            raise InputError(f"field 'mistake_step' {number} is not a step of history", where=where)
        source = row.get(SOURCE_COLUMN) or default_source
        if source not in LABEL_SOURCES:
            raise InputError(f"field '{SOURCE_COLUMN}' must be one of {list(LABEL_SOURCES)}, got {source!r}",
                             where=where)
        reason = row.get("mistake_reason")
        labels.append(Verdict(agent=str(row["mistake_agent"]), step=positions[number],
                              reason=_text(reason), source=cast(LabelSource, source)))
    extra = {k: v for k, v in row.items() if k not in COLUMNS and k not in _OUR_COLUMNS}
    question_id = row.get("question_ID")
    metadata: dict[str, Any] = {"source_format": "tracertraj"}
    if question_id is not None:
        metadata["question_id"] = question_id
    if row.get(SUBSET_COLUMN) is not None:
        metadata["subset"] = str(row[SUBSET_COLUMN])
    if extra:
        metadata["tracertraj"] = {"extra": extra}
    question = row.get("question")
    outcome = read_outcome(row.get(OUTCOME_COLUMN), where=f"{where}: field '{OUTCOME_COLUMN}'")
    try:
        return redacted(Trajectory(
            id=_row_id(row, question_id),
            task=_text(question), ground_truth=_ground_truth(row, where),
            steps=steps, labels=labels, metadata=metadata, outcome=outcome,
        ), where=where)
    except ValidationError as exc:
        raise InputError(validation_message(exc), where=where) from None


def _row_id(row: dict[str, Any], question_id: Any) -> str:
    """A row's trajectory id: its ``trajectory_id`` when it has one, else its question_ID, else a new one."""
    own = row.get(RUN_ID_COLUMN)
    if isinstance(own, str) and own:
        return own
    return str(question_id) if question_id not in (None, "") else new_id()


def _ground_truth(row: dict[str, Any], where: str) -> Any:
    """The row's ground truth: ``ground_truth_json`` decoded when the row has it (a Parquet row whose ground truth
    was not text), else ``ground_truth`` as it is."""
    encoded = row.get(GROUND_TRUTH_JSON_COLUMN)
    if encoded is None:
        return row.get("ground_truth")
    try:
        return json.loads(encoded)
    except (TypeError, ValueError) as exc:
        raise InputError(f"field '{GROUND_TRUTH_JSON_COLUMN}' is not JSON text ({exc})", where=where) from None


def _question_id(trajectory: Trajectory) -> str | int:
    """The row's ``question_ID``: the task the run attempts (``fingerprint.task_key``: the id it was read with, a
    number staying a number in JSONL), shared by every run of that task; a run with no task, its own id."""
    key = task_key(trajectory)
    return key if key is not None else trajectory.id


def _own_id(trajectory: Trajectory, question_id: str | int) -> str | None:
    """The run's id for the ``trajectory_id`` column, unless reading the row gives it back anyway (it is the
    question_ID). A repeated question's ``ID#2`` is written too: a reader numbers rows of one question in the order it
    meets them, which need not be the order they were first read in."""
    return None if trajectory.id == str(question_id) else trajectory.id


def to_row(trajectory: Trajectory, *, source: str | None = None, require_label: bool = True) -> dict[str, Any]:
    """The TracerTraj row of a trajectory, labelled by its ``training_label`` (a human, else counterfactual, else
    injected label) or its first label from ``source``.

    Without such a label this raises ``InputError`` unless ``require_label`` is false (then the
    ``mistake_*`` fields are null).
    """
    label = trajectory.label(source) if source else trajectory.training_label()
    if label is None and require_label:
        wanted = f" from source {source!r}" if source else " (human, counterfactual or injection)"
        raise InputError(f"has no label{wanted} to export as mistake_agent/mistake_step",
                         where=f"trajectory {trajectory.id}")
    history = []
    for step in trajectory.steps:
        meta = step.metadata.get("tracertraj", {})
        missing = set(meta.get("missing", ()))
        item: dict[str, Any] = {
            "content": step.content if step.content is None or isinstance(step.content, str) else step.text,
            "name": meta.get("name", step.agent),
            "role": step.role,
            "step": meta.get("step", step.index),
        }
        for key in missing:
            item[key] = None
        item.update(meta.get("extra", {}))
        history.append(item)
    number = None
    if label is not None:
        if label.step >= len(history):
            raise InputError(f"its label names step {label.step}, but the run has {len(history)} step(s)",
                             where=f"trajectory {trajectory.id}")
        number = history[label.step]["step"]
        if number is None:  # a row without step numbers: history positions
            number = label.step
    question_id = _question_id(trajectory)
    row: dict[str, Any] = {
        "question_ID": question_id,
        "question": trajectory.task,
        "ground_truth": trajectory.ground_truth,
        "history": history,
        "mistake_agent": label.agent if label else None,
        "mistake_step": number,
        "mistake_reason": label.reason if label else None,
        SOURCE_COLUMN: label.source if label else None,
    }
    if trajectory.metadata.get("subset") is not None:
        row[SUBSET_COLUMN] = str(trajectory.metadata["subset"])
    own_id = _own_id(trajectory, question_id)
    if own_id is not None:  # (the run's own id: question_ID is its task's, shared by all its runs)
        row[RUN_ID_COLUMN] = own_id
    outcome = outcome_fields(trajectory.outcome)
    if outcome:  # (the tracer's prompt shows the environment's feedback: a row must keep it)
        row[OUTCOME_COLUMN] = json.dumps(outcome, ensure_ascii=False, default=str)
    row.update(trajectory.metadata.get("tracertraj", {}).get("extra", {}))
    return row


# ---- files ------------------------------------------------------------------------------------------------

def iter_rows(path: str | os.PathLike[str]) -> Iterator[tuple[str, dict[str, Any] | InputError]]:
    """(where, row or the error reading it) for every row of a Parquet or JSONL file, streamed."""
    path = Path(path)
    if is_parquet(path):
        yield from _iter_parquet_rows(path)
        return
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            where = f"{path}:{number}"
            if not line.strip():
                continue
            try:
                row = json.loads(utf8_text(line, where))
            except InputError as exc:
                yield where, exc
                continue
            except (ValueError, RecursionError) as exc:  # bad JSON, nesting too deep
                yield where, InputError(f"not valid JSON ({exc})", where=where)
                continue
            yield where, row


def _iter_parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | InputError]]:
    pa, pq = _pyarrow()
    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"not a readable Parquet file ({exc})", where=str(path)) from None
    number = 0
    batches = reader.iter_batches(batch_size=_BATCH_ROWS)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InputError(f"Parquet read failed after row {number} ({exc})", where=str(path)) from None
        for row in batch.to_pylist():
            yield f"{path}: row {number}", row
            number += 1


def iter_tracertraj(
    path: str | os.PathLike[str], *, default_source: str = "counterfactual"
) -> Iterator[tuple[str, Trajectory | InputError]]:
    """(where, trajectory or its error) for every row; repeated ``question_ID``s get ids ``ID#2``, ``ID#3``…"""
    seen: dict[str, int] = {}
    for where, row in iter_rows(path):
        if isinstance(row, InputError):
            yield where, row
            continue
        try:
            trajectory = from_row(row, where=where, default_source=default_source)
        except InputError as exc:
            yield where, exc
            continue
        count = seen.get(trajectory.id, 0) + 1
        seen[trajectory.id] = count
        if count > 1:
            trajectory.id = f"{trajectory.id}#{count}"
        yield where, trajectory


def _parquet_schema(pa: Any) -> Any:
    history_item = pa.struct([("content", pa.string()), ("name", pa.string()), ("role", pa.string()),
                              ("step", pa.int64())])
    return pa.schema([
        ("question_ID", pa.string()), ("question", pa.string()), ("ground_truth", pa.string()),
        ("history", pa.list_(history_item)), ("mistake_agent", pa.string()), ("mistake_step", pa.int64()),
        ("mistake_reason", pa.string()), (SOURCE_COLUMN, pa.string()), (GROUND_TRUTH_JSON_COLUMN, pa.string()),
        (SUBSET_COLUMN, pa.string()), (OUTCOME_COLUMN, pa.string()), (RUN_ID_COLUMN, pa.string()),
    ])


def _parquet_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row shaped to the Parquet schema: text columns as text, history items with the four fields."""
    out = {k: row.get(k) for k in (*COLUMNS, SOURCE_COLUMN, SUBSET_COLUMN, OUTCOME_COLUMN, RUN_ID_COLUMN)}
    truth = out["ground_truth"]
    out[GROUND_TRUTH_JSON_COLUMN] = None if truth is None or isinstance(truth, str) else _text(truth)
    for key in ("question_ID", "question", "ground_truth", "mistake_agent", "mistake_reason"):
        out[key] = _text(out[key])
    out["history"] = [{"content": _text(h.get("content")), "name": _text(h.get("name")),
                       "role": _text(h.get("role")), "step": h.get("step")} for h in row["history"]]
    return out


class TracerTrajWriter:
    """Writes rows to ``.parquet`` (in row groups, never all in memory) or ``.jsonl``; use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], *, row_group: int = 1024) -> None:
        self.path = Path(path)
        self.count = 0
        self._row_group = row_group
        self._pending: list[dict[str, Any]] = []
        self._parquet = is_parquet(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._parquet:
            pa, pq = _pyarrow()
            self._pa = pa
            self._schema = _parquet_schema(pa)
            self._writer = pq.ParquetWriter(self.path, self._schema)
        else:
            self._fh = self.path.open("w", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        if self._parquet:
            self._pending.append(_parquet_row(row))
            if len(self._pending) >= self._row_group:
                self._flush()
        else:
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.count += 1

    def _flush(self) -> None:
        if self._pending:
            table = self._pa.Table.from_pylist(self._pending, schema=self._schema)
            self._writer.write_table(table)
            self._pending = []

    def close(self) -> None:
        if self._parquet:
            self._flush()
            self._writer.close()
        else:
            self._fh.close()

    def __enter__(self) -> TracerTrajWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_tracertraj(
    trajectories: Iterable[Trajectory], path: str | os.PathLike[str], *, source: str | None = None,
    require_label: bool = True,
) -> int:
    """Write trajectories as TracerTraj rows to ``path`` (``.parquet`` or ``.jsonl``); returns the row count. The
    file is written whole or not at all: a row that fails (a run without a label) leaves ``path`` as it was."""

    def write(temporary: Path) -> int:
        with TracerTrajWriter(temporary) as writer:
            for trajectory in trajectories:
                writer.write(to_row(trajectory, source=source, require_label=require_label))
        return writer.count

    return write_replacing(path, write, empty=True)


def read_tracertraj(path: str | os.PathLike[str], *, default_source: str = "counterfactual") -> list[Trajectory]:
    """All trajectories of a TracerTraj file; the first bad row raises its ``InputError``."""
    out: list[Trajectory] = []
    for _where, item in iter_tracertraj(path, default_source=default_source):
        if isinstance(item, InputError):
            raise item
        out.append(item)
    return out
