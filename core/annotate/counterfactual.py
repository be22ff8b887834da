"""Counterfactual replay: the decisive error of a failed run is the earliest step whose minimal correction
flips Ω to success.

Beyond the paper's sequential scan from t=0, ``CounterfactualSearch`` tries candidate steps ``k`` at a time
in step order and stops as soon as the earliest flip is certain: a step has flipped and every earlier
candidate has finished without flipping (later ones still running are cancelled). It can sample several
proposals per step, respects a ``Budget``, and rejects proposals that paste the ground-truth answer.
Every attempt (proposal, replayed trajectory id, Ω) is kept in the label's metadata for audit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import AgentracerError
from ..models import ChatModel, ModelError, RequestRefused
from ..plugins import why_not_replaceable
from ..schema import Step, Trajectory, Verdict
from .budget import Budget, estimate_tokens, expected_replay
from .leakage import leaks_answer, minimal_edit
from .prompts import Untagged, action_text, analyzer_messages, parse_correction, step_action
from .replayer import Replayer, earlier_replays, replay_failure, replay_key

AttemptStatus = Literal["flipped", "not_flipped", "unchanged", "untagged", "duplicate", "leak", "diverged", "error",
                        "budget", "cancelled", "not_replaceable"]


@dataclass
class Attempt:
    """One try at step ``step``: the analyzer's proposal, the replay it led to and Ω of that replay."""

    step: int
    agent: str
    proposal_index: int
    status: AttemptStatus
    proposal: Any = None
    replay_id: str | None = None
    success: bool | None = None
    detail: str | None = None
    live_calls: int = 0
    seconds: float = 0.0
    answer_in_fix: bool = False  # the proposal holds the ground truth, as a minimal edit of the step (kept, flagged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    """The outcome of a search: the label (or None), every attempt and every replayed trajectory."""

    trajectory_id: str
    verdict: Verdict | None
    attempts: list[Attempt] = field(default_factory=list)
    replays: list[Trajectory] = field(default_factory=list)
    stopped: str = "no flip"
    analyzer_calls: int = 0
    wall_s: float = 0.0
    spent: Budget = field(default_factory=Budget)  # this search's part of the shared budget (no limits of its own)
    earlier: dict[tuple[int, str], Trajectory] = field(default_factory=dict, repr=False)  # see ``asearch``
    unanswerable: set[int] = field(default_factory=set)  # steps the analyzer never answers usably (``_try_step``)

    @property
    def replay_count(self) -> int:
        return len(self.replays)


_REFUSED: Any = object()  # ``_ask``: the analyzer's server refused this request as it stands
REASKS = 3  # new samples of an unusable analyzer answer an earlier run already got (see ``_try_step``)


def default_candidate(step: Step) -> bool:
    """Steps an agent produced: not the user's task, not a tool's output."""
    return step.role not in ("user", "tool", "system") and step.kind != "tool_result"


def replaceable_candidates(trajectory: Trajectory, candidate: Callable[[Step], bool]
                           ) -> tuple[list[int], dict[int, str]]:
    """The steps ``candidate`` picks that a replay can put an action at, and why not for each one its framework
    cannot replace (a step made from earlier ones: ``plugins.why_not_replaceable``): not a step left untried."""
    found, refused = [], {}
    for step in trajectory.steps:
        if candidate(step):
            why = why_not_replaceable(trajectory, step.index)
            if why is None:
                found.append(step.index)
            else:
                refused[step.index] = why
    return found, refused


class CounterfactualSearch:
    """Find the decisive step of failed runs by counterfactual replay.

    ``replayer`` runs the replays (``LocalReplayer`` or a Ray one); ``analyzer`` proposes corrections;
    ``k`` candidate steps run at once (k=1 is the paper's sequential scan); ``proposals`` corrections are
    sampled per step (with ``analyzer_params``, e.g. a temperature); ``budget`` caps the spend. A ``ModelError``
    of the analyzer (its backend gave up after its retries) ends the search and is raised, with no result.
    """

    def __init__(
        self,
        replayer: Replayer,
        analyzer: ChatModel,
        *,
        k: int = 4,
        proposals: int = 1,
        budget: Budget | None = None,
        leakage_guard: bool = True,
        candidate: Callable[[Step], bool] = default_candidate,
        analyzer_params: dict[str, Any] | None = None,
    ) -> None:
        if k < 1 or proposals < 1:
            raise ValueError("k and proposals must be at least 1")
        self.replayer = replayer
        self.analyzer = analyzer
        # an analyzer without an answer cache keeps nothing between runs: its new samples are asked in the same run
        self._remembers = getattr(analyzer, "cache", None) is not None
        self.k = k
        self.proposals = proposals
        self.budget = budget or Budget()
        self.leakage_guard = leakage_guard
        self.candidate = candidate
        self.analyzer_params = analyzer_params or {}

    # ------------------------------------------------------------------ one step
    def _params(self, proposal: int, salt: int = 0) -> dict[str, Any]:
        """The analyzer's parameters for proposal number ``proposal``: the first as given; each later one sampled
        (temperature 0.8 unless given) with a seed of its own, so that it can differ from the others (and is not
        the first one's cached answer). ``salt`` > 0: a new sample of that proposal (see ``REASKS``)."""
        if proposal == 0 and salt == 0:
            return self.analyzer_params
        seed = int(self.analyzer_params.get("seed") or 0) + proposal + 1000 * salt
        return {"temperature": 0.8, **self.analyzer_params, "seed": seed}

    async def _ask(self, messages: list[dict[str, Any]], params: dict[str, Any], step: Step, j: int,
                   result: SearchResult) -> Any:
        """The analyzer's answer, counted against the budget; None (the attempt noted) when the budget is spent or
        the call failed this once; ``_REFUSED`` (noted) when the server refused this request as it stands;
        ``ModelError`` when it failed after its retries."""
        held = self.budget.take_call(estimate_tokens(messages))
        if held is None:
            result.attempts.append(Attempt(step.index, step.agent, j, "budget", detail=self.budget.exhausted()))
            return None
        try:
            completion = await self.analyzer.acomplete(messages, **params)
        except RequestRefused as exc:  # this step's prompt (too long for it?): refused again next time too
            self.budget.release(held)
            result.attempts.append(Attempt(step.index, step.agent, j, "error", detail=f"analyzer refused it: {exc}"))
            return _REFUSED
        except ModelError as exc:  # failed after its retries: every next call would too, so the search ends
            self.budget.release(held)
            raise ModelError(f"the analyzer failed: {exc}") from exc
        except BaseException as exc:  # the analyzer failed: this step stays untried, so no label past it
            self.budget.release(held)
            if not isinstance(exc, Exception):
                raise
            result.attempts.append(Attempt(step.index, step.agent, j, "error",
                                           detail=f"analyzer: {type(exc).__name__}: {exc}"))
            return None
        result.analyzer_calls += 1
        if self.budget.settle_call(completion.usage, cached=completion.cached, hold=held):  # (cached: an earlier run's)
            result.spent.model_calls += 1
            result.spent.add_usage(completion.usage)
        return completion

    async def _try_step(self, trajectory: Trajectory, t: int, result: SearchResult) -> bool | None:
        """Try the step's proposals in turn; True on a flip, False when none flips, None when cut short or when nothing
        settled it (no answer of the analyzer proposed anything, every proposal pasted the ground truth, every replay
        diverged or crashed): the step stays untried.

        An answer that proposes nothing (no tag) or pastes the answer, and that an earlier run got already (it comes
        from the answer cache), is asked again as a new sample, up to ``REASKS`` times: each run of an open task asks
        something new. An analyzer without an answer cache (whose runs remember nothing) is asked its new samples at
        once, in this run. Once every sample was seen before, the step is one the analyzer never answers usably
        (``result.unanswerable``): still untried, but no reason to keep its task open."""
        step = trajectory.steps[t]
        original = step_action(step)
        evaluated = False  # a replay, or the analyzer (the step needs no change), settled it
        hopeless = 0  # proposals the analyzer never answers usably (seen before, or refused)
        tried: set[str] = set()
        for j in range(self.proposals):
            messages = analyzer_messages(trajectory, t)
            salt = 0
            while True:
                started = time.perf_counter()
                completion = await self._ask(messages, self._params(j, salt), step, j, result)
                if completion is None:
                    return None
                if completion is _REFUSED:
                    break
                unusable: tuple[AttemptStatus, str, Any] | None = None
                answer_in_fix = False
                try:
                    action = parse_correction(completion.text, step)
                except Untagged as exc:
                    action, unusable = None, ("untagged", f"{exc}: {completion.text[:200]}", None)
                else:
                    text = action_text(action) if action is not None else ""
                    answer_in_fix = bool(action is not None and self.leakage_guard
                                         and leaks_answer(text, trajectory.ground_truth, original=original))
                    if answer_in_fix and not minimal_edit(original, text, trajectory.ground_truth):
                        unusable = ("leak", "the proposal contains the ground-truth answer verbatim", action)
                if unusable is not None and (completion.cached or not self._remembers) and salt < REASKS:
                    salt += 1  # an earlier run got this very answer (or none is remembered): a new sample may be usable
                    continue
                break
            if completion is _REFUSED:
                hopeless += 1
                continue
            if unusable is not None:
                status, detail, proposal = unusable
                again = f" (sample {salt + 1}: the earlier ones were no better)" if salt else ""
                result.attempts.append(Attempt(t, step.agent, j, status, proposal=proposal, detail=detail + again,
                                               seconds=time.perf_counter() - started))
                hopeless += completion.cached or not self._remembers  # every sample seen: asking gives nothing new
                continue
            if action is None or action_text(action).strip() == original.strip():
                result.attempts.append(Attempt(t, step.agent, j, "unchanged", seconds=time.perf_counter() - started))
                evaluated = True
                continue
            text = action_text(action)
            if text.strip() in tried:  # the analyzer said the same again: no new evidence, no replay spent on it
                result.attempts.append(Attempt(t, step.agent, j, "duplicate", proposal=action,
                                               seconds=time.perf_counter() - started))
                continue
            tried.add(text.strip())
            replayed = result.earlier.pop(replay_key(t, action), None)
            if replayed is not None:  # replayed by an earlier run of this search: nothing spent on it now
                attempt = Attempt(t, step.agent, j, "not_flipped", proposal=action, detail="replayed by an earlier run",
                                  answer_in_fix=answer_in_fix)
                result.attempts.append(attempt)
                evaluated = True
                if self._took(trajectory, t, j, replayed, attempt, result):
                    return True
                continue
            replay_hold = self.budget.take_replay(expected_replay(trajectory, t))
            if replay_hold is None:
                result.attempts.append(Attempt(t, step.agent, j, "budget", proposal=action,
                                               detail=self.budget.exhausted()))
                return None
            result.spent.replays += 1
            attempt = Attempt(t, step.agent, j, "not_flipped", proposal=action, answer_in_fix=answer_in_fix)
            result.attempts.append(attempt)
            try:
                replayed = await self.replayer.replay(trajectory, t, action)
            except asyncio.CancelledError:
                self.budget.release(replay_hold)
                attempt.status, attempt.seconds = "cancelled", time.perf_counter() - started
                raise
            except Exception as exc:  # a replay that diverges or crashes is recorded, the search goes on
                self.budget.release(replay_hold)
                attempt.status, attempt.detail = replay_failure(exc)
                attempt.seconds = time.perf_counter() - started
                continue
            evaluated = True
            attempt.live_calls = self.budget.add_replay_calls(replayed, replay_hold)
            result.spent.add_replay_calls(replayed)
            attempt.seconds = time.perf_counter() - started
            if self._took(trajectory, t, j, replayed, attempt, result):
                return True
        if not evaluated and hopeless == self.proposals:  # (not when a usable proposal's replay failed: retried)
            result.unanswerable.add(t)
        return False if evaluated else None  # a leak, a diverged or crashed replay, an untagged answer: no evidence

    @staticmethod
    def _took(trajectory: Trajectory, t: int, j: int, replayed: Trajectory, attempt: Attempt,
              result: SearchResult) -> bool:
        """Keep a replay of proposal ``j`` at step ``t`` with its attempt; whether it flipped the run."""
        replayed.metadata.setdefault("counterfactual", {"parent_id": trajectory.id, "step": t, "proposal_index": j})
        result.replays.append(replayed)
        attempt.replay_id, attempt.success = replayed.id, replayed.outcome.success
        if replayed.outcome.success:
            attempt.status = "flipped"
        return bool(replayed.outcome.success)

    # ------------------------------------------------------------------ the search
    async def asearch(self, trajectory: Trajectory, *, earlier: Sequence[Trajectory] = ()) -> SearchResult:
        """Search ``trajectory`` (a failed run) for its decisive step; does not modify it. ``earlier``: replays of it
        that an earlier run of the search made (one a budget cut short): a proposal made again is not replayed again
        (its replay is kept, nothing spent on it), so a search larger than one run's budget gets further each run."""
        started = time.perf_counter()
        if trajectory.outcome.success:
            raise ValueError(f"trajectory {trajectory.id} succeeded; counterfactual replay labels failed runs")
        result = SearchResult(trajectory_id=trajectory.id, verdict=None,
                              spent=Budget(price_per_1k_tokens=self.budget.price_per_1k_tokens),
                              earlier=earlier_replays(trajectory, earlier))
        candidates, refused = replaceable_candidates(trajectory, self.candidate)
        finished: dict[int, bool | None] = {}
        running: dict[int, asyncio.Task[bool | None]] = {}
        stopped: list[asyncio.Task[bool | None]] = []  # cancelled past a flip: awaited, so they say "cancelled"
        position, best = 0, None
        try:
            while True:
                while (len(running) < self.k and position < len(candidates)
                       and (best is None or candidates[position] < best) and not self.budget.exhausted()):
                    t = candidates[position]
                    position += 1
                    running[t] = asyncio.ensure_future(self._try_step(trajectory, t, result))
                if not running:
                    break
                done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
                for t in [t for t, task in running.items() if task in done]:
                    finished[t] = running.pop(t).result()
                    if finished[t] and (best is None or t < best):
                        best = t
                if best is not None:
                    for t in [t for t in running if t > best]:
                        stopped.append(running.pop(t))
                        stopped[-1].cancel()
                    if all(finished.get(t) is False for t in candidates if t < best):
                        break
        finally:
            for task in running.values():
                task.cancel()
            if running or stopped:
                await asyncio.gather(*running.values(), *stopped, return_exceptions=True)
        result.wall_s = time.perf_counter() - started
        result.attempts += [Attempt(t, trajectory.steps[t].agent, 0, "not_replaceable", detail=why)
                            for t, why in refused.items() if best is None or t < best]  # (said, not untried)
        result.verdict = self._verdict(trajectory, best, finished, candidates, result)
        return result

    async def alocate(self, trajectory: Trajectory) -> Verdict:
        """Use the search as a tracer: the counterfactual verdict, or ``AgentracerError`` when none flips."""
        result = await self.asearch(trajectory)
        if result.verdict is None:
            raise AgentracerError(f"counterfactual replay found no flipping step ({result.stopped})")
        return result.verdict

    def search(self, trajectory: Trajectory) -> SearchResult:
        """Synchronous ``asearch``."""
        from ..team import run_sync

        return run_sync(self.asearch(trajectory))

    def _verdict(self, trajectory: Trajectory, best: int | None, finished: dict[int, bool | None],
                 candidates: list[int], result: SearchResult) -> Verdict | None:
        incomplete = [t for t in candidates if (best is None or t < best) and finished.get(t) is not False]
        if best is None:
            spent = self.budget.exhausted()
            waiting = [t for t in incomplete if t not in result.unanswerable]  # (a later run may settle these)
            result.stopped = ("no flip" if not incomplete else f"budget spent ({spent})" if spent
                              else "incomplete: steps could not be tried (see the attempts)" if waiting
                              else f"no flip; the analyzer never answered step(s) {', '.join(map(str, incomplete))} "
                                   f"usably (see the attempts)")
            return None
        waiting = [t for t in incomplete if t not in result.unanswerable]  # (a later run may try these)
        spent = self.budget.exhausted()
        result.stopped = "flip found" if not waiting else (
            f"budget spent ({spent}); a flip at step {best}, earlier step(s) {waiting} untried" if spent
            else f"incomplete: a flip at step {best}, earlier step(s) {waiting} could not be tried (see the attempts)")
        flip = next(a for a in result.attempts if a.step == best and a.status == "flipped")
        step = trajectory.steps[best]
        flags = ["earlier_steps_untried"] if incomplete else []
        if flip.answer_in_fix:  # (a repair that had to state the answer: a true flip, but one to weigh)
            flags.append("answer_in_correction")
        return Verdict(
            agent=step.agent, step=best, source="counterfactual", flags=flags,
            reason=f"correcting step {best} of {step.agent} makes the run succeed: {action_text(flip.proposal)[:300]}",
            metadata={
                "correction": flip.proposal, "replay_id": flip.replay_id, "analyzer": self.analyzer.name,
                "k": self.k, "proposals_per_step": self.proposals, "stopped": result.stopped,
                "attempts": [a.to_dict() for a in sorted(result.attempts, key=lambda a: (a.step, a.proposal_index))], "spent": result.spent.snapshot(),
                "run_spent": self.budget.snapshot(),
                "wall_s": round(result.wall_s, 3),
            },
        )


def label_failed(trajectory: Trajectory, result: SearchResult) -> Trajectory:
    """Put the search's verdict on the failed trajectory (replacing an earlier counterfactual label)."""
    if result.verdict is not None:
        trajectory.labels = [v for v in trajectory.labels if v.source != "counterfactual"] + [result.verdict]
    trajectory.metadata["counterfactual"] = {
        "stopped": result.stopped, "replays": [r.id for r in result.replays],
        "attempts": [a.to_dict() for a in sorted(result.attempts, key=lambda a: (a.step, a.proposal_index))],
    }
    return trajectory
