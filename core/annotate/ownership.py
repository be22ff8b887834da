"""Which output folders annotate may write into: a new one, or one it wrote before (to resume), never a folder whose
files of the same names (a traced store, someone's notes, a demo's runs) it would replace."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..exclusive import lock_path

MARK = ".agentracer-annotate"  # (written before the first task runs: a folder a killed run left is resumed)
OUTPUTS = ("ledger.jsonl", "trajectories.jsonl", "labelled.jsonl", "tracertraj.jsonl", "tracertraj.parquet",
           "export.json", "runs", "tasks")


def check_out_dir(out: Path) -> None:
    """Refuse, before any work, an output folder holding files of annotate's names that annotate did not write."""
    if out.exists() and not out.is_dir():
        raise InputError("is a file: give annotate a dataset folder", where=str(out))
    if not out.exists() or owned(out):
        return
    taken = [name for name in OUTPUTS if (out / name).exists() or (out / name).is_symlink()]
    if taken:
        raise InputError(f"holds {', '.join(taken)}, not written by annotate: the annotation would replace "
                         f"{'them' if len(taken) > 1 else 'it'}; give annotate a new folder (or its own earlier one "
                         "to resume)", where=str(out))


def claim_out_dir(out: Path) -> None:
    """Check ``out`` and mark it as annotate's (a later run resumes it)."""
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    mark = out / MARK
    if not mark.is_file():
        mark.write_text("written by `agentracer annotate`, which resumes this folder and replaces its exports\n",
                        encoding="utf-8")


def owned(out: Path) -> bool:
    """Whether annotate wrote ``out``: it is marked, or (a folder of a version before the mark) holds annotate's
    ledger, its export counts, or the lock of its ledger (a run killed before its first ledger line leaves that and
    the runs it kept for the next run to reuse)."""
    return ((out / MARK).is_file() or _is_ledger(out / "ledger.jsonl") or _is_export_counts(out / "export.json")
            or lock_path(out / "ledger.jsonl").is_file())


def _first_record(path: Path) -> object:
    """The first line of ``path`` that reads as JSON (None if none does, or it cannot be read)."""
    try:
        with path.open("rb") as fh:
            for line in fh:
                try:
                    return json.loads(line)
                except ValueError:  # (a torn line)
                    continue
    except OSError:
        pass
    return None


def _is_ledger(path: Path) -> bool:
    record = _first_record(path) if path.is_file() else None
    return isinstance(record, dict) and "task_id" in record and "status" in record


def _is_export_counts(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        counts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(counts, dict) and {"trajectories", "labelled"} <= counts.keys()
            and all(isinstance(v, int) for v in counts.values()))
