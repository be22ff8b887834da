"""A resumable ledger: which tasks are finished, written so a kill at any moment loses and duplicates nothing.

A task's outputs go to their own file, written whole (temporary file, fsync, rename); only then is one
short line appended to ``ledger.jsonl`` with a single ``write``. On restart, a task counts as done when its
ledger line is there; anything else is redone and its output file replaced, never appended to. A failed run
closed unlabelled and ``incomplete`` (analyzer calls failed, so steps went untried; older versions wrote such
lines when the analyzer's server was down) does not count either: it is redone, and its next line counts.
A task left unlabelled because the budget ran out is written ``open`` (older versions wrote it ``done``, with
``stopped: budget spent``): the next run does it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..atomic import write_replacing
from ..errors import InputError
from ..schema import Trajectory


def safe_name(task_id: str) -> str:
    """A file name for a task id (readable when it can be, hashed when it cannot)."""
    if re.fullmatch(r"[A-Za-z0-9._-]{1,80}", task_id) and not task_id.startswith("."):
        return task_id
    return re.sub(r"[^A-Za-z0-9._-]", "_", task_id)[:40] + "-" + hashlib.sha256(task_id.encode()).hexdigest()[:12]


def write_trajectories(path: Path, trajectories: Iterable[Trajectory]) -> int:
    """Write ``trajectories`` as JSON Lines, one at a time (never all in memory), whole or not at all; the count."""
    def write(temporary: Path) -> int:
        count = 0
        with temporary.open("w", encoding="utf-8") as fh:
            for trajectory in trajectories:
                fh.write(trajectory.to_json() + "\n")
                count += 1
        return count

    return write_replacing(path, write, empty=True)


def iter_trajectories(path: Path) -> Iterator[Trajectory]:
    """The trajectories of a JSON Lines file this package wrote, streamed (lines split at "\\n" only); a line that
    does not read is an ``InputError`` naming ``path:line``."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    trajectory = Trajectory.model_validate_json(line)
                except ValueError as exc:  # (a ValidationError: bad JSON, a field of the wrong type)
                    detail = str(exc).splitlines()
                    raise InputError(f"does not read as a trajectory ({detail[-1].strip()[:200] if detail else exc}); "
                                     "delete a task's file under tasks/ to have the task annotated again",
                                     where=f"{path}:{number}") from None
                yield trajectory


def read_trajectories(path: Path) -> list[Trajectory]:
    return list(iter_trajectories(path))


def output_problem(path: Path) -> str | None:
    """What is wrong with a finished task's output file at a glance (missing, empty, or a line that is not a whole
    JSON object: cut short, or edited by hand), else None. The bytes are looked at, not parsed: a resumed run checks
    every finished task this way, and the export, which parses them, names a line that still does not read."""
    if not path.exists():
        return f"its output {path} is missing"
    with path.open("rb") as fh:
        number = 0
        for number, line in enumerate(fh, start=1):
            text = line.strip()
            if not line.endswith(b"\n") or (text and not (text.startswith(b"{") and text.endswith(b"}"))):
                return f"its output {path}:{number} is damaged (not a whole JSON object)"
    return None if number else f"its output {path} is empty"


def is_finished(entry: Any) -> bool:
    """Whether a ledger line closes its task: ``done``, and not left unlabelled because steps went untried."""
    if not (isinstance(entry, dict) and entry.get("status") == "done" and "task_id" in entry):
        return False
    untried = entry.get("label") is None and str(entry.get("stopped", "")).startswith(("incomplete:", "budget"))
    return not untried


class Ledger:
    """``ledger.jsonl`` of finished tasks under a dataset folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root / "ledger.jsonl"

    def _lines(self) -> Iterator[Any]:
        """Each line's JSON, in order (a torn last line from a kill is skipped)."""
        if not self.path.exists():
            return
        for line in self.path.read_text(encoding="utf-8").split("\n"):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue

    def entries(self) -> dict[str, dict[str, Any]]:
        """Finished tasks by id, each as its latest finished entry (a task done without a label for want of a
        model is done again by a run that has it)."""
        return self.read()[0]

    def task_fingerprints(self) -> dict[str, str]:
        """The fingerprint of what each task asked when it was last annotated (entries that hold one)."""
        return self.read()[1]

    def read(self) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """``entries()`` and ``task_fingerprints()`` from one read of the file."""
        finished: dict[str, dict[str, Any]] = {}
        fingerprints: dict[str, str] = {}
        for entry in self._lines():
            if is_finished(entry):
                finished[str(entry["task_id"])] = entry
            if isinstance(entry, dict) and isinstance(entry.get("task_hash"), str) and "task_id" in entry:
                fingerprints[str(entry["task_id"])] = entry["task_hash"]
        return finished, fingerprints

    def record(self, entry: dict[str, Any]) -> None:
        """Append one entry with a single write (after a torn line, start on a fresh line)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, sort_keys=True, default=str) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.lseek(fd, 0, os.SEEK_END)
            if size:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":
                    line = "\n" + line
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
