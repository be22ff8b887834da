"""The whole-or-nothing writer: a kill leaves the old file or the new one, and its leftovers go with a later write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agentracer.atomic import write_text_replacing


def test_temporaries_of_writers_killed_mid_write_go_with_the_next_write(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    target = tmp_path / "labelled.jsonl"
    dead = tmp_path / f".labelled.{ended.pid}.12345.tmp.jsonl"  # as a writer killed mid-write leaves it
    alive = tmp_path / f".labelled.{os.getppid()}.12345.tmp.jsonl"  # a writer still at work
    other = tmp_path / f".trajectories.{ended.pid}.12345.tmp.jsonl"  # another file's
    for leftover in (dead, alive, other):
        leftover.write_text("half a file")
    write_text_replacing(target, "whole\n")
    assert target.read_text() == "whole\n"
    assert not dead.exists() and alive.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, alive.name, other.name])
