"""One writer at a time for a resumable output: a second is refused at once, wherever the output is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from agentracer.errors import InputError
from agentracer.exclusive import lock_path, sole_writer


def test_a_second_process_is_refused_and_the_lock_goes_with_the_first(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    holder = ("import sys, time; from agentracer.exclusive import sole_writer\n"
              "with sole_writer(sys.argv[1], 'a test'):\n    print('held', flush=True); time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", holder, str(output)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=rf"another process \(pid {proc.pid}, a test\) is writing it"):
            with sole_writer(tmp_path / "." / "results.jsonl", "a second"):  # (the same file, spelt otherwise)
                pass
    finally:
        proc.kill()
        proc.wait()
    with sole_writer(output, "after it"):  # a killed holder's lock is gone with it
        pass
    assert [p.name for p in tmp_path.iterdir()] == [lock_path(output).name]  # (hidden, beside the output)


def test_any_output_name_or_folder_can_be_locked(tmp_path: Path) -> None:
    long_name = tmp_path / ("r" * 245 + ".jsonl")  # (251 bytes: a lock name adding to it would not fit)
    with sole_writer(long_name, "a long name"):
        pass
    assert lock_path(long_name) != lock_path(tmp_path / "other.jsonl") and len(lock_path(long_name).name) < 120
    with sole_writer("/dev/null", "an output that is no file"):
        pass
    assert not Path("/dev").joinpath(lock_path("/dev/null").name).exists()


def test_a_link_planted_where_the_lock_goes_is_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA the victim's key\n")
    output = tmp_path / "results.jsonl"
    lock_path(output).symlink_to(victim)
    with pytest.raises(InputError, match="cannot take the lock"):
        with sole_writer(output, "eval"):
            pass
    assert victim.read_text() == "ssh-ed25519 AAAA the victim's key\n"


def test_a_link_to_the_output_and_a_long_name_of_wide_characters_lock_alike(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    output.write_text("")
    (tmp_path / "link.jsonl").symlink_to(output)
    with sole_writer(output, "a first"):
        with pytest.raises(InputError, match="another process"):
            with sole_writer(tmp_path / "link.jsonl", "through a link"):
                pass
    wide = tmp_path / ("结果" * 40 + ".jsonl")  # (246 bytes of UTF-8)
    with sole_writer(wide, "a wide name"):
        pass


def test_a_lock_file_this_user_cannot_write_is_still_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another user's lock file (0644, not ours): opened read-only, still locked, still refusing a second writer."""
    import errno
    import os

    output = tmp_path / "results.jsonl"
    with sole_writer(output, "another user's run"):  # (made the lock file)
        pass
    real_open = os.open

    def as_another_user(path, flags, *args):  # noqa: ANN001, ANN002
        if str(path).endswith(".lock") and flags & os.O_RDWR:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr("agentracer.exclusive.os.open", as_another_user)
    with sole_writer(output, "read-only lock"):
        with pytest.raises(InputError, match="another process"):
            with sole_writer(output, "a second"):
                pass
    readonly = tmp_path / "ro"
    readonly.mkdir()
    with sole_writer(readonly / "new.jsonl", "a folder that takes no new file"):  # (no lock file, none made)
        pass
