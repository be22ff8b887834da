"""A spending limit shared by every search of a run: replays, model calls and cost."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..schema import Trajectory, Usage


@dataclass
class Budget:
    """Limits (None: unlimited) and what was spent; thread-safe.

    ``max_model_calls`` counts analyzer/perturber calls and the live model calls of replays (known after a
    replay ends, so a limit can be passed by one replay's calls); an answer from the cache costs nothing, so a
    resumed run asks again, for free, what an earlier run asked. ``max_cost`` is in the unit of
    ``price_per_1k_tokens`` (e.g. dollars) over the tokens of those calls.
    """

    max_replays: int | None = None
    max_model_calls: int | None = None
    max_cost: float | None = None
    price_per_1k_tokens: float = 0.0
    replays: int = 0
    model_calls: int = 0
    tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def cost(self) -> float:
        return self.tokens / 1000 * self.price_per_1k_tokens

    def exhausted(self) -> str | None:
        """Which limit is reached, or None."""
        if self.max_replays is not None and self.replays >= self.max_replays:
            return f"max_replays={self.max_replays}"
        if self.max_model_calls is not None and self.model_calls >= self.max_model_calls:
            return f"max_model_calls={self.max_model_calls}"
        if self.max_cost is not None and self.cost >= self.max_cost:
            return f"max_cost={self.max_cost}"
        return None

    def take_call(self) -> bool:
        """Reserve one model call; False when the budget is spent."""
        with self._lock:
            if self.exhausted():
                return False
            self.model_calls += 1
            return True

    def settle_call(self, usage: Usage, *, cached: bool) -> bool:
        """Settle a model call ``take_call`` reserved: an answer from the cache costs nothing (the call is given
        back), any other counts its tokens. Whether it was charged."""
        with self._lock:
            if cached:
                self.model_calls -= 1
            else:
                self.tokens += usage.total_tokens
        return not cached

    def take_replay(self) -> bool:
        """Reserve one replay; False when the budget is spent."""
        with self._lock:
            if self.exhausted():
                return False
            self.replays += 1
            return True

    def add_usage(self, usage: Usage) -> None:
        with self._lock:
            self.tokens += usage.total_tokens

    def add_replay_calls(self, replayed: Trajectory) -> int:
        """Count the live model calls (and their tokens) of a finished replay; returns the call count."""
        live = [c for c in replayed.model_calls() if c.source == "live"]
        with self._lock:
            self.model_calls += len(live)
            for call in live:
                self.tokens += call.usage.total_tokens
        return len(live)

    def snapshot(self) -> dict[str, float]:
        return {"replays": self.replays, "model_calls": self.model_calls, "tokens": self.tokens,
                "cost": round(self.cost, 6)}
