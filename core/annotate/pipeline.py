"""The annotation pipeline: run each task, check Ω, label failures by counterfactual replay and successes
by fault injection, keep everything in a resumable dataset folder, and export the labelled set.

Dataset folder layout::

    runs/<task>.json          the original run of a task (kept so a resumed task is not re-run)
    tasks/<task>.jsonl        all trajectories of a finished task (original, replays; labels on them)
    ledger.jsonl              one line per finished task (the resume point)
    trajectories.jsonl        every trajectory, rebuilt from tasks/ in ledger order by ``export``
    labelled.jsonl            the labelled ones (what ``agentracer train prepare`` reads)
    tracertraj.jsonl / .parquet   the labelled set in TracerTraj format
    .agentracer-annotate      marks the folder as annotate's: a later run resumes it (another folder holding files
                              of these names is refused, not replaced)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text_replacing
from ..errors import AgentracerError, InputError, OwnTaskError, TeamRunError, service_failure
from ..evaluate.outcome import get_evaluator
from ..exclusive import sole_writer
from ..models import ChatModel, ModelError
from ..record import NEEDS_GIVEN_TASK
from ..schema import Trajectory
from ..team import TracedTeam, apply_evaluation
from .budget import Budget
from .counterfactual import CounterfactualSearch, label_failed
from .injection import FaultInjector, StepChooser
from .ledger import (
    Ledger,
    iter_trajectories,
    output_problem,
    read_trajectories,
    safe_name,
    write_trajectories,
)
from .ownership import check_out_dir, claim_out_dir
from .replayer import LocalReplayer, Replayer
from .tasks import TaskRow, task_fingerprint


@dataclass
class PipelineSummary:
    """Counts of one pipeline run (this invocation; ``skipped`` were finished before); ``stopped`` names the
    model failure that stopped it, if one did."""

    tasks: int = 0
    skipped: int = 0
    done: int = 0
    failed_runs: int = 0
    successful_runs: int = 0
    counterfactual_labels: int = 0  # of tasks closed now: an open one's label is not exported (a note names it)
    injection_labels: int = 0
    replays: int = 0  # made by this run
    reused_replays: int = 0  # made by an earlier run that left the task open, used again
    left_open: int = 0  # cut short (the budget, untried steps): not in the ledger as done, a later run does them
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the run did that its user should know (a task done again)
    stopped: str | None = None
    waiting_for_model: int = 0  # unlabelled for want of an analyzer (failed run) or a perturber (successful): done, or
    # left open when an earlier run given that model began it (its replays kept)
    wall_s: float = 0.0
    budget: dict[str, float] = field(default_factory=dict)


class AnnotationStopped(ModelError):
    """The analyzer or perturber failed after its retries, so the run stopped: the tasks it finished are kept,
    the others are not in the ledger and a new run does them. ``summary`` holds the stopped run's counts."""

    def __init__(self, summary: PipelineSummary) -> None:
        left = summary.tasks - summary.skipped - summary.done
        super().__init__(" ".join(
            f"annotation stopped at {summary.stopped}; {summary.done} tasks annotated now, "
            f"{summary.skipped} already done, {left} left: run it again to resume".split()))
        self.summary = summary


class AnnotationPipeline:
    """Annotate tasks with a team; see the module docstring for the folder it writes.

    ``concurrency`` tasks run at once; each search tries ``k`` steps at once; at most ``max_replays_in_flight``
    replays run at once over all tasks. ``replayer`` overrides where replays run (e.g. on Ray). When the analyzer
    or perturber fails for good (a ``ModelError``), no further task starts and ``AnnotationStopped`` is raised.
    """

    def __init__(
        self,
        team: TracedTeam,
        evaluator: Callable[[Trajectory], Any] | str,
        out_dir: str | Path,
        *,
        analyzer: ChatModel | None = None,
        perturber: ChatModel | None = None,
        k: int = 4,
        proposals: int = 1,
        concurrency: int = 2,
        max_replays_in_flight: int = 8,
        budget: Budget | None = None,
        strategy: str = "uniform",
        tries: int = 3,
        seed: int = 0,
        replayer: Replayer | None = None,
    ) -> None:
        self.team = team
        self.evaluator = get_evaluator(evaluator)
        self.out = Path(out_dir)
        self.ledger = Ledger(self.out)
        self.analyzer, self.perturber = analyzer, perturber
        self.concurrency = concurrency
        self.budget = budget or Budget()
        self.replayer = replayer or LocalReplayer(team, evaluator, max_concurrency=max_replays_in_flight)
        self.search = (CounterfactualSearch(self.replayer, analyzer, k=k, proposals=proposals, budget=self.budget)
                       if analyzer is not None else None)
        self.injector = (FaultInjector(self.replayer, perturber, strategy=StepChooser(strategy, seed=seed),
                                       tries=tries, budget=self.budget, seed=seed)
                         if perturber is not None else None)

    # ------------------------------------------------------------------ one task
    async def _original(self, row: TaskRow) -> Trajectory:
        path = self.out / "runs" / f"{safe_name(row.id)}.json"
        fingerprint = task_fingerprint(row)
        if path.exists():
            kept = None
            with contextlib.suppress(Exception):
                kept = Trajectory.model_validate_json(path.read_text(encoding="utf-8"))
            # the run of a task an earlier run began but never finished (no ledger line: nothing labelled), kept for
            # a resume; one of another text or ground truth since is run again (a finished task that changed is
            # refused up front, in ``_arun``)
            if kept is not None and kept.metadata.get("task_hash", fingerprint) == fingerprint:
                return kept
        metadata = {**row.metadata, "question_id": row.id, "task_id": row.id, "task_hash": fingerprint}
        token = NEEDS_GIVEN_TASK.set(True)  # (a team that runs a task of its own is stopped before it runs)
        try:
            trajectory = await self.team.arun(row.task, ground_truth=row.ground_truth, metadata=metadata)
        except TeamRunError as exc:
            if service_failure(exc):  # no agent's mistake to label: the next run of annotate runs the task again
                raise AgentracerError(f"the team's model server failed on its first run ({exc}); not labelled, "
                                      "it is run again next time") from None
            trajectory = exc.trajectory
        except OwnTaskError as exc:  # (refused before it ran)
            raise InputError(f"task {row.id}: {exc} (a label would pair another task's run with this row's "
                             "ground truth)") from None
        finally:
            NEEDS_GIVEN_TASK.reset(token)
        if "given_task" in trajectory.metadata:  # (the plugin says the team ran a task of its own instead)
            raise InputError(f"task {row.id}: the team runs its own task ({str(trajectory.task)[:80]!r}), not this "
                             "row's, so its label would pair another task's run with this row's ground truth: give "
                             "the factory a `task` parameter and build the team with it")
        if trajectory.outcome.error is None:  # a team that raised has failed already
            await asyncio.to_thread(apply_evaluation, trajectory, self.evaluator)
        write_text_replacing(path, trajectory.to_json())
        return trajectory

    def _earlier_replays(self, row: TaskRow) -> list[Trajectory]:
        """The replays an earlier run wrote for a task it left open (its budget ran out), for the search or the
        injector to reuse."""
        path = self.out / "tasks" / f"{safe_name(row.id)}.jsonl"
        if not path.exists():
            return []
        with contextlib.suppress(Exception):  # a damaged file: its replays are made again
            return [t for t in read_trajectories(path) if t.replay is not None]
        return []

    @staticmethod
    def _stays_open(row: TaskRow, model: str, earlier: list[Trajectory], summary: PipelineSummary) -> bool:
        """Whether the task, lacking ``model`` in this run, is left as it is: an earlier run given it began labelling
        the task (its replays are there), so it stays open with them for the next run given it, rather than closed
        unlabelled with the replays it paid for dropped."""
        if not earlier:
            return False
        summary.waiting_for_model += 1
        summary.notes.append(f"task {row.id}: stays open for a run given the {model} ({len(earlier)} replays an "
                             "earlier run made are kept for it)")
        return True

    async def _task(self, row: TaskRow, summary: PipelineSummary) -> None:
        original = await self._original(row)
        earlier = self._earlier_replays(row)
        outputs: list[Trajectory] = [original]
        entry: dict[str, Any] = {"task_id": row.id, "status": "done", "original": original.id,
                                 "success": original.outcome.success, "label": None,
                                 "task_hash": task_fingerprint(row)}
        if original.outcome.success:
            summary.successful_runs += 1
            if self.injector is not None:
                result = await self.injector.ainject(original, earlier=earlier)
                outputs += result.replays
                entry["replays"] = len(result.replays)
                if result.kept is not None:
                    entry["label"] = {"source": "injection", "trajectory": result.kept.id,
                                      **result.kept.labels[0].model_dump(include={"agent", "step"})}
                    summary.injection_labels += 1
                elif result.cut_short is not None:  # (tries not made: a later run makes them)
                    entry["stopped"] = result.cut_short
            else:  # a later run given a perturber takes it up again
                if self._stays_open(row, "perturber", earlier, summary):
                    return
                entry["unlabelled_for"] = "perturber"
                summary.waiting_for_model += 1
        else:
            summary.failed_runs += 1
            if self.search is None:  # a later run given an analyzer takes it up again
                if self._stays_open(row, "analyzer", earlier, summary):
                    return
                entry["unlabelled_for"] = "analyzer"
                summary.waiting_for_model += 1
            else:
                searched = await self.search.asearch(original, earlier=earlier)
                label_failed(original, searched)
                outputs += searched.replays
                entry["replays"] = len(searched.replays)
                entry["stopped"] = searched.stopped
                if searched.verdict is not None:
                    entry["label"] = {"source": "counterfactual", "trajectory": original.id,
                                      "agent": searched.verdict.agent, "step": searched.verdict.step}
        for trajectory in outputs:
            trajectory.metadata.setdefault("question_id", row.id)
            trajectory.metadata.setdefault("task_id", row.id)
        reused = len({r.id for r in earlier} & {r.id for r in outputs[1:]})
        summary.replays += len(outputs) - 1 - reused
        summary.reused_replays += reused
        write_trajectories(self.out / "tasks" / f"{safe_name(row.id)}.jsonl", outputs)
        if str(entry.get("stopped", "")).startswith(("budget", "incomplete:")):
            # cut short (the budget, steps left untried, replays that crashed on the team's server): a later run
            # does it again; a label found past an untried step stands meanwhile, flagged earlier_steps_untried
            entry["status"] = "open"
            summary.left_open += 1
            if entry["label"] is not None:  # (an open task is not exported: its label is none of the dataset yet)
                summary.notes.append(f"task {row.id}: stays open, its label not in the dataset yet ({entry['stopped']}"
                                     "): a later run tries the earlier steps")
        else:
            summary.done += 1
            if entry["label"] is not None and entry["label"]["source"] == "counterfactual":
                summary.counterfactual_labels += 1
        self.ledger.record(entry)

    # ------------------------------------------------------------------ all tasks
    async def arun(self, tasks: Sequence[TaskRow], *, progress: bool = True) -> PipelineSummary:
        """Annotate every unfinished task, then export; safe to kill and re-run. Raises ``AnnotationStopped``
        (after the export) when a model failed for good, and ``InputError`` at once when another process is
        annotating into the same folder (both would do every task), or when the folder holds files of its outputs'
        names that annotate did not write (they would be replaced)."""
        check_out_dir(self.out)  # (before the lock: a refused folder gets no lock file either)
        with sole_writer(self.ledger.path, "agentracer annotate"):
            claim_out_dir(self.out)
            return await self._arun(tasks, progress=progress)

    def _unreadable_outputs(self, finished: dict[str, dict[str, Any]], summary: PipelineSummary) -> list[str]:
        """The finished tasks whose output file is missing or damaged (a disk that filled up, a hand edit): they are
        done again, each named in the summary, rather than left out of the dataset or stopping its export."""
        again = []
        for task_id in finished:
            path = self.out / "tasks" / f"{safe_name(task_id)}.jsonl"
            problem = output_problem(path)
            if problem is not None:
                again.append(task_id)
                summary.notes.append(f"task {task_id}: {problem}; annotated again")
        return again

    async def _arun(self, tasks: Sequence[TaskRow], *, progress: bool) -> PipelineSummary:
        started = time.perf_counter()
        summary = PipelineSummary(tasks=len(tasks))
        finished, known = self.ledger.read()
        wanted = {row.id for row in tasks}
        for task_id in self._unreadable_outputs({i: e for i, e in finished.items() if i in wanted}, summary):
            del finished[task_id]
        changed = [row.id for row in tasks if (fingerprint := task_fingerprint(row)) != known.get(row.id, fingerprint)]
        if changed:
            raise InputError(_changed_message(changed, self.out))
        can_label = {"analyzer": self.search is not None, "perturber": self.injector is not None}
        todo = [row for row in tasks if row.id not in finished
                or can_label.get(str(finished[row.id].get("unlabelled_for")), False)]
        summary.skipped = len(tasks) - len(todo)
        gate = asyncio.Semaphore(self.concurrency)
        bar = _progress(progress)
        with bar:
            job = bar.add_task("annotating", total=len(tasks), completed=summary.skipped)

            async def one(row: TaskRow) -> None:
                async with gate:
                    if summary.stopped is None:
                        await self._guarded(row, summary)
                        bar.advance(job)

            await asyncio.gather(*(one(row) for row in todo))
        export_dataset(self.out)
        summary.wall_s = time.perf_counter() - started
        summary.budget = self.budget.snapshot()
        if summary.stopped is not None:
            raise AnnotationStopped(summary)
        return summary

    async def _guarded(self, row: TaskRow, summary: PipelineSummary) -> None:
        """Annotate one task; its failure is reported, and a model's failure stops the run (the task stays open)."""
        try:
            await self._task(row, summary)
        except ModelError as exc:  # the server is down or refuses: every next task would fail the same way
            summary.errors.append(f"task {row.id}: {type(exc).__name__}: {exc}")
            summary.stopped = summary.stopped or f"task {row.id}: {exc}"
        except Exception as exc:  # one task's failure is reported, the others go on
            summary.errors.append(f"task {row.id}: {type(exc).__name__}: {exc}")

    def run(self, tasks: Sequence[TaskRow], *, progress: bool = True) -> PipelineSummary:
        from ..team import run_sync

        return run_sync(self.arun(tasks, progress=progress))


def _changed_message(ids: Sequence[str], out: Path) -> str:
    shown = ", ".join(repr(i) for i in ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    return (f"{len(ids)} task(s) ask something else than when {out} annotated them (their text or ground truth "
            f"changed): {shown}; annotate them into another folder (its labels are for the tasks as they were)")


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


def export_dataset(out_dir: str | Path) -> dict[str, int]:
    """Rebuild the merged files of a dataset folder from its finished tasks (in ledger order); ``InputError`` for a
    folder annotate did not write (its files would be replaced)."""
    from .export import export_labelled

    out = Path(out_dir)
    check_out_dir(out)
    files = [path for task_id in Ledger(out).entries()
             if (path := out / "tasks" / f"{safe_name(task_id)}.jsonl").exists()]
    write_trajectories(out / "trajectories.jsonl", (t for path in files for t in iter_trajectories(path)))
    return export_labelled(iter_trajectories(out / "trajectories.jsonl"), out)  # (streamed: never all in memory)
