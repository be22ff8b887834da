"""The whole-or-nothing writer: a kill leaves the old file or the new one, and its leftovers go with a later write."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from agentracer.atomic import STALE_AFTER_S, write_text_replacing


def test_temporaries_of_writers_killed_mid_write_go_with_the_next_write(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    target = tmp_path / "labelled.jsonl"
    dead = tmp_path / f".labelled.{ended.pid}.12345.tmp.jsonl"  # as a writer killed mid-write leaves it
    alive = tmp_path / f".labelled.{os.getppid()}.12345.tmp.jsonl"  # a writer still at work
    other = tmp_path / f".trajectories.{ended.pid}.12345.tmp.jsonl"  # another file's
    recent = tmp_path / f".labelled.{ended.pid}.999.tmp.jsonl"  # its pid means nothing here (another host's?)
    an_hour_ago = time.time() - STALE_AFTER_S - 60
    for leftover in (dead, alive, other, recent):
        leftover.write_text("half a file")
        if leftover is not recent:
            os.utime(leftover, (an_hour_ago, an_hour_ago))
    write_text_replacing(target, "whole\n")
    assert target.read_text() == "whole\n"
    assert not dead.exists() and alive.exists() and other.exists() and recent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, alive.name, other.name, recent.name])


def test_a_temporary_file_deleted_under_a_writer_fails_the_write_and_keeps_the_file(tmp_path: Path) -> None:
    import pytest
    from agentracer.atomic import write_replacing

    target = tmp_path / "out.jsonl"
    target.write_text("earlier\n")

    def write_then_lose(temporary: Path) -> int:
        temporary.write_text("new\n")
        temporary.unlink()  # as another host's cleanup might
        return 1

    with pytest.raises(OSError, match="vanished"):
        write_replacing(target, write_then_lose)
    assert target.read_text() == "earlier\n"


def test_a_long_name_of_wide_characters_is_written(tmp_path: Path) -> None:
    """80 "あ" and ".html" is 245 bytes, a valid name: its temporary file kept 100 characters of the stem, 300 bytes,
    and the write failed with "File name too long"."""
    for stem in ("あ" * 80, "é" * 120, "x" * 250, "ab" + "€" * 66):
        target = tmp_path / f"{stem}.html"
        write_text_replacing(target, "<p>page</p>")
        assert target.read_text() == "<p>page</p>"
        write_text_replacing(target, "<p>again</p>")  # (and the leftovers' look-up reads the same short name)
        assert target.read_text() == "<p>again</p>"
    for name in ("r." + "あ" * 80, "v1.2." + "x" * 240):  # (a long text after the last dot: no format's suffix)
        write_text_replacing(tmp_path / name, "x")
        assert (tmp_path / name).read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
