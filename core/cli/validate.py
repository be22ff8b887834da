"""``agentracer validate``: check every record of one or more files against the trajectory schema."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ._io import Problems, iter_trajectories


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
def validate(files: tuple[str, ...]) -> None:
    """Validate each record of FILES: .jsonl/.db stores (each record needs at least its id and steps),
    trajectory or Who&When .json files, TracerTraj .parquet or .jsonl, OTLP/JSON traces. One line per problem
    (file, record, field), then a summary; exit code 2 if any problem (a file with no record is one)."""
    problems = Problems()
    records = 0
    for name in files:
        path = Path(name)
        if not path.is_file():
            problems.report(InputError("no such file" if not path.exists() else "not a file", where=name))
            continue
        seen: dict[str, int] = {}
        problems_before = problems.count
        try:
            for position, trajectory in enumerate(iter_trajectories(path, problems), start=1):
                if trajectory.id in seen:
                    problems.report(InputError(f"id {trajectory.id!r} repeats the {_ordinal(seen[trajectory.id])} "
                                               "good record", where=f"{name} ({_ordinal(position)} good record)"))
                    continue
                records += 1
                seen[trajectory.id] = position
        except InputError as exc:  # the file as a whole cannot be read (e.g. not an SQLite database)
            problems.report(exc)
        if not seen and problems.count == problems_before:
            problems.report(InputError("no record in the file (empty)", where=name))
    click.echo(f"validated {records} good record(s) in {len(files)} file(s); {problems.count} problem(s)")
    problems.finish()
