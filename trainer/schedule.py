"""The clipping range as a function of the training step: wide early (exploration), tight late (stability).

Pure Python, so the launcher and the data tools can use it without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHAPES = ("linear", "cosine", "constant")


@dataclass(frozen=True)
class ClipSchedule:
    """``eps(step)`` going from ``eps_max`` at step 0 to ``eps_min`` at ``total_steps`` (held after it)."""

    eps_max: float = 0.28
    eps_min: float = 0.2
    total_steps: int = 1
    shape: str = "cosine"

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"clip schedule shape must be one of {SHAPES}, got {self.shape!r}")
        if not 0.0 < self.eps_min <= self.eps_max:
            raise ValueError(f"need 0 < eps_min <= eps_max, got eps_min={self.eps_min}, eps_max={self.eps_max}")

    def progress(self, step: int) -> float:
        """How far along the schedule ``step`` is, in [0, 1]."""
        if self.total_steps <= 0:
            return 1.0
        return min(max(step, 0), self.total_steps) / self.total_steps

    def __call__(self, step: int) -> float:
        """The clipping range at ``step`` (0-based count of training steps already done)."""
        if self.shape == "constant":
            return self.eps_max
        p = self.progress(step)
        weight = 1.0 - p if self.shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
        return self.eps_min + (self.eps_max - self.eps_min) * weight
