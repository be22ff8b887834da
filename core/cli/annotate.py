"""``agentracer annotate``: label a task set by counterfactual replay and fault injection."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError


@click.command()
@click.option("--team", "team_spec", required=True, help="MODULE:FACTORY (or FILE.py:FACTORY) building the team")
@click.option("--tasks", "tasks_path", required=True, type=click.Path(dir_okay=False), help="tasks JSONL")
@click.option("--analyzer", help="model SPEC proposing corrections of failed runs (at least one of --analyzer and "
                                 "--perturber; without it failures stay unlabelled)")
@click.option("--perturber", help="model SPEC injecting mistakes into successful runs (without it successes are kept "
                                  "as they are)")
@click.option("--evaluator", "evaluator_spec", required=True, help="Ω: mbpp, math, exact or MODULE:FUNCTION")
@click.option("-o", "--out", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="dataset folder")
@click.option("--k", type=click.IntRange(1), default=4, show_default=True, help="candidate steps replayed at once per failed run")
@click.option("--proposals", type=click.IntRange(1), default=1, show_default=True, help="corrections sampled per step")
@click.option("--concurrency", type=click.IntRange(1), default=2, show_default=True, help="tasks at once")
@click.option("--max-replays-in-flight", type=click.IntRange(1), default=8, show_default=True, help="replays at once over all tasks")
@click.option("--max-replays", type=click.IntRange(0), help="budget: replays in all")
@click.option("--max-model-calls", type=click.IntRange(0), help="budget: analyzer/perturber calls plus live replay calls")
@click.option("--max-cost", type=click.FloatRange(0), help="budget: cost in the unit of --price-per-1k")
@click.option("--price-per-1k", type=click.FloatRange(0), default=0.0, show_default=True, help="cost of 1000 tokens")
@click.option("--strategy", type=click.Choice(["uniform", "late", "agent-balanced"]), default="uniform",
              show_default=True, help="how injection picks steps")
@click.option("--tries", type=click.IntRange(1), default=3, show_default=True, help="injection attempts per successful run")
@click.option("--seed", default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1), help="only the first N tasks")
@click.option("--ray", "ray_address", help="run replays as Ray tasks on this cluster ('local' starts one)")
@click.option("--training-rows/--no-training-rows", default=False, help="also write verl rows under OUT/train")
@click.option("--progress/--no-progress", default=True)
def annotate(team_spec: str, tasks_path: str, analyzer: str | None, perturber: str | None, evaluator_spec: str,
             out_dir: str, k: int, proposals: int, concurrency: int, max_replays_in_flight: int,
             max_replays: int | None, max_model_calls: int | None, max_cost: float | None, price_per_1k: float,
             strategy: str, tries: int, seed: int, limit: int | None, ray_address: str | None,
             training_rows: bool, progress: bool) -> None:
    """Run TASKS with the team, check Ω, label failures (counterfactual replay) and successes (fault
    injection) into OUT; kill it at any moment and run it again to resume. One process annotates into OUT at a
    time. Exit 1 when a task failed (each error is printed; the tasks that went well are kept, a rerun retries the
    others), 2 on bad input."""
    from ..annotate.budget import Budget
    from ..annotate.export import export_labelled
    from ..annotate.ledger import iter_trajectories
    from ..annotate.ownership import check_out_dir
    from ..annotate.pipeline import AnnotationPipeline
    from ..annotate.tasks import read_tasks
    from ..evaluate.outcome import get_evaluator
    from ..loading import load_team
    from ..models import load_model

    if analyzer is None and perturber is None:
        raise InputError("give --analyzer (label failures), --perturber (label successes) or both")
    check_out_dir(Path(out_dir))  # (before the team is loaded and any task runs)
    tasks = read_tasks(tasks_path)[:limit]
    team = load_team(team_spec)
    evaluator = get_evaluator(evaluator_spec)
    replayer = None
    if ray_address:
        from ..annotate.ray_replayer import RayReplayer

        replayer = RayReplayer(team_spec, evaluator_spec, address=ray_address, max_in_flight=max_replays_in_flight)
    pipeline = AnnotationPipeline(
        team, evaluator, out_dir,
        analyzer=load_model(analyzer) if analyzer else None,
        perturber=load_model(perturber) if perturber else None,
        k=k, proposals=proposals, concurrency=concurrency, max_replays_in_flight=max_replays_in_flight,
        budget=Budget(max_replays=max_replays, max_model_calls=max_model_calls, max_cost=max_cost,
                      price_per_1k_tokens=price_per_1k),
        strategy=strategy, tries=tries, seed=seed, replayer=replayer,
    )
    summary = pipeline.run(tasks, progress=progress)
    if training_rows:
        export_labelled(iter_trajectories(Path(out_dir) / "trajectories.jsonl"), out_dir, training_rows=True)
    reused = f" (and {summary.reused_replays} an earlier run made)" if summary.reused_replays else ""
    click.echo(
        f"{summary.done} tasks annotated now, {summary.skipped} already done; {summary.failed_runs} failed runs "
        f"-> {summary.counterfactual_labels} counterfactual labels; {summary.successful_runs} successful runs -> "
        f"{summary.injection_labels} injection labels; {summary.replays} replays{reused}; budget {summary.budget}; "
        f"{summary.wall_s:.1f}s -> {out_dir}"
    )
    if summary.left_open:
        click.echo(f"{summary.left_open} task(s) left unlabelled stay open (the budget ran out, or steps could not be "
                   "tried: their attempts are in tasks/ID.jsonl): run again to go on (their replays so far are kept and "
                   "not made again)", err=True)
    if summary.waiting_for_model:
        click.echo(f"{summary.waiting_for_model} run(s) have no label for want of a model: failed runs need --analyzer, "
                   "successful ones --perturber; a later run given it labels them (their runs are kept)", err=True)
    for note in summary.notes[:10]:
        click.echo(f"note: {note}", err=True)
    for error in summary.errors[:10]:
        click.echo(f"error: {error}", err=True)
    if len(summary.errors) > 10:
        click.echo(f"... and {len(summary.errors) - 10} more errors", err=True)
    if summary.errors:  # (the tasks that went well are kept: a rerun retries the others)
        raise SystemExit(1)
