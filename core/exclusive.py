"""One writer at a time for an output file that a command resumes: a second process is refused at once.

Two processes appending to the same results file would each evaluate every item and write it twice. The lock is an
advisory ``flock`` on a file named by a digest of the output's resolved path, in this user's folder under the system's
temporary directory: never beside the output (which is replaced when it is repaired, dropping a lock held on it; whose
folder may not be writable; whose name may leave no room for more), and released by the system when the process
ends, however it ends. It guards one machine: processes on two hosts sharing a network folder do not see it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of the output ``path``."""
    resolved = str(Path(path).expanduser().resolve())
    digest = hashlib.sha256(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    owner = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"agentracer-locks-{owner}" / f"{digest}.lock"


@contextlib.contextmanager
def sole_writer(path: str | os.PathLike[str], command: str) -> Iterator[None]:
    """Hold ``path``'s lock while the block runs; ``InputError`` at once when another process holds it, naming its
    process id and ``command`` (what it is doing)."""
    lock = lock_path(path)
    lock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _, what = os.pread(fd, 200, 0).decode("utf-8", "replace").strip().partition(" ")
            holder = f" (pid {pid}{f', {what}' if what else ''})" if pid.isdigit() else ""
            raise InputError(f"another process{holder} is writing it; wait for it to end, or write to another file",
                             where=str(path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {command}".encode(), 0)
        yield
    finally:
        os.close(fd)  # (closing the descriptor releases the lock)
