"""Export a labelled set: our JSONL (the trainer's input), TracerTraj JSONL and Parquet, verl rows."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..atomic import write_text_replacing
from ..schema import Trajectory
from .ledger import iter_trajectories, write_trajectories

LABEL_SOURCES = ("counterfactual", "injection")


def is_labelled(trajectory: Trajectory) -> bool:
    """Whether a trajectory carries a counterfactual or injection label."""
    return any(v.source in LABEL_SOURCES for v in trajectory.labels)


def export_labelled(trajectories: Iterable[Trajectory], out_dir: str | Path, *,
                    training_rows: bool = False) -> dict[str, int]:
    """Write ``labelled.jsonl``, ``tracertraj.jsonl`` and (with pyarrow) ``tracertraj.parquet``; with
    ``training_rows`` also verl's ``train/`` rows through ``agentracer.trainer``. Returns counts written. The
    trajectories are streamed (read once; the TracerTraj files are written from ``labelled.jsonl``)."""
    out = Path(out_dir)
    seen = {"trajectories": 0}

    def counted() -> Iterator[Trajectory]:
        for trajectory in trajectories:
            seen["trajectories"] += 1
            if is_labelled(trajectory):
                yield trajectory

    kept = write_trajectories(out / "labelled.jsonl", counted())
    counts = {"trajectories": seen["trajectories"], "labelled": kept}
    from ..formats.tracertraj import parquet_available, write_tracertraj

    counts["tracertraj_jsonl"] = write_tracertraj(iter_trajectories(out / "labelled.jsonl"), out / "tracertraj.jsonl")
    if not parquet_available():
        counts["tracertraj_parquet"] = 0
        warnings.warn(f"{out / 'tracertraj.parquet'} not written: pyarrow is not installed (pip install pyarrow); "
                      "tracertraj.jsonl holds the same rows", RuntimeWarning, stacklevel=2)
    else:
        counts["tracertraj_parquet"] = write_tracertraj(iter_trajectories(out / "labelled.jsonl"),
                                                        out / "tracertraj.parquet")
    if training_rows and kept:
        from ..trainer.data import prepare

        report = prepare(out / "labelled.jsonl", out / "train", val_fraction=0.1)  # (one val task at least, of two)
        counts["train_rows"] = report.train + report.val
    write_text_replacing(out / "export.json", json.dumps(counts, indent=2))
    return counts
