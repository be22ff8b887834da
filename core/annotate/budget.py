"""A spending limit shared by every search of a run: replays, model calls and cost."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ..schema import Trajectory, Usage


@dataclass(frozen=True)
class Hold:
    """What a model call or a replay reserved of a budget until it is settled: calls and tokens it is expected to
    spend (a replay: what its recording spent after the replaced step)."""

    calls: int = 0
    tokens: int = 0


def estimate_tokens(messages: list[dict[str, Any]], completion: int = 512) -> int:
    """A model call's expected tokens: its prompt at four characters a token, and ``completion`` for its answer."""
    return sum(len(str(m.get("content") or "")) for m in messages) // 4 + completion


def expected_replay(trajectory: Trajectory, step: int) -> Hold:
    """What a replay from ``step`` is expected to spend: the live model calls (and their tokens) the recording made
    for the steps after it, and those no step followed."""
    later = [c for s in trajectory.steps[step + 1:] for c in s.model_calls] + list(trajectory.unattached_calls)
    return Hold(calls=len(later), tokens=sum(c.usage.total_tokens for c in later))


@dataclass
class Budget:
    """Limits (None: unlimited) and what was spent; thread-safe.

    ``max_model_calls`` counts analyzer/perturber calls and the live model calls of replays; ``max_cost`` is in the
    unit of ``price_per_1k_tokens`` (e.g. dollars) over the tokens of those calls. Calls and replays in flight hold
    what they are expected to spend (a replay: what its recording spent after the step; a call: its prompt and an
    answer's worth), so that concurrent ones cannot all start on what is left: a call or a replay that would pass a
    limit is refused while others are in flight; one alone starts as long as no limit is reached yet (it may pass
    one by what it turns out to spend, so that a budget smaller than one replay still gets further each run). An
    answer from the cache costs nothing, so
    a resumed run asks again, for free, what an earlier run asked.
    """

    max_replays: int | None = None
    max_model_calls: int | None = None
    max_cost: float | None = None
    price_per_1k_tokens: float = 0.0
    replays: int = 0
    model_calls: int = 0
    tokens: int = 0
    held_calls: int = 0
    held_tokens: int = 0
    in_flight: int = 0  # calls and replays taken and not yet settled
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def cost(self) -> float:
        return self.tokens / 1000 * self.price_per_1k_tokens

    def exhausted(self) -> str | None:
        """Which limit is reached (by what is spent and what is held), or None."""
        return self._passed(Hold())

    def _passed(self, more: Hold, replays: int = 0) -> str | None:
        """The limit that spending ``more`` (and ``replays`` more replays) on top of what is spent and held would
        reach, or None."""
        if self.max_replays is not None and self.replays + replays > self.max_replays - (0 if replays else 1):
            return f"max_replays={self.max_replays}"
        calls = self.model_calls + self.held_calls + more.calls
        if self.max_model_calls is not None and calls > self.max_model_calls - (0 if more.calls else 1):
            return f"max_model_calls={self.max_model_calls}"
        tokens = self.tokens + self.held_tokens + more.tokens
        cost = tokens / 1000 * self.price_per_1k_tokens
        if self.max_cost is not None and (cost > self.max_cost if more.tokens else cost >= self.max_cost):
            return f"max_cost={self.max_cost}"
        return None

    def _alone(self) -> bool:
        """Whether nothing else is in flight: then a call or a replay may start as long as no limit is reached yet
        (it may pass one by what it spends, as before holds; only concurrent ones are kept within the limits)."""
        return not (self.held_calls or self.held_tokens or self.in_flight)

    def _take(self, hold: Hold, replays: int = 0) -> bool:
        with self._lock:
            if self.exhausted() or (self._passed(hold, replays) and not self._alone()):
                return False
            self.in_flight += 1
            self.replays += replays
            self.held_calls += hold.calls
            self.held_tokens += hold.tokens
            return True

    def take_call(self, tokens: int = 0) -> Hold | None:
        """Reserve one model call expected to spend ``tokens``; None when the budget cannot take it."""
        hold = Hold(calls=1, tokens=tokens)
        return hold if self._take(hold) else None

    def settle_call(self, usage: Usage, *, cached: bool, hold: Hold | None = None) -> bool:
        """Settle a model call ``take_call`` reserved (its ``hold``): an answer from the cache costs nothing, any other
        counts as a call and its tokens. Whether it was charged."""
        with self._lock:
            self._release(hold or Hold(calls=1))
            if not cached:
                self.model_calls += 1
                self.tokens += usage.total_tokens
        return not cached

    def take_replay(self, expected: Hold | None = None) -> Hold | None:
        """Reserve one replay expected to spend ``expected`` (``expected_replay``); None when the budget cannot."""
        hold = expected or Hold()
        return hold if self._take(hold, replays=1) else None

    def add_usage(self, usage: Usage) -> None:
        with self._lock:
            self.tokens += usage.total_tokens

    def add_replay_calls(self, replayed: Trajectory, hold: Hold | None = None) -> int:
        """Count the live model calls (and their tokens) of a finished replay, releasing what it held; returns the
        call count."""
        live = [c for c in replayed.model_calls() if c.source == "live"]
        with self._lock:
            self._release(hold or Hold())
            self.model_calls += len(live)
            for call in live:
                self.tokens += call.usage.total_tokens
        return len(live)

    def release(self, hold: Hold | None) -> None:
        """Give back what a call or a replay held that spent nothing (it failed before its model answered)."""
        with self._lock:
            self._release(hold or Hold())

    def _release(self, hold: Hold) -> None:
        self.held_calls = max(0, self.held_calls - hold.calls)
        self.held_tokens = max(0, self.held_tokens - hold.tokens)
        self.in_flight = max(0, self.in_flight - 1)

    def snapshot(self) -> dict[str, float]:
        return {"replays": self.replays, "model_calls": self.model_calls, "tokens": self.tokens,
                "cost": round(self.cost, 6)}
