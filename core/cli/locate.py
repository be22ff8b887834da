"""``agentracer locate``: the tracer's verdict on recorded runs — which agent, at which step, and why."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

import click

from ..errors import AgentracerError, InputError
from ..exclusive import sole_writer
from ..models.base import ModelError, RequestRefused
from ..redact import Redactor
from ..schema import Trajectory, Verdict
from ..store import DuplicateIdError, open_store, whole_records
from ..team import run_sync
from ..tracer.base import redacted_verdict
from ..tracer.prompt import MIN_PROMPT_TOKENS
from ._io import (
    TIMEOUT_OPTION,
    Problems,
    check_not_source,
    check_output_store,
    chosen_method,
    iter_trajectories,
    model_options,
)
from ._same_model import other_models
from ._terminal import printable

EXCERPT_CHARS = 120


def with_verdict(trajectory: Trajectory, verdict: Verdict) -> Trajectory:
    """A copy of ``trajectory`` whose first label is ``verdict``; an older verdict of the same method goes."""
    method = verdict.metadata.get("method")
    kept = [label for label in trajectory.labels
            if not (label.source == "tracer" and label.metadata.get("method") == method)]
    return trajectory.model_copy(update={"labels": [verdict, *kept]})


def _excerpt(trajectory: Trajectory, step: int) -> str:
    if not 0 <= step < len(trajectory.steps):
        return ""
    found = trajectory.steps[step]
    text = " ".join(found.text.split())
    cut = text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
    return f"step {step} [{found.kind}] {cut}"


def _print_verdict(trajectory: Trajectory, verdict: Verdict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({
            "id": trajectory.id, "agent": verdict.agent, "step": verdict.step, "reason": verdict.reason,
            "confidence": verdict.confidence, "method": verdict.metadata.get("method"), "flags": verdict.flags,
        }, ensure_ascii=False))
        return
    flags = f" [{', '.join(verdict.flags)}]" if verdict.flags else ""  # e.g. an agent the run does not have
    click.echo(printable(f"{trajectory.id}: {verdict.agent} at step {verdict.step}{flags}"
                         + (f" — {verdict.reason}" if verdict.reason else "")))
    excerpt = _excerpt(trajectory, verdict.step)
    if excerpt:
        click.echo(f"    {printable(excerpt)}")


class _Locating:
    """One ``locate`` run: which runs to locate, the verdicts as they come (printed, kept), what went wrong."""

    def __init__(self, chosen: Any, with_gt: bool, store: Any, as_json: bool) -> None:
        self.chosen, self.with_gt, self.store, self.as_json = chosen, with_gt, store, as_json
        self.problems = Problems()
        self.counts = {"located": 0, "successful": 0, "done before": 0, "no verdict": 0, "not kept": 0}
        self.stopped = False

    def wanted(self, trajectories: Iterable[Trajectory], include_successes: bool) -> Iterator[Trajectory]:
        """The runs to locate: not successful (unless asked), not already in the output store."""
        for trajectory in trajectories:
            if trajectory.outcome.success is True and not include_successes:
                self.counts["successful"] += 1
            elif self.store is not None and trajectory.id in self.store:
                self.counts["done before"] += 1
            else:
                yield trajectory

    async def one(self, trajectory: Trajectory) -> None:
        if self.stopped:
            return
        try:
            verdict = redacted_verdict(await self.chosen.alocate(trajectory, with_ground_truth=self.with_gt))
        except RequestRefused as exc:  # this run's prompt (over the model's window?): the others may go through
            self.problems.report(f"{trajectory.id}: no verdict: the model refused it (a prompt over the model's "
                                 f"window? --max-prompt-tokens) ({exc})")
            self.counts["no verdict"] += 1
            return
        except ModelError as exc:  # the model server is down or refuses: every next call would fail the same
            self.problems.report(f"{trajectory.id}: the model failed{'' if self.stopped else ', stopping'} ({exc})")
            self.stopped = True
            return
        except AgentracerError as exc:  # an unreadable answer, a run without steps: this run only
            self.problems.report(InputError(f"no verdict: {exc}", where=trajectory.id))
            self.counts["no verdict"] += 1
            return
        if not 0 <= verdict.step < len(trajectory.steps):  # flagged step_out_of_range: no step of this run
            self.problems.report(InputError(
                f"no verdict: the tracer named step {verdict.step} of {verdict.agent!r}, but the run has steps "
                f"0..{len(trajectory.steps) - 1}", where=trajectory.id))
            self.counts["no verdict"] += 1
            return
        _print_verdict(trajectory, verdict, self.as_json)
        if self.store is not None and "unknown_agent" in verdict.flags:  # (eval counts it invalid: no label to keep)
            self.problems.report(InputError(
                f"not kept: the tracer named agent {verdict.agent!r}, which the run does not have "
                f"({', '.join(trajectory.agent_names)})", where=trajectory.id))
            self.counts["not kept"] += 1
            return
        if self.store is not None:
            try:
                self.store.append(with_verdict(trajectory, verdict))
            except DuplicateIdError:  # another writer kept it meanwhile (a store that takes no lock: SQLite, say)
                self.counts["done before"] += 1
                return
        self.counts["located"] += 1

    async def all(self, trajectories: Iterable[Trajectory], concurrency: int) -> None:
        """Locate ``trajectories``, ``concurrency`` at a time; none is started once the model has failed."""
        gate = asyncio.Semaphore(concurrency)
        running: set[asyncio.Task[None]] = set()

        async def gated(trajectory: Trajectory) -> None:
            try:
                await self.one(trajectory)
            finally:
                gate.release()

        failures: list[BaseException] = []

        def finished(task: asyncio.Task[None]) -> None:  # (a task's unexpected error ends the batch, never lost)
            running.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]
                self.stopped = True

        for trajectory in trajectories:
            await gate.acquire()
            if self.stopped:
                gate.release()
                break
            task = asyncio.create_task(gated(trajectory))
            running.add(task)
            task.add_done_callback(finished)
        await asyncio.gather(*running, return_exceptions=True)
        if failures:
            raise failures[0]


def _check_one_method(store: Any, method: str, output: str, model: str | None = None) -> None:
    """An output store keeps one method's verdicts, and one model's: a run located before by another would be
    skipped as done (a model-free method's verdicts name no model)."""
    verdicts = [trajectory.labels[0].metadata for trajectory in whole_records(store)  # (its verdict goes first)
                if trajectory.labels and trajectory.labels[0].source == "tracer"]
    others = sorted({str(m) for v in verdicts if (m := v.get("method")) not in (method, None)})
    if others:
        raise InputError(f"holds verdicts of method {', '.join(others)}, and its runs would be skipped as done: "
                         f"write {method}'s verdicts to another store", where=output)
    models = other_models([v.get("model") for v in verdicts if v.get("method") == method], method, model)
    if models and model is not None:
        raise InputError(f"holds verdicts of model {', '.join(models)}, and its runs would be skipped as done: "
                         f"write {Redactor().text(model)}'s verdicts to another store", where=output)


@click.command("locate")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--id", "trajectory_id", help="Only this trajectory of SOURCE.")
@click.option("--method", default=None,
              help="lite, agentracer, all-at-once, step-by-step, binary-search, random, majority "
                   "(default: lite without --model, agentracer with one)")
@click.option("--model", default=None, help="openai:URL@MODEL, hf:PATH, vllm:PATH or scripted:...")
@click.option("--with-gt", "with_gt", is_flag=True, help="Give the tracer the task's ground-truth answer.")
@click.option("--all", "include_successes", is_flag=True,
              help="Also runs marked successful (skipped by default: there is no failure to attribute).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Store (.jsonl or .db) to append each located trajectory to, its verdict as its first label "
                   "(ids already there are skipped, so an interrupted run resumes).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per verdict on stdout.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=4, show_default=True,
              help="Runs a model-based method locates at once (verdicts are printed as they come).")
@click.option("--max-prompt-tokens", type=click.IntRange(MIN_PROMPT_TOKENS), default=None,
              help="prompt token budget (default: the model's context window minus 4096; an openai: model's window "
                   "is what its server lists (vLLM's max_model_len), else 32768 tokens)")
@TIMEOUT_OPTION
def locate(source: str, trajectory_id: str | None, method: str | None, model: str | None, with_gt: bool,
           include_successes: bool, output: str | None, as_json: bool, concurrency: int,
           max_prompt_tokens: int | None, timeout: float | None) -> None:
    """Find which agent, at which step, made each run of SOURCE fail, and why: every run not marked successful
    (failed, or with no success verdict: a run recorded without an evaluator) unless --all.

    SOURCE is a .jsonl or .db store (what ``agentracer trace`` writes), a trajectory .json, a Who&When .json
    file, or an OTLP/JSON trace file (.json or .jsonl) another tracer wrote. Verdicts are printed with the step
    they point at; ``-o`` keeps them as labels, which ``agentracer show --html`` highlights.
    """
    from ..models import load_model
    from ..tracer import get_method

    if output is not None:
        check_not_source(source, output, what="store", why="the located copies would repeat its ids")
        check_output_store(output)
    name = chosen_method(method, model)
    with contextlib.ExitStack() as held:  # (one process at a time resumes an output: a second one is refused)
        if output is not None:
            held.enter_context(sole_writer(output, "agentracer locate"))
        store = open_store(output) if output is not None else None
        chat_model = load_model(model, **model_options(model, concurrency, timeout=timeout)) if model else None
        from ..tracer import MODEL_FREE

        options = {"max_prompt_tokens": max_prompt_tokens} if max_prompt_tokens and name not in MODEL_FREE else {}
        chosen = get_method(name, chat_model, **options)
        if store is not None:  # (lite names the weights that answered)
            _check_one_method(store, name, output or "", getattr(chat_model, "name", None)
                              or getattr(chosen, "weights_id", None))
        run = _Locating(chosen, with_gt, store, as_json)
        found = False  # whether SOURCE holds the run --id names

        def picked() -> Iterator[Trajectory]:
            nonlocal found
            for trajectory in iter_trajectories(source, run.problems):
                if trajectory_id is None or trajectory.id == trajectory_id:
                    found = True
                    yield trajectory

        run_sync(run.all(run.wanted(picked(), include_successes), concurrency))
        if trajectory_id is not None and not found:
            raise InputError(f"no trajectory with id {trajectory_id!r}", where=source)
        counts = run.counts
        summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n or what == "located")
        hint = " (--all includes successful runs)" if counts["successful"] else ""
        kept = f"; verdicts kept in {output}" if output is not None and counts["located"] else ""
        budget = getattr(chosen, "max_prompt_tokens", None) if chat_model is not None else None
        fitted = f" (prompts up to {budget} tokens)" if budget else ""  # (an openai: model's, from its server)
        click.echo(f"{summary}{fitted}{hint}{kept}", err=True)
        if run.stopped:  # the model failed for good, as `eval` does when nothing could be evaluated: not bad input
            raise SystemExit(1)
        if not any(counts.values()) and not run.problems.count:
            raise InputError("no trajectory in it", where=source)
        run.problems.finish()
