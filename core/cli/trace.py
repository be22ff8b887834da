"""``agentracer trace``: run a team factory on tasks and record every run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import InputError, TeamBuildError, TeamRunError
from ..loading import load_team
from ..store import JsonlStore, SqliteStore, open_store
from ._io import Problems, check_not_source, check_output_store, same_file


def _task_row(line: str, where: str) -> dict[str, Any]:
    """One row of a tasks file: a JSON object whose ``task`` is text, or an MBPP row (as ``annotate`` reads it)."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"not valid JSON ({exc})", where=where) from None
    if isinstance(row, dict) and "task" not in row and {"test_list", "text", "task_id"} <= row.keys():
        from ..annotate.tasks import mbpp_task

        mbpp = mbpp_task(row, where=where)
        return {"task": mbpp.task, "ground_truth": mbpp.ground_truth, "id": mbpp.id, "where": where}
    if not isinstance(row, dict) or "task" not in row:
        raise InputError("each line needs a 'task' field", where=where)
    if not isinstance(row["task"], str):
        raise InputError(f"field 'task' must be text, got {type(row['task']).__name__}", where=where)
    if row.get("id") is not None:
        from ..annotate.tasks import check_task_id

        check_task_id(row["id"], where=where)
    return {**row, "where": where}


def _tasks(task: str | None, tasks_file: str | None, problems: Problems) -> Iterator[dict[str, Any]]:
    """The task rows to run; each bad line of the tasks file is reported (file:line) and skipped."""
    if task is not None:
        yield {"task": task, "where": "--task"}
        return
    data = Path(tasks_file or "").read_bytes().removeprefix(b"\xef\xbb\xbf")  # (a BOM, as some editors write)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        where = f"{tasks_file}:{number}"
        try:  # (a line that is not UTF-8 costs that line: the other tasks still run)
            line = raw.decode("utf-8")
            if not line.strip():
                continue
            row = _task_row(line, where)
        except UnicodeDecodeError as exc:
            problems.report(InputError(f"not UTF-8 text (byte {exc.start}: {exc.reason})", where=where))
            continue
        except InputError as exc:
            problems.report(exc)
            continue
        yield row


@click.command("trace")
@click.option("--team", "team_spec", required=True, help="MODULE:FACTORY that builds the team.")
@click.option("--task", help="One task text.")
@click.option("--tasks", "tasks_file", type=click.Path(exists=True, dir_okay=False),
              help="JSONL of {task, ground_truth?, id?} rows (an id is kept as the run's task_id), or MBPP rows.")
@click.option("--evaluator", "evaluator_spec", help="Ω to judge each run: mbpp, math, exact or MODULE:FUNCTION "
              "(default: the traced team's own, else the outcome stays unknown).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Store (.jsonl or .db).")
def trace_command(team_spec: str, task: str | None, tasks_file: str | None, evaluator_spec: str | None,
                  output: str) -> None:
    """Run the team on each task and append the recorded trajectories to OUTPUT.

    A bad line of --tasks gives one line naming the file and line; the other tasks still run; the exit code
    is then 2.
    """
    if (task is None) == (tasks_file is None):
        raise click.UsageError("give exactly one of --task and --tasks")
    if tasks_file is not None:
        check_not_source(tasks_file, output, why="the runs would be appended to the tasks")
    check_output_store(output)
    team = load_team(team_spec, evaluator_spec)
    problems = Problems()
    rows = list(_tasks(task, tasks_file, problems))
    if not rows and problems.count == 0:
        raise InputError("has no tasks (one JSON object with a 'task' per line)", where=tasks_file)
    store: JsonlStore | SqliteStore | None = open_store(output)
    own = getattr(team, "store", None)  # (a team traced with store=...: its runs go there as they end)
    if own is not None and getattr(own, "path", None) is not None and same_file(own.path, output):
        store = None  # (appended once, by the team)
    elif own is not None:
        click.echo(f"note: the team stores its runs in {getattr(own, 'path', own)} too", err=True)
    failed = 0
    for row in rows:
        try:
            metadata = {"task_id": str(row["id"]), "question_id": str(row["id"])} if row.get("id") is not None else None
            trajectory = team.run(row["task"], ground_truth=row.get("ground_truth"), metadata=metadata)
        except TeamRunError as exc:
            trajectory, failed = exc.trajectory, failed + 1
        except TeamBuildError as exc:  # (a factory that takes the task may refuse one): the next tasks still run
            problems.report(InputError(str(exc), where=row["where"]))
            continue
        if store is not None:
            store.append(trajectory)
        click.echo(f"{trajectory.id}: {len(trajectory.steps)} steps, success={trajectory.outcome.success}")
    if failed:
        click.echo(f"{failed} run(s) raised; their trajectories were saved with the error", err=True)
    problems.finish()
