"""Fault injection: turn a successful run into a labelled failure by rewriting one step into a plausible
mistake and replaying from it. A sample is kept only when Ω flips to failure and nothing in the kept run
announces the rewrite; its label (agent and step) is then known by construction.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..fingerprint import run_content_key
from ..models import ChatModel, ModelError, RequestRefused
from ..schema import Step, Trajectory, Verdict
from .budget import Budget, estimate_tokens, expected_replay
from .counterfactual import default_candidate, replaceable_candidates
from .leakage import announces_itself, rewrite_reports_itself
from .prompts import MISTAKE_TYPES, action_text, parse_rewrite, perturber_messages, step_action
from .replayer import ReplayCrashed, Replayer, earlier_replays, replay_failure, replay_key

STRATEGIES = ("uniform", "late", "agent-balanced")
InjectionStatus = Literal["kept", "not_flipped", "no_rewrite", "marker", "diverged", "error", "crashed", "budget"]
# ("crashed": the replay could not finish for a reason outside the run, its team's model server: a try not made)


class StepChooser:
    """Orders a run's candidate steps for injection: ``uniform``, ``late`` (later steps likelier) or
    ``agent-balanced`` (agents with the fewest kept samples so far first, across runs). ``order`` draws from
    ``rng`` when given (the injector passes one seeded by the run), else from the chooser's own."""

    def __init__(self, strategy: str = "uniform", *, seed: int = 0) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown step strategy {strategy!r}; use one of {STRATEGIES}")
        self.strategy = strategy
        self.rng = random.Random(seed)
        self.kept_per_agent: Counter[str] = Counter()

    def order(self, trajectory: Trajectory, candidates: Sequence[int], rng: random.Random | None = None) -> list[int]:
        rng = rng or self.rng
        steps = list(candidates)
        if self.strategy == "uniform":
            rng.shuffle(steps)
            return steps
        if self.strategy == "late":
            ordered: list[int] = []
            weights = [(i + 1) ** 2 for i in range(len(steps))]
            while steps:
                pick = rng.choices(range(len(steps)), weights=weights)[0]
                ordered.append(steps.pop(pick))
                weights.pop(pick)
            return ordered
        by_agent: dict[str, list[int]] = {}
        for index in steps:
            by_agent.setdefault(trajectory.steps[index].agent, []).append(index)
        agents = sorted(by_agent, key=lambda a: (self.kept_per_agent[a], rng.random()))
        for group in by_agent.values():
            rng.shuffle(group)
        ordered = []
        while any(by_agent.values()):
            for agent in agents:
                if by_agent[agent]:
                    ordered.append(by_agent[agent].pop())
        return ordered

    def kept(self, agent: str) -> None:
        self.kept_per_agent[agent] += 1


@dataclass
class InjectionAttempt:
    """One try: the step, the mistake asked for, the rewrite, the replay and Ω."""

    step: int
    agent: str
    mistake_type: str
    status: InjectionStatus
    rewrite: Any = None
    replay_id: str | None = None
    success: bool | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InjectionResult:
    """The kept failure (labelled) or None, with every attempt and replay."""

    trajectory_id: str
    kept: Trajectory | None
    attempts: list[InjectionAttempt] = field(default_factory=list)
    replays: list[Trajectory] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def cut_short(self) -> str | None:
        """Why tries were not made, when nothing was kept and a later run could make them (the budget ran out, or
        replays crashed on the team's model server); None when every try was made or one was kept."""
        if self.kept is not None:
            return None
        budget = next((a.detail for a in self.attempts if a.status == "budget"), None)
        if budget is not None:
            return f"budget spent ({budget})"
        crashed = [a for a in self.attempts if a.status == "crashed"]
        if crashed:
            return (f"incomplete: {len(crashed)} injected replay(s) could not finish, e.g. at step {crashed[0].step} "
                    f"({(crashed[0].detail or '')[:200]})")
        return None


class FaultInjector:
    """Inject one plausible mistake into successful runs; keep the replays that fail.

    ``tries`` steps are tried per run (in the chooser's order) until one flips Ω; ``mistake_types`` are
    drawn per try among those that fit the step (``wrong_tool_argument`` only for tool calls). The steps' order
    and the mistake types are drawn from a generator seeded by ``seed`` and what the run did (its task and steps,
    not its id), so a run gets the same tries whichever runs went before it (tasks run concurrently; a resumed
    annotation skips finished ones), and two recordings of one deterministic run get the same tries. A
    ``ModelError`` of the perturber (its backend gave up after its retries) ends the run's injection and is raised.
    """

    def __init__(
        self,
        replayer: Replayer,
        perturber: ChatModel,
        *,
        strategy: str | StepChooser = "uniform",
        mistake_types: Sequence[str] | None = None,
        tries: int = 3,
        budget: Budget | None = None,
        seed: int = 0,
        candidate: Callable[[Step], bool] = default_candidate,
        perturber_params: dict[str, Any] | None = None,
    ) -> None:
        self.replayer = replayer
        self.perturber = perturber
        self.chooser = strategy if isinstance(strategy, StepChooser) else StepChooser(strategy, seed=seed)
        self.mistake_types = list(mistake_types or MISTAKE_TYPES)
        unknown = [m for m in self.mistake_types if m not in MISTAKE_TYPES]
        if unknown:
            raise ValueError(f"unknown mistake types {unknown}; known: {sorted(MISTAKE_TYPES)}")
        self.tries = tries
        self.budget = budget or Budget()
        self.seed = seed
        self.candidate = candidate
        self.perturber_params = perturber_params or {}

    def _mistake_for(self, step: Step, rng: random.Random) -> str:
        fitting = [m for m in self.mistake_types if m != "wrong_tool_argument" or step.tool_calls]
        return rng.choice(fitting or self.mistake_types)

    async def ainject(self, trajectory: Trajectory, *, earlier: Sequence[Trajectory] = ()) -> InjectionResult:
        """Try to turn ``trajectory`` (a successful run) into a labelled failure; does not modify it. ``earlier``:
        replays of it that an earlier run of the injector made (one a budget cut short): a rewrite made again is not
        replayed again (its replay is kept, no replay spent on it)."""
        started = time.perf_counter()
        if not trajectory.outcome.success:
            raise ValueError(f"trajectory {trajectory.id} did not succeed; fault injection starts from successes")
        result = InjectionResult(trajectory_id=trajectory.id, kept=None)
        replayed_before = earlier_replays(trajectory, earlier)
        rng = random.Random(f"{self.seed}:{run_content_key(trajectory)}")
        candidates, _refused = replaceable_candidates(trajectory, self.candidate)
        for t in self.chooser.order(trajectory, candidates, rng)[: self.tries]:
            step = trajectory.steps[t]
            mistake = self._mistake_for(step, rng)
            attempt = InjectionAttempt(t, step.agent, mistake, "no_rewrite")
            result.attempts.append(attempt)
            messages = perturber_messages(trajectory, t, mistake)
            held = self.budget.take_call(estimate_tokens(messages))
            if held is None:
                attempt.status, attempt.detail = "budget", self.budget.exhausted()
                break
            try:
                completion = await self.perturber.acomplete(messages, **self.perturber_params)
            except RequestRefused as exc:  # this prompt (too long for it?): another step's may go through
                self.budget.release(held)
                attempt.status, attempt.detail = "error", f"perturber refused it: {exc}"
                continue
            except ModelError as exc:  # failed after its retries: every next call would too
                self.budget.release(held)
                raise ModelError(f"the perturber failed: {exc}") from exc
            except BaseException as exc:
                self.budget.release(held)
                if not isinstance(exc, Exception):
                    raise
                attempt.status, attempt.detail = "error", f"perturber: {type(exc).__name__}: {exc}"
                continue
            self.budget.settle_call(completion.usage, cached=completion.cached, hold=held)  # (cached: an earlier run's)
            rewrite = parse_rewrite(completion.text, step)
            if rewrite is None or action_text(rewrite).strip() == step_action(step).strip():
                continue
            attempt.rewrite = rewrite
            replayed = replayed_before.pop(replay_key(t, rewrite), None)
            if replayed is not None:  # replayed by an earlier run of this injector: nothing spent on it now
                attempt.detail = "replayed by an earlier run"
            elif (replay_hold := self.budget.take_replay(expected_replay(trajectory, t))) is None:
                attempt.status, attempt.detail = "budget", self.budget.exhausted()
                break
            else:
                try:
                    replayed = await self.replayer.replay(trajectory, t, rewrite)
                except BaseException as exc:
                    self.budget.release(replay_hold)
                    if not isinstance(exc, Exception):
                        raise
                    attempt.status, attempt.detail = ("crashed", str(exc)) if isinstance(exc, ReplayCrashed) \
                        else replay_failure(exc)
                    continue
                self.budget.add_replay_calls(replayed, replay_hold)
            result.replays.append(replayed)
            attempt.replay_id, attempt.success = replayed.id, replayed.outcome.success
            if replayed.outcome.success is not False:
                attempt.status = "not_flipped"
                continue
            markers = announces_itself(replayed, trajectory) + rewrite_reports_itself(
                action_text(rewrite), trajectory.steps[t].text)
            if markers:
                attempt.status, attempt.detail = "marker", f"the run announces the rewrite: {sorted(set(markers))}"
                continue
            attempt.status = "kept"
            replayed.labels = [Verdict(
                agent=step.agent, step=t, source="injection",
                reason=f"{step.agent} made a {mistake.replace('_', ' ')} mistake at step {t}",
                metadata={"mistake_type": mistake, "parent_id": trajectory.id, "original": step_action(step),
                          "strategy": self.chooser.strategy, "perturber": self.perturber.name,
                          "attempts": [a.to_dict() for a in result.attempts]},
            )]
            self.chooser.kept(step.agent)
            result.kept = replayed
            break
        result.wall_s = time.perf_counter() - started
        return result

    def inject(self, trajectory: Trajectory, *, earlier: Sequence[Trajectory] = ()) -> InjectionResult:
        """Synchronous ``ainject``."""
        from ..team import run_sync

        return run_sync(self.ainject(trajectory, earlier=earlier))
