"""Helpers shared by CLI commands: reading trajectories from any supported file, writing stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError
from ..schema import Trajectory
from ..store import open_store


def read_trajectories(path: str | Path) -> Iterator[Trajectory]:
    """Trajectories from a JSONL/SQLite store or a Who&When ``.json`` file."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", where=str(path))
    if path.suffix.lower() == ".json":
        from ..formats.whowhen import load_whowhen

        yield load_whowhen(path, root=path.parent)
        return
    yield from open_store(path)


def read_one(path: str | Path, trajectory_id: str | None = None) -> Trajectory:
    """One trajectory: the one with ``trajectory_id``, or the file's only/first one."""
    for trajectory in read_trajectories(path):
        if trajectory_id is None or trajectory.id == trajectory_id:
            return trajectory
    raise InputError(f"no trajectory with id {trajectory_id!r}" if trajectory_id else "no trajectory in file",
                     where=str(path))
