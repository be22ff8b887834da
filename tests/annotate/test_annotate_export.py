"""Exporting a labelled dataset where pyarrow is only a stand-in module (MetaGPT's environment installs one)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from agentracer.annotate.export import export_labelled
from agentracer.formats.tracertraj import parquet_available
from agentracer.schema import Step, Trajectory, Verdict


def test_a_stand_in_pyarrow_without_parquet_skips_the_parquet_file_and_says_so(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", types.ModuleType("pyarrow"))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # importing it raises ImportError
    assert parquet_available() is False
    run = Trajectory(id="r", task="t", steps=[Step(index=0, agent="a", content="x")],
                     labels=[Verdict(agent="a", step=0, source="counterfactual")])
    with pytest.warns(RuntimeWarning, match=r"tracertraj.parquet not written: pyarrow is not installed"):
        counts = export_labelled([run], tmp_path)
    assert counts["labelled"] == 1 and counts["tracertraj_jsonl"] == 1 and counts["tracertraj_parquet"] == 0
    assert (tmp_path / "tracertraj.jsonl").exists() and not (tmp_path / "tracertraj.parquet").exists()


def test_training_rows_of_a_small_set_keep_a_validation_row(tmp_path: Path) -> None:
    """verl refuses an empty validation set: a set of a few tasks still puts one in val."""
    import pyarrow.parquet as pq
    runs = [Trajectory(id=f"r{i}", task=f"task {i}",
                       steps=[Step(index=0, agent="user", content=f"task {i}"),
                              Step(index=1, agent="a", content=f"wrong {i}")],
                       labels=[Verdict(agent="a", step=1, source="counterfactual")]) for i in range(4)]
    counts = export_labelled(runs, tmp_path, training_rows=True)
    train, val = (pq.read_metadata(tmp_path / "train" / f"{name}.parquet").num_rows for name in ("train", "val"))
    assert counts["train_rows"] == 4 and val >= 1 and train + val == 4
