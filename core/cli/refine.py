"""``agentracer refine``: self-correction over a task set, with the success rate per round."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from ..errors import InputError
from ..exclusive import sole_writer
from ._io import check_not_source, check_output_store


def _check_tracer_model(tracer_name: str, tracer_model: str | None) -> None:
    """A model-based attribution method needs --tracer-model (refine has no --model)."""
    from ..tracer import MODEL_FREE, canonical_name

    name = canonical_name(tracer_name)
    if name not in MODEL_FREE and tracer_model is None:
        raise click.UsageError(f"--tracer {name} needs --tracer-model "
                               "(e.g. openai:http://127.0.0.1:8000/v1@Qwen3-8B)")


def _earlier_results(store: Any, strategy: str, mode: str, rounds: int, fingerprints: dict[str, str]
                     ) -> dict[str, Any]:
    """The attempts an earlier run wrote into OUT, by task: each task's latest (its rounds are written together,
    round 0 first); one stopped by an error says so (``error``) and is done again. Attempts made with another
    strategy, mode or number of rounds, or for a task whose text or ground truth changed since (``fingerprints``:
    each task's now), are refused: taken as done, they would report another experiment's results."""
    from ..refine import RefineResult, RoundResult
    from ..store import whole_records

    results: dict[str, RefineResult] = {}
    changed: list[str] = []
    for trajectory in whole_records(store):
        task_id, info = trajectory.metadata.get("task_id"), trajectory.metadata.get("refine") or {}
        if task_id is None or not isinstance(info.get("round"), int):
            continue
        for key, name, now in (("strategy", "strategy", strategy), ("run_mode", "mode", mode),
                               ("rounds", "rounds", rounds)):
            if info.get(key, now) != now:  # (attempts of older versions name no mode or rounds: taken as they are)
                raise InputError(f"holds attempts made with {name} {info.get(key)!r}, not {now!r}: write these to "
                                 "another file", where=str(store.path))
        recorded, now_asked = info.get("task_hash"), fingerprints.get(str(task_id))
        if recorded is not None and now_asked is not None and recorded != now_asked:  # (older files hold no hash)
            changed.append(str(task_id))
        if info["round"] == 0:
            results[str(task_id)] = RefineResult(strategy, str(info.get("run_mode", info.get("mode"))))
        result = results.get(str(task_id))
        if result is not None:
            result.rounds.append(RoundResult(info["round"], trajectory, bool(trajectory.outcome.success)))
            result.error = info.get("error") or result.error
    for task_id, result in list(results.items()):  # a task whose last rounds a kill left unwritten is done again
        finished = result.error is not None or any(r.success for r in result.rounds) or len(result.rounds) > rounds
        if not finished:
            del results[task_id]
    if changed:
        shown = ", ".join(repr(i) for i in sorted(set(changed))[:3])
        raise InputError(f"holds attempts at tasks whose text or ground truth changed since ({shown}): write these "
                         "to another file", where=str(store.path))
    return results


@click.command()
@click.option("--team", "team_spec", required=True, help="MODULE:FACTORY (or FILE.py:FACTORY) building the team")
@click.option("--tasks", "tasks_path", required=True, type=click.Path(dir_okay=False), help="tasks JSONL")
@click.option("--evaluator", "evaluator_spec", required=True, help="Ω: mbpp, math, exact or MODULE:FUNCTION")
@click.option("--strategy", type=click.Choice(["tracer", "self-refine", "critic"]), default="tracer", show_default=True)
@click.option("--mode", type=click.Choice(["restart", "replay"]), default="restart", show_default=True)
@click.option("--tracer", "tracer_name", default="lite", show_default=True, help="attribution method")
@click.option("--tracer-model", help="model SPEC for a model-based attribution method")
@click.option("--critic", help="model SPEC for the self-refine / critic baselines")
@click.option("--reviser", help="model SPEC rewriting the decisive step in replay mode")
@click.option("--rounds", default=3, show_default=True, help="correction rounds after the first run")
@click.option("-o", "--out", "--output", "out_path", type=click.Path(dir_okay=False),
              help="write every attempt to this store (.jsonl, or .db for SQLite); run again to resume: tasks whose "
                   "attempts it holds are not redone")
def refine(team_spec: str, tasks_path: str, evaluator_spec: str, strategy: str, mode: str, tracer_name: str,
           tracer_model: str | None, critic: str | None, reviser: str | None, rounds: int, out_path: str | None) -> None:
    """Run each task; while Ω fails, feed back the verdict (or a critique) and run again. Exit 1 when a task was
    stopped by an error (each is printed; the others' rounds are kept, and a rerun into -o does it again)."""
    from ..annotate.tasks import read_tasks
    from ..loading import load_team
    from ..models import load_model
    from ..refine import Refiner
    from ..tracer import get_method

    if rounds < 0:
        raise InputError("--rounds must be 0 or more")
    if strategy == "tracer":
        _check_tracer_model(tracer_name, tracer_model)
    if out_path is not None:
        check_not_source(tasks_path, out_path, why="the attempts would be appended to the tasks")
        check_output_store(out_path)  # (a .json name, another program's database: the attempts would spoil it)
    tasks = read_tasks(tasks_path)
    tracer = get_method(tracer_name, tracer_model) if strategy == "tracer" else None
    refiner = Refiner(load_team(team_spec), evaluator_spec, tracer, strategy=strategy, mode=mode,
                      critic=load_model(critic) if critic else None, reviser=load_model(reviser) if reviser else None)
    held = contextlib.ExitStack()  # (one process at a time resumes an output: a second one is refused at once)
    if out_path is not None:
        held.enter_context(sole_writer(out_path, "agentracer refine"))
    with held:
        _refine_tasks(tasks, refiner, out_path, strategy, mode, rounds)


def _refine_tasks(tasks: list[Any], refiner: Any, out_path: str | None, strategy: str, mode: str, rounds: int) -> None:
    """Refine each task into ``out_path`` (resuming what it holds), say how each went and the success rate."""
    from ..annotate.tasks import task_fingerprint
    from ..refine import success_rate_per_round
    from ..store import open_store
    from ..team import run_sync

    store = open_store(out_path) if out_path else None
    fingerprints = {row.id: task_fingerprint(row) for row in tasks}
    earlier = _earlier_results(store, strategy, mode, rounds, fingerprints) if store is not None else {}
    results: list[Any] = []

    async def refine_all() -> int:
        """Every task in one event loop: a team's model clients close in the loop they ran in (each task in a loop of
        its own left the last one's clients to close in the next, on a closed loop: tracebacks)."""
        stopped = 0
        for row in tasks:
            result = earlier.get(row.id)
            if result is not None and result.error is None:  # done by an earlier run into OUT
                results.append(result)
                first = next((r.round for r in result.rounds if r.success), None)
                click.echo(f"{row.id}: " + (f"solved in round {first}" if first is not None else "not solved")
                           + f" (attempts already in {out_path})")
                continue
            result = await refiner.arun(row.task, ground_truth=row.ground_truth, rounds=rounds)
            results.append(result)
            first = next((r.round for r in result.rounds if r.success), None)
            unsolved = f"stopped by an error in {result.error.split(':')[0]}" if result.error else "not solved"
            click.echo(f"{row.id}: " + (f"solved in round {first}" if first is not None else unsolved))
            for record in result.rounds:
                if record.replay_error:
                    click.echo(f"  round {record.round + 1} restarted with the feedback: the replay could not be made "
                               f"({record.replay_error})", err=True)
            if result.error:
                stopped += 1
                click.echo(f"error: task {row.id}: {result.error}", err=True)
            if store is not None:  # (a task's rounds together: a resume redoes a task a kill stopped half-way)
                store.extend(kept(row.id, record, result.error if record is result.rounds[-1] else None)
                             for record in result.rounds)
            if result.model_failed:  # (its server is down: every next task would meet it too)
                left = len(tasks) - len(results)
                if left:
                    click.echo(f"the other {left} task(s) are not attempted: rerun once the model answers again",
                               err=True)
                break
        return stopped

    def kept(task_id: str, record: Any, error: str | None) -> Any:
        """An attempt as OUT keeps it: its task, what a resume must match, its verdict, the error that ended it."""
        record.trajectory.metadata.setdefault("task_id", task_id)
        record.trajectory.metadata.setdefault("refine", {}).update(  # (what a resume must match)
            run_mode=mode, rounds=rounds, task_hash=fingerprints[task_id])
        if record.verdict is not None:
            record.trajectory.labels.append(record.verdict)
        if error:  # a later run into OUT does the task again
            record.trajectory.metadata["refine"]["error"] = error
        return record.trajectory

    stopped = run_sync(refine_all())
    # the rate is over the tasks whose rounds ran to their end: one an error stopped (or never attempted, its model's
    # server down) says nothing of whether feedback would have solved it
    finished = [result for result in results if result.error is None]
    left_out = len(tasks) - len(finished)
    if finished:
        rates = success_rate_per_round(finished, rounds)
        over = f" over the {len(finished)} task(s) that ran to their end ({left_out} left out)" if left_out else ""
        click.echo(f"strategy {strategy} ({mode}); success rate per round{over}: "
                   + ", ".join(f"round {i}: {rate:.0%}" for i, rate in enumerate(rates)))
    else:
        click.echo(f"strategy {strategy} ({mode}); no task ran to its end: no success rate")
    if stopped:  # (as annotate: a task left undone is a failure of the command, whatever the others did)
        click.echo(f"{stopped} of {len(tasks)} task(s) stopped by an error (above); their rounds so far are kept"
                   + (f" in {out_path}" if out_path else ""), err=True)
        raise SystemExit(1)
