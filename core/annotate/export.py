"""Export a labelled set: our JSONL (the trainer's input), TracerTraj JSONL and Parquet, verl rows."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..atomic import write_text_replacing
from ..schema import Trajectory
from .ledger import write_trajectories

LABEL_SOURCES = ("counterfactual", "injection")


def labelled(trajectories: Sequence[Trajectory]) -> list[Trajectory]:
    """The trajectories that carry a counterfactual or injection label."""
    return [t for t in trajectories if any(v.source in LABEL_SOURCES for v in t.labels)]


def export_labelled(trajectories: Sequence[Trajectory], out_dir: str | Path, *, training_rows: bool = False) -> dict[str, int]:
    """Write ``labelled.jsonl``, ``tracertraj.jsonl`` and (with pyarrow) ``tracertraj.parquet``; with
    ``training_rows`` also verl's ``train/`` rows through ``agentracer.trainer``. Returns counts written."""
    out = Path(out_dir)
    rows = labelled(trajectories)
    write_trajectories(out / "labelled.jsonl", rows)
    counts = {"trajectories": len(trajectories), "labelled": len(rows)}
    from ..formats.tracertraj import parquet_available, write_tracertraj

    tmp = out / ".tracertraj.jsonl.tmp"
    counts["tracertraj_jsonl"] = write_tracertraj(rows, tmp)
    tmp.replace(out / "tracertraj.jsonl")
    if not parquet_available():
        counts["tracertraj_parquet"] = 0
        warnings.warn(f"{out / 'tracertraj.parquet'} not written: pyarrow is not installed (pip install pyarrow); "
                      "tracertraj.jsonl holds the same rows", RuntimeWarning, stacklevel=2)
    else:
        tmp = out / ".tracertraj.parquet.tmp.parquet"
        counts["tracertraj_parquet"] = write_tracertraj(rows, tmp)
        tmp.replace(out / "tracertraj.parquet")
    if training_rows and rows:
        from ..trainer.data import prepare

        report = prepare(out / "labelled.jsonl", out / "train", val_fraction=0.1)  # (one val task at least, of two)
        counts["train_rows"] = report.train + report.val
    write_text_replacing(out / "export.json", json.dumps(counts, indent=2))
    return counts
