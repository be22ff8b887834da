"""One writer at a time for an output file that a command resumes: a second process is refused at once.

Two processes appending to the same results file would each evaluate every item and write it twice. The lock is an
advisory ``flock`` on a hidden file beside the output (the output itself is replaced when it is repaired, which
would drop a lock held on it); the system releases it when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The hidden lock file of ``path``."""
    target = Path(path)
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def sole_writer(path: str | os.PathLike[str], command: str) -> Iterator[None]:
    """Hold ``path``'s lock while the block runs; ``InputError`` at once when another process holds it."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            raise InputError(f"another process{f' (pid {holder})' if holder.isdigit() else ''} is writing it "
                             f"({command}); wait for it to end, or write to another file", where=str(path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # (closing the descriptor releases the lock)
