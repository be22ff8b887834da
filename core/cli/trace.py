"""``agentracer trace``: run a team factory on tasks and record every run."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError, TeamRunError
from ..loading import load_team
from ..store import open_store


def _tasks(task: str | None, tasks_file: str | None) -> list[dict]:
    if task is not None:
        return [{"task": task}]
    rows = []
    for number, line in enumerate(Path(tasks_file or "").read_text().splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc})", where=f"{tasks_file}:{number}") from None
            if not isinstance(row, dict) or "task" not in row:
                raise InputError("each line needs a 'task' field", where=f"{tasks_file}:{number}")
            rows.append(row)
    return rows


@click.command("trace")
@click.option("--team", "team_spec", required=True, help="MODULE:FACTORY that builds the team.")
@click.option("--task", help="One task text.")
@click.option("--tasks", "tasks_file", type=click.Path(exists=True, dir_okay=False),
              help="JSONL of {task, ground_truth?} rows.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Store (.jsonl or .db).")
def trace_command(team_spec: str, task: str | None, tasks_file: str | None, output: str) -> None:
    """Run the team on each task and append the recorded trajectories to OUTPUT."""
    if (task is None) == (tasks_file is None):
        raise click.UsageError("give exactly one of --task and --tasks")
    team = load_team(team_spec)
    store = open_store(output)
    failed = 0
    for row in _tasks(task, tasks_file):
        try:
            trajectory = team.run(row["task"], ground_truth=row.get("ground_truth"))
        except TeamRunError as exc:
            trajectory, failed = exc.trajectory, failed + 1
        store.append(trajectory)
        click.echo(f"{trajectory.id}: {len(trajectory.steps)} steps, success={trajectory.outcome.success}")
    if failed:
        click.echo(f"{failed} run(s) raised; their trajectories were saved with the error", err=True)
