"""Write an output file whole or not at all: into a temporary file beside it, then moved into place."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path


def write_replacing(path: str | os.PathLike[str], write: Callable[[Path], int], *, empty: bool = False) -> int:
    """Call ``write`` on a temporary file beside ``path`` and move that onto ``path`` only if ``write`` returns a
    count above 0 (or, with ``empty``, any count); otherwise, or if it raises, the temporary file goes and ``path``
    stays as it was. Readers of ``path`` see the old file or the whole new one, never a part.

    The temporary file keeps ``path``'s suffix, which writers read the format from. Returns ``write``'s count.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    # beside the target, unique per process and thread; its stem cut so that a long name still fits the file system's
    # 255 bytes (the suffix is kept: writers read the format from it)
    temporary = target.with_name(f".{_short_stem(target)}.{os.getpid()}.{threading.get_ident() % 10**6}.tmp"
                                 f"{_kept_suffix(target)}")
    try:
        count = write(temporary)
        if count > 0 or empty:
            if not temporary.exists():
                if count > 0:  # (written, then deleted by someone else: never publish an empty file for it)
                    raise OSError(f"the temporary file {temporary} vanished before it could replace {target}")
                temporary.touch()
            with temporary.open("rb") as fh:
                os.fsync(fh.fileno())  # (on disk before the move: a crash leaves the old file or the new one)
            os.replace(temporary, target)
        return count
    finally:
        temporary.unlink(missing_ok=True)


def _kept_suffix(target: Path) -> str:
    """``target``'s suffix for its temporary file: a format's (``.jsonl``, ``.parquet``); one too long to be one (a
    name whose last dot is followed by a long text) is left out, so that the name still fits."""
    return target.suffix if len(os.fsencode(target.suffix)) <= 32 else ""


def _short_stem(target: Path) -> str:
    """``target``'s stem cut to what its temporary file's name has room for: 100 bytes (not characters: a name of
    wide characters fits too), fewer beside a long suffix, and never in the middle of a character."""
    raw = os.fsencode(target.stem)
    limit = max(0, min(100, 200 - len(os.fsencode(_kept_suffix(target)))))
    if len(raw) <= limit:
        return target.stem
    end = limit
    while end > max(0, limit - 3) and raw[end] & 0xC0 == 0x80:  # (a UTF-8 continuation byte: its character split)
        end -= 1
    return os.fsdecode(raw[:end])


def left_by_ended_writer(path: Path, pid: int) -> bool:
    """Whether a writer's leftover (a temporary file, a staging folder) named by process ``pid`` is stale: an hour
    untouched (``STALE_AFTER_S``) and that process gone (a live writer's are left alone)."""
    return pid != os.getpid() and time.time() - path.stat().st_mtime > STALE_AFTER_S and _process_ended(pid)


def _process_ended(pid: int) -> bool:
    """Whether no process of this id is running (one of another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # (alive, another user's)
        return False
    return False


STALE_AFTER_S = 3600.0
"""How long a temporary file must have gone unwritten before a writer whose process is gone counts as killed: a
process id says nothing across hosts or PID namespaces (containers sharing a volume), an hour without a write does."""
_LOOKED_AT: set[tuple[str, str]] = set()  # (folder, target name) whose leftovers this process has cleared


def _remove_stale_temporaries(target: Path) -> None:
    """Delete the temporary files that writers of ``target`` killed mid-write left beside it: an hour untouched and
    named by a process that has ended (a live writer's are left alone). Once per target and process: a folder of many
    files is not listed on every write."""
    key = (str(target.parent), target.name)
    if key in _LOOKED_AT:
        return
    _LOOKED_AT.add(key)
    stem, suffix = _short_stem(target), _kept_suffix(target)
    pattern = re.compile(rf"\.{re.escape(stem)}\.(\d+)\.\d+\.tmp{re.escape(suffix)}")
    with contextlib.suppress(OSError):
        for candidate in target.parent.glob(f".{glob.escape(stem)}.*.tmp{glob.escape(suffix)}"):
            found = pattern.fullmatch(candidate.name)
            if found is not None and left_by_ended_writer(candidate, int(found.group(1))):
                candidate.unlink(missing_ok=True)


def write_text_replacing(path: str | os.PathLike[str], text: str) -> None:
    """``write_replacing`` of a UTF-8 text file (written even when empty)."""
    write_replacing(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), empty=True)
