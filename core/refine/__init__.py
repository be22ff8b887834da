"""Self-correction: feed a tracer's verdict back to the culprit agent and run again (with Self-Refine and
CRITIC baselines on the same interface)."""

from __future__ import annotations

from .feedback import Feedback, ask_tracer, tracer_feedback
from .loop import (
    MODES,
    STRATEGIES,
    Refiner,
    RefineResult,
    RoundResult,
    arefine,
    refine,
    success_rate_per_round,
)

__all__ = [
    "MODES", "STRATEGIES", "Feedback", "RefineResult", "Refiner", "RoundResult", "arefine", "ask_tracer",
    "refine", "success_rate_per_round", "tracer_feedback",
]
