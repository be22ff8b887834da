"""``agentracer validate``: check every record of one or more files against the trajectory schema."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ._io import Problems, iter_located


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
        seen: dict[str, str] = {}
        problems_before = problems.count
        try:
            for where, trajectory in iter_located(path, problems):
                if trajectory.id in seen:
                    problems.report(InputError(f"id {trajectory.id!r} repeats the record at {seen[trajectory.id]}",
                                               where=where))
                    continue
                records += 1
                seen[trajectory.id] = where
        except InputError as exc:  # the file as a whole cannot be read (e.g. not an SQLite database)
            problems.report(exc)
        if not seen and problems.count == problems_before:
            problems.report(InputError("no record in the file (empty)", where=name))
    click.echo(f"validated {records} good record(s) in {len(files)} file(s); {problems.count} problem(s)")
    problems.finish()
