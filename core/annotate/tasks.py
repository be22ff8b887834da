"""Task files for annotation: JSON Lines, one task per line.

Fields: ``id`` (or ``task_id``), ``task`` (or ``text``/``question``/``prompt``), ``ground_truth`` (or
``answer``). MBPP rows are understood as they are: ``text`` and ``test_list`` become the task (with the
first assert as the signature hint) and ``ground_truth = {"tests", "setup", "answer"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..fingerprint import stable_digest
from ..store import read_utf8_file


@dataclass
class TaskRow:
    """One task: its id, text, ground truth and any extra fields (kept as trajectory metadata)."""

    id: str
    task: str
    ground_truth: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


def task_fingerprint(row: TaskRow) -> str:
    """A digest of what a task asks (its text and ground truth): a dataset folder's labels hold for it only."""
    return stable_digest([row.task, row.ground_truth], 16)


def mbpp_task(row: dict[str, Any], *, where: str | None = None) -> TaskRow:
    """An MBPP row as a task: the problem, the first test as the signature hint, the asserts as checks
    (``InputError`` naming ``where`` for a row whose fields are not an MBPP row's)."""
    tests, problem = row["test_list"], row["text"]
    if not isinstance(tests, list) or not all(isinstance(test, str) for test in tests):
        raise InputError(f"'test_list' must be a list of assert texts, got {tests!r:.80}", where=where)
    if not isinstance(problem, str) or not problem.strip():
        raise InputError(f"'text' must be the problem's text, got {problem!r:.80}", where=where)
    check_task_id(row["task_id"], where=where)
    text = f"{problem}\nYour code should pass this test:\n{tests[0]}" if tests else problem
    truth = {"tests": tests, "setup": row.get("test_setup_code") or "", "answer": row.get("code")}
    return TaskRow(id=str(row["task_id"]), task=text, ground_truth=truth, metadata={"benchmark": "mbpp"})


def check_task_id(task_id: Any, *, where: str | None) -> None:
    """A task id is a non-empty text or a whole number (``InputError`` naming ``where`` otherwise)."""
    if isinstance(task_id, bool) or not isinstance(task_id, str | int) or not str(task_id).strip():
        raise InputError(f"the task id must be a non-empty text or a whole number, got {task_id!r:.80}", where=where)


def parse_task(row: Any, *, where: str) -> TaskRow:
    if not isinstance(row, dict):
        raise InputError(f"expected a JSON object, got {type(row).__name__}", where=where)
    if "test_list" in row and "text" in row and "task_id" in row:
        return mbpp_task(row, where=where)
    task_id = row.get("id", row.get("task_id"))
    text = next((row[k] for k in ("task", "text", "question", "prompt") if isinstance(row.get(k), str)), None)
    if task_id is None:
        raise InputError("no 'id' (or 'task_id')", where=where)
    check_task_id(task_id, where=where)
    if not text:
        raise InputError("no 'task' text (or 'text'/'question'/'prompt')", where=where)
    truth = row.get("ground_truth", row.get("answer"))
    extra = {k: v for k, v in row.items() if k not in ("id", "task_id", "task", "text", "question", "prompt",
                                                        "ground_truth", "answer")}
    return TaskRow(id=str(task_id), task=text, ground_truth=truth, metadata=extra)


def read_tasks(path: str | Path) -> list[TaskRow]:
    """Every task of a JSONL file; bad lines or repeated ids are one ``InputError`` that counts them all and names the
    first five (a long annotation or refine run starts on a whole file or not at all)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such tasks file: {path}")
    rows: list[TaskRow] = []
    seen: set[str] = set()
    problems: list[InputError] = []
    for number, line in enumerate(read_utf8_file(path).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(InputError(f"not valid JSON ({exc})", where=where))
            continue
        try:
            row = parse_task(data, where=where)
        except InputError as exc:
            problems.append(exc)
            continue
        if row.id in seen:
            problems.append(InputError(f"task id {row.id!r} appears twice", where=where))
            continue
        seen.add(row.id)
        rows.append(row)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        shown = "; ".join(str(problem).removeprefix(f"{path}:") for problem in problems[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise InputError(f"{len(problems)} bad task lines, none run: line {shown}{more}", where=str(path))
    if not rows:
        raise InputError(f"{path} has no tasks")
    return rows
