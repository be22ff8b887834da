"""Write an output file whole or not at all: into a temporary file beside it, then moved into place."""

from __future__ import annotations

import os
import threading
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
    # beside the target, unique per process and thread; its stem cut so that a long name still fits the file system's
    # 255 bytes (the suffix is kept: writers read the format from it)
    temporary = target.with_name(f".{target.stem[:100]}.{os.getpid()}.{threading.get_ident() % 10**6}.tmp"
                                 f"{target.suffix}")
    try:
        count = write(temporary)
        if count > 0 or empty:
            if not temporary.exists():
                temporary.touch()
            with temporary.open("rb") as fh:
                os.fsync(fh.fileno())  # (on disk before the move: a crash leaves the old file or the new one)
            os.replace(temporary, target)
        return count
    finally:
        temporary.unlink(missing_ok=True)


def write_text_replacing(path: str | os.PathLike[str], text: str) -> None:
    """``write_replacing`` of a UTF-8 text file (written even when empty)."""
    write_replacing(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), empty=True)
