"""One writer at a time for an output file that a command resumes: a second process is refused at once.

Two processes appending to the same results file would each evaluate every item and write it twice. The lock is an
advisory ``flock`` on a hidden file beside the output, named from the output's name and a digest of it (the output
itself is replaced when it is repaired, which would drop a lock held on it): beside it, the lock is seen by every
user and every job that can write the output, whatever their temporary folders, and on network file systems that
support ``flock`` (a link to the output locks the file it names). It is opened without following a link, read-only
when another user made it, and released by the system when the process ends. An output that is not a regular file
(``/dev/null``), or in a folder that takes no new file (read-only media) and has no lock yet, is written without one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of the output ``path``: hidden, beside the file it names (a link followed, so that every name of
    one file has one lock), short enough for any name."""
    target = Path(path)
    with contextlib.suppress(OSError):
        target = target.resolve() if target.is_symlink() else target
    raw = target.name.encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(raw).hexdigest()[:12]
    short = raw[:80].decode("utf-8", "ignore")  # (80 bytes, not characters: a name of wide characters fits too)
    return target.with_name(f".{short}.{digest}.lock")


_NO_NEW_FILE = (errno.EACCES, errno.EPERM, errno.EROFS)


def _lock_descriptor(path: Path) -> tuple[int | None, bool]:
    """The lock file opened for ``path``, and whether it may be written (a lock another user made is taken read-only);
    None where no lock can be or need be taken."""
    if path.exists() and not path.is_file():  # (a device, a pipe: nothing to resume, nothing to guard)
        return None, False
    lock = lock_path(path)
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644), True
    except OSError as exc:
        if exc.errno not in _NO_NEW_FILE:  # a link planted where the lock goes, and the like: never written through
            raise InputError(f"cannot take the lock {lock} ({exc.strerror or exc})", where=str(path)) from None
    try:  # another user's lock file, or a folder that takes no new file (read-only media)
        return os.open(lock, os.O_RDONLY | os.O_NOFOLLOW), False
    except OSError:  # (no lock file there, and none can be made: the output can only be an existing file)
        return None, False


@contextlib.contextmanager
def sole_writer(path: str | os.PathLike[str], command: str) -> Iterator[None]:
    """Hold ``path``'s lock while the block runs; ``InputError`` at once when another process holds it, naming its
    process id and ``command`` (what it is doing)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, writable = _lock_descriptor(target)
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _, what = os.pread(fd, 200, 0).decode("utf-8", "replace").strip().partition(" ")
            holder = f" (pid {pid}{f', {what}' if what else ''})" if pid.isdigit() else ""
            raise InputError(f"another process{holder} is writing it; wait for it to end, or write to another file",
                             where=str(path)) from None
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {command}".encode(), 0)
        yield
    finally:
        os.close(fd)  # (closing the descriptor releases the lock)
