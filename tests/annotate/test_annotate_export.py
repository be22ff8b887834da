"""Exporting a labelled dataset where pyarrow is only a stand-in module (MetaGPT's environment installs one)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from agentracer.annotate.export import export_labelled
from agentracer.formats.tracertraj import parquet_available
from agentracer.schema import Step, Trajectory, Verdict


def test_a_stand_in_pyarrow_without_parquet_skips_the_parquet_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", types.ModuleType("pyarrow"))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # importing it raises ImportError
    assert parquet_available() is False
    run = Trajectory(id="r", task="t", steps=[Step(index=0, agent="a", content="x")],
                     labels=[Verdict(agent="a", step=0, source="counterfactual")])
    counts = export_labelled([run], tmp_path)
    assert counts["labelled"] == 1 and counts["tracertraj_jsonl"] == 1 and counts["tracertraj_parquet"] == 0
    assert (tmp_path / "tracertraj.jsonl").exists() and not (tmp_path / "tracertraj.parquet").exists()
