"""The self-correction loop: run, check Ω, on failure get feedback and run again.

Strategies: ``tracer`` (AgenTracer: the tracer's verdict, fed to the culprit agent naming the step),
``self-refine`` and ``critic`` (baselines: a critic model's review of the final result, without and with
the environment's feedback). Modes: ``restart`` (a fresh run with the feedback) or ``replay`` (``tracer``
only: replay from the decisive step with that step rewritten by ``reviser`` following the feedback).

How feedback reaches the agents on a restart: a factory with a ``feedback`` parameter receives the
``Feedback`` (and can put it in the culprit's instructions); otherwise the note is appended to the task.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..annotate.counterfactual import default_candidate
from ..annotate.prompts import action_text, as_action, render_history, step_action
from ..errors import InputError, ReplayError, TeamRunError, service_failure
from ..evaluate.outcome import get_evaluator
from ..models import ChatModel, ModelError, RequestRefused
from ..schema import Trajectory, Verdict
from ..team import TracedTeam, apply_evaluation, error_summary, run_sync, trace
from ..tracer.parse import without_reasoning
from .feedback import Feedback, Tracer, ask_tracer, critique, is_the_task, same_agent, tracer_feedback

STRATEGIES = ("tracer", "self-refine", "critic")
MODES = ("restart", "replay")


@dataclass
class RoundResult:
    """One attempt: its trajectory, Ω, and the verdict and feedback that followed it (if it failed); ``replay_error``:
    why the next attempt restarted with the feedback instead of replaying from the decisive step; ``built_with``: the
    feedback its team's factory was given (a replay's team is the one of the run it replays)."""

    round: int
    trajectory: Trajectory
    success: bool
    verdict: Verdict | None = None
    feedback: Feedback | None = None
    replay_error: str | None = None
    built_with: Feedback | None = None


@dataclass
class RefineResult:
    """All attempts of one task."""

    strategy: str
    mode: str
    rounds: list[RoundResult] = field(default_factory=list)
    error: str | None = None  # what ended the task's attempts early (the team, Ω or the tracer raised)
    model_failed: bool = False  # a model failed for good (its server is down): the next tasks would meet it too

    @property
    def success(self) -> bool:
        return any(r.success for r in self.rounds)

    def success_by_round(self, total_rounds: int) -> list[bool]:
        """Whether the task was solved by round r, for r = 0 (first run) .. total_rounds."""
        first = next((r.round for r in self.rounds if r.success), None)
        return [first is not None and first <= r for r in range(total_rounds + 1)]

    @property
    def final(self) -> Trajectory:
        return self.rounds[-1].trajectory


def success_rate_per_round(results: Sequence[RefineResult], total_rounds: int) -> list[float]:
    """The fraction of tasks solved by each round (round 0 is the first run)."""
    if not results:
        return [0.0] * (total_rounds + 1)
    table = [r.success_by_round(total_rounds) for r in results]
    return [sum(row[i] for row in table) / len(table) for i in range(total_rounds + 1)]


REVISE_SYSTEM = (
    "You are {agent} in a team of agents. Your earlier message at step {step} was judged wrong; rewrite that "
    "one message following the feedback, in the same role and format. Answer with the new message only."
)


class _ServiceFailed(Exception):
    """The team's run stopped because its model server or the network failed: no agent's mistake to trace."""

    def __init__(self, trajectory: Trajectory) -> None:
        super().__init__(trajectory.outcome.error or "the team's model server failed")
        self.trajectory = trajectory


class _EvaluationFailed(Exception):
    """Ω raised on a run: the run, kept with its outcome unknown and Ω's error in its metadata."""

    def __init__(self, trajectory: Trajectory) -> None:
        super().__init__(trajectory.metadata.get("evaluation_error", "the evaluator raised"))
        self.trajectory = trajectory


def _model(model: ChatModel | str | None, role: str) -> ChatModel | None:
    """A model given by its spec (``openai:URL@NAME``, as the CLI takes it) loaded; a model object as it is."""
    if model is None or not isinstance(model, str):
        return model
    from ..models import load_model

    try:
        return load_model(model)
    except InputError as exc:
        raise InputError(f"{role}: {exc}") from None


class Refiner:
    """The loop for one team; ``refine``/``arefine`` below are the one-call forms."""

    def __init__(self, factory: Callable[..., Any] | TracedTeam, evaluator: Any, tracer: Tracer = None, *,
                 strategy: str = "tracer", mode: str = "restart", critic: ChatModel | str | None = None,
                 reviser: ChatModel | str | None = None) -> None:
        if strategy not in STRATEGIES:
            raise InputError(f"unknown refine strategy {strategy!r}; use one of {STRATEGIES}")
        if mode not in MODES:
            raise InputError(f"unknown refine mode {mode!r}; use one of {MODES}")
        if strategy != "tracer" and critic is None:
            raise InputError(f"the {strategy} baseline needs a critic model")
        if mode == "replay" and (strategy != "tracer" or reviser is None):
            raise InputError("replay mode needs strategy 'tracer' and a reviser model to rewrite the decisive step")
        critic, reviser = _model(critic, "critic"), _model(reviser, "reviser")
        raw = getattr(factory, "__wrapped__", factory) if isinstance(factory, TracedTeam) else factory
        self.raw = raw
        self.team = factory if isinstance(factory, TracedTeam) else trace(factory)
        self.evaluator = get_evaluator(evaluator)
        self.tracer, self.strategy, self.mode = tracer, strategy, mode
        self.critic, self.reviser = critic, reviser
        try:
            self.takes_feedback = "feedback" in inspect.signature(raw).parameters
        except (TypeError, ValueError):
            self.takes_feedback = False

    async def _checked(self, coro: Any) -> Trajectory:
        try:
            trajectory = await coro
        except TeamRunError as exc:  # a team that raised has failed: the round is recorded as such
            if service_failure(exc):  # (unless its model server failed: no agent to blame for it)
                raise _ServiceFailed(exc.trajectory) from exc
            return exc.trajectory
        try:
            await asyncio.to_thread(apply_evaluation, trajectory, self.evaluator)
        except Exception as exc:  # the run is kept, its outcome unknown, as trace keeps it
            trajectory.metadata["evaluation_error"] = error_summary(exc)
            raise _EvaluationFailed(trajectory) from exc
        return trajectory

    async def _restart(self, task: str, ground_truth: Any, feedback: Feedback | None, round_: int) -> Trajectory:
        """A fresh run, told ``feedback``: through the factory's ``feedback`` parameter, else as a note after the task
        (its metadata says which, and what it was told)."""
        metadata: dict[str, Any] = {"refine": {"round": round_, "strategy": self.strategy, "mode": "restart"}}
        if feedback is None:
            return await self._checked(self.team.arun(task, ground_truth=ground_truth, metadata=metadata))
        metadata["refine"]["feedback"] = {"text": feedback.text, "agent": feedback.agent, "step": feedback.step,
                                          "given_as": "factory argument" if self.takes_feedback else "task note"}
        if self.takes_feedback:  # the same factory, its arguments, store and options, and the feedback
            team = self.team.with_arguments(feedback=feedback)
            return await self._checked(team.arun(task, ground_truth=ground_truth, metadata=metadata))
        return await self._checked(self.team.arun(f"{task}\n\n{feedback.note()}", ground_truth=ground_truth,
                                                  metadata=metadata))

    async def _replay(self, failed: Trajectory, feedback: Feedback, round_: int,
                      built_with: Feedback | None) -> Trajectory:
        assert self.reviser is not None and feedback.step is not None and feedback.agent is not None
        step = failed.steps[feedback.step]
        why = (feedback.reason or "it led the run to fail").rstrip(". ")
        note = f"Feedback from the previous attempt: your message at step {feedback.step} caused the failure. Why: {why}."
        env = failed.outcome.feedback or failed.outcome.error
        if env:
            note += f"\nThe check of the final result said: {env}"
        messages = [  # (the step's own author rewrites it, whichever agent the verdict named: the note is about it)
            {"role": "system", "content": REVISE_SYSTEM.format(agent=step.agent, step=feedback.step)},
            {"role": "user", "content": f"Task:\n{failed.task}\n\nConversation so far:\n"
                                        f"{render_history(failed, feedback.step)}\n\nYour message at step "
                                        f"{feedback.step}:\n{step_action(step)}\n\n{note}"},
        ]
        completion = await self.reviser.acomplete(messages)
        action = as_action(without_reasoning(completion.text).strip(), step)  # (a reasoning model's <think> is no part)
        # the team that made the run: one built with feedback is built with it again (the prefix asks what it asked)
        team = self.team.with_arguments(feedback=built_with) if built_with is not None else self.team
        replayed = await self._checked(team.areplay(failed, feedback.step, action))
        replayed.metadata["refine"] = {"round": round_, "strategy": self.strategy, "mode": "replay",
                                       "revised": action_text(action)}
        if not same_agent(feedback.agent, step.agent):
            replayed.metadata["refine"]["verdict_agent"] = feedback.agent  # (the verdict named another agent)
        return replayed

    async def _next(self, task: str, ground_truth: Any, record: RoundResult) -> tuple[Trajectory, Feedback | None]:
        """The next attempt after ``record``, and the feedback its team was built with: in replay mode a replay from
        the decisive step, else (or when the step cannot be replayed: out of the run, or a step no model call made) a
        restart with the feedback."""
        feedback, round_ = record.feedback, record.round + 1
        assert feedback is not None
        if self.mode == "replay" and feedback.step is not None:
            if not 0 <= feedback.step < len(record.trajectory.steps):
                record.replay_error = (f"the verdict's step {feedback.step} is not a step of the run "
                                       f"({len(record.trajectory.steps)} steps)")
            elif is_the_task(record.trajectory, feedback.step):
                record.replay_error = (f"the verdict's step {feedback.step} is the task itself: rewriting it would "
                                       "attempt another task")
            elif not default_candidate(step := record.trajectory.steps[feedback.step]):
                record.replay_error = (f"the verdict's step {feedback.step} ({step.kind}, role {step.role}) is no "
                                       "agent's message and no model call made it: a replay of it rewritten would run "
                                       "on a faked environment")
            else:
                try:
                    return await self._replay(record.trajectory, feedback, round_, record.built_with), \
                        record.built_with
                except ReplayError as exc:
                    record.replay_error = str(exc).splitlines()[0]
        return await self._restart(task, ground_truth, feedback, round_), feedback if self.takes_feedback else None

    async def _feedback(self, trajectory: Trajectory) -> tuple[Verdict | None, Feedback]:
        if self.strategy == "tracer":
            verdict = await ask_tracer(self.tracer, trajectory)
            return verdict, tracer_feedback(trajectory, verdict)
        assert self.critic is not None
        return None, await critique(trajectory, self.critic, with_environment=self.strategy == "critic")

    async def arun(self, task: str, *, ground_truth: Any = None, rounds: int = 3,
                   first: Trajectory | None = None) -> RefineResult:
        """Attempt ``task`` up to ``rounds + 1`` times; ``first`` is an already checked first attempt.

        The team's factory, Ω, the tracer or a model raising ends the task's attempts: ``error`` says which round and
        why, and the rounds made so far are kept; a model that failed for good (its server is down, after its retries)
        also sets ``model_failed``: every next task would meet it too."""
        result = RefineResult(self.strategy, self.mode)
        stage, attempt, built_with = "round 0", 0, None
        try:
            trajectory = first if first is not None else await self._restart(task, ground_truth, None, 0)
            for round_ in range(rounds + 1):
                record = RoundResult(round_, trajectory, bool(trajectory.outcome.success), built_with=built_with)
                result.rounds.append(record)
                if record.success or round_ == rounds:
                    break
                stage = f"feedback on round {round_}"
                record.verdict, record.feedback = await self._feedback(trajectory)
                stage, attempt = f"round {round_ + 1}", round_ + 1
                trajectory, built_with = await self._next(task, ground_truth, record)
        except RequestRefused as exc:  # this task's prompt (over the tracer's window?): the other tasks go on
            result.error = f"{stage}: the model refused it: {error_summary(exc, limit=500)}"
        except ModelError as exc:  # (its server is down: every next task would meet it too)
            result.error = f"{stage}: the model failed for good: {error_summary(exc, limit=500)}"
            result.model_failed = True
        except _ServiceFailed as failed:  # the round's run is kept, the task ends (a rerun into -o does it again)
            failed.trajectory.metadata.setdefault("refine", {"round": attempt, "strategy": self.strategy,
                                                             "mode": "replay" if failed.trajectory.replay else "restart"})
            result.rounds.append(RoundResult(attempt, failed.trajectory, False))
            result.error = (f"{stage}: the team's model server failed ({str(failed)[:300]}), which no agent's feedback "
                            "can fix: no tracer was asked")
        except _EvaluationFailed as failed:  # Ω raised on this round's run: the run is kept, the task ends
            failed.trajectory.metadata.setdefault("refine", {"round": attempt, "strategy": self.strategy,
                                                             "mode": "replay" if failed.trajectory.replay else "restart"})
            result.rounds.append(RoundResult(attempt, failed.trajectory, False))
            result.error = f"{stage}: Ω raised {failed.trajectory.metadata['evaluation_error'][:500]}"
        except Exception as exc:
            result.error = f"{stage}: {error_summary(exc, limit=500)}"
        return result

    def run(self, task: str, **kwargs: Any) -> RefineResult:
        """Synchronous ``arun``."""
        return run_sync(_collected_in_loop(self.arun(task, **kwargs)))


async def arefine(factory: Callable[..., Any] | TracedTeam, task: str, evaluator: Any, tracer: Tracer = None,
                  rounds: int = 3, **options: Any) -> RefineResult:
    """Run ``task``, and while Ω fails (at most ``rounds`` times) feed the tracer's verdict back and run again.

    ``options``: ``strategy`` (tracer, self-refine, critic), ``mode`` (restart, replay), ``critic``,
    ``reviser`` (models), ``ground_truth``, ``first`` (a checked first attempt to start from).
    """
    ground_truth = options.pop("ground_truth", None)
    first = options.pop("first", None)
    return await Refiner(factory, evaluator, tracer, **options).arun(task, ground_truth=ground_truth, rounds=rounds,
                                                                     first=first)


def refine(factory: Callable[..., Any] | TracedTeam, task: str, evaluator: Any, tracer: Tracer = None,
           rounds: int = 3, **options: Any) -> RefineResult:
    """Synchronous ``arefine``."""
    return run_sync(_collected_in_loop(arefine(factory, task, evaluator, tracer, rounds, **options)))


async def _collected_in_loop(coro: Awaitable[RefineResult]) -> RefineResult:
    """``coro``, then the teams its rounds built collected while their event loop still runs: frameworks leave them
    in reference cycles, and a model client collected in the next call's loop closes itself there, on a loop that
    is not its own ('Event loop is closed' tracebacks)."""
    try:
        return await coro
    finally:
        gc.collect()
