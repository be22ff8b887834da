"""The CPU tracer ("lite"): no LLM, milliseconds per trajectory, pure Python at inference.

A conditional logit over the steps of a trajectory: each step gets a score ``w · standardise(features)``
(features from :mod:`agentracer.tracer.lite_features`), the softmax over the steps is the probability
that the step is the decisive mistake. The answer is the agent with the most probability mass, at that
agent's most likely step (``decode="agent"``, the default), or simply the most likely step and its agent
(``decode="step"``). The weights are a small JSON file shipped at ``agentracer/assets/lite_weights.json``,
trained by :mod:`agentracer.tracer.lite_train` on the Who&When development split; two weight sets exist,
one for when the ground truth is given to the tracer and one for when it is not.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..schema import Trajectory, Verdict
from .lite_features import FEATURE_NAMES, FEATURE_PHRASES, has_ground_truth, trajectory_features

WEIGHTS_FORMAT = "agentracer-lite/1"
DECODES = ("agent", "step")
#: Options every method may be handed by a generic runner; the lite tracer has no use for them.
_RUNNER_OPTIONS = frozenset({"concurrency", "seed", "token_budget", "max_tokens", "temperature", "cache",
                             "timeout", "retries"})


def default_weights_path() -> Path:
    """Where the shipped weights live inside the installed package."""
    return Path(str(resources.files("agentracer") / "assets" / "lite_weights.json"))


@dataclass(frozen=True)
class LinearScorer:
    """One weight set: standardisation (``mean``, ``scale``) and coefficients, all in ``features`` order."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any], features: tuple[str, ...], *, where: str = "lite weights"
                  ) -> LinearScorer:
        """``InputError`` naming ``where`` unless each vector is a list of finite numbers, one per feature, and no
        scale is 0 (a standardisation would divide by it)."""
        arrays = {}
        for name in ("mean", "scale", "coef"):
            values = data[name]
            if not isinstance(values, list) or len(values) != len(features):
                raise InputError(f"weight vector {name!r} must be a list of {len(features)} numbers, one per feature",
                                 where=where)
            numbers = tuple(float(v) for v in values)
            if not all(math.isfinite(v) for v in numbers):
                raise InputError(f"weight vector {name!r} holds a value that is not a finite number", where=where)
            arrays[name] = numbers
        if any(v <= 0 for v in arrays["scale"]):
            raise InputError("weight vector 'scale' must hold positive numbers (each feature is divided by its "
                             "scale)", where=where)
        return cls(features, arrays["mean"], arrays["scale"], arrays["coef"])

    def contributions(self, row: list[float]) -> list[float]:
        return [c * (x - m) / s for x, m, s, c in zip(row, self.mean, self.scale, self.coef, strict=True)]

    def score(self, row: list[float]) -> float:
        return sum(self.contributions(row))


@dataclass(frozen=True)
class LiteModel:
    """The shipped model: a scorer without and one with the ground truth, and its training report."""

    without_gt: LinearScorer
    with_gt: LinearScorer
    decode: str
    metadata: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path | None = None) -> LiteModel:
        """Read a weights JSON (the shipped one by default); ``InputError`` if it is not one."""
        path = Path(path) if path is not None else default_weights_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise InputError(f"cannot read lite weights ({exc})", where=str(path)) from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "lite weights") -> LiteModel:
        if not isinstance(data, dict) or data.get("format") != WEIGHTS_FORMAT:
            raise InputError(f"not a {WEIGHTS_FORMAT} weights file", where=where)
        listed = data.get("features")
        features = tuple(listed) if isinstance(listed, list) else ()
        if features != FEATURE_NAMES:
            raise InputError("weights were trained on another feature list; retrain with "
                             "`python -m agentracer.tracer.lite_train`", where=where)
        try:
            models = data["models"]
            without_gt = LinearScorer.from_dict(models["without_gt"], features, where=where)
            with_gt = LinearScorer.from_dict(models["with_gt"], features, where=where)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed weights ({exc!r})", where=where) from None
        decode = data.get("decode", "agent")
        if decode not in DECODES:
            raise InputError(f"unknown decode {decode!r}", where=where)
        meta = {k: v for k, v in data.items() if k not in ("models", "features", "format")}
        return cls(without_gt, with_gt, decode, meta)


@dataclass(frozen=True)
class StepScores:
    """The model's view of one trajectory: per-step probabilities and each feature's share of each score."""

    probabilities: list[float]
    contributions: list[list[float]]
    features: list[list[float]] | None = None  # each step's raw feature values (which features it has)


def score_steps(model: LiteModel, trajectory: Trajectory, *, with_ground_truth: bool = False) -> StepScores:
    """Per-step probabilities (softmax over the steps) of being the decisive mistake."""
    use_gt = with_ground_truth and has_ground_truth(trajectory.ground_truth)
    scorer = model.with_gt if use_gt else model.without_gt
    rows = trajectory_features(trajectory, with_ground_truth=use_gt)
    contributions = [scorer.contributions(row) for row in rows]
    scores = [sum(c) for c in contributions]
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return StepScores([e / total for e in exps], contributions, rows)


def decode(trajectory: Trajectory, probabilities: list[float], how: str) -> tuple[str, int, float]:
    """(agent, step, confidence) from per-step probabilities."""
    if how == "step":
        step = max(range(len(probabilities)), key=probabilities.__getitem__)
        return trajectory.steps[step].agent, step, probabilities[step]
    mass: dict[str, float] = {}
    for s, p in zip(trajectory.steps, probabilities, strict=True):
        mass[s.agent] = mass.get(s.agent, 0.0) + p
    agent = max(mass, key=mass.__getitem__)
    step = max((s.index for s in trajectory.steps if s.agent == agent), key=probabilities.__getitem__)
    return agent, step, mass[agent]


def _reason(trajectory: Trajectory, scores: StepScores, step: int, agent: str, confidence: float,
            how: str) -> tuple[str, list[list[Any]]]:
    """Which features lifted the chosen step above the trajectory's average step."""
    n = len(scores.contributions)
    average = [sum(col) / n for col in zip(*scores.contributions, strict=True)]
    lift = [(name, c - a) for name, c, a in zip(FEATURE_NAMES, scores.contributions[step], average, strict=True)]
    # the features the step has more of than the run's average step that lifted it (a feature it lacks, or has less
    # of, can lift it too, when more of it counts against a step: "taken by the human/user" must not be said of a
    # step the user did not take, nor "the longest content of the run" of its shortest step)
    rows = scores.features
    if rows is None:
        having = [True] * len(lift)
    else:
        typical = [sum(col) / n for col in zip(*rows, strict=True)]
        having = [value != 0 and (n == 1 or value > usual) for value, usual in zip(rows[step], typical, strict=True)]
    drivers = sorted((item for item, has in zip(lift, having, strict=True) if item[1] > 0.05 and has),
                     key=lambda item: -item[1])[:3]
    what = (f"{agent} holds {confidence:.0%} of the probability mass" if how == "agent"
            else f"step {step} has probability {confidence:.0%}")
    because = "; ".join(f"{FEATURE_PHRASES[name]} (+{value:.2f})" for name, value in drivers) or "no single feature"
    return (f"lite tracer: step {step} of {n} by {agent} ({what}); the step scored high for: {because}.",
            [[name, round(value, 4)] for name, value in drivers])  # (lists: equal after a JSON round trip)


class LiteTracer:
    """The CPU tracer. ``LiteTracer(weights=None, decode=None)``; ``locate``/``alocate`` return a Verdict.

    ``weights`` is a path to a weights JSON (default: the shipped one); ``decode`` is ``"agent"`` (pick the
    agent with the most probability mass, then its likeliest step) or ``"step"`` (the likeliest step).
    """

    name = "lite"

    def __init__(self, *, weights: str | Path | None = None, decode: str | None = None,
                 model: Any = None, **options: Any) -> None:
        if model is not None:
            raise TypeError(f"the lite tracer uses no model (got model={model!r}); pick another method to use one")
        unknown = sorted(set(options) - _RUNNER_OPTIONS)
        if unknown:
            raise TypeError(f"LiteTracer got unknown options {unknown}; it takes weights= and decode=")
        self.model = LiteModel.load(weights)
        self.decode = decode or self.model.decode
        if self.decode not in DECODES:
            raise ValueError(f"decode must be one of {DECODES}, got {self.decode!r}")
        # which weights answered, named as results and verdicts name a model (when they were trained, and a digest:
        # two sets trained on one day differ)
        digest = hashlib.sha256(repr((self.model.without_gt, self.model.with_gt)).encode("utf-8")).hexdigest()[:8]
        self.weights_id = f"lite weights of {self.model.metadata.get('trained_at') or 'unknown date'} ({digest})"

    def locate(self, trajectory: Trajectory, *, with_ground_truth: bool = False) -> Verdict:
        """Who made the decisive mistake, and at which step."""
        if not trajectory.steps:
            raise InputError("the trajectory has no steps to attribute", where=f"trajectory {trajectory.id}")
        scores = score_steps(self.model, trajectory, with_ground_truth=with_ground_truth)
        agent, step, confidence = decode(trajectory, scores.probabilities, self.decode)
        reason, drivers = _reason(trajectory, scores, step, agent, confidence, self.decode)
        ranked = sorted(range(len(scores.probabilities)), key=lambda i: -scores.probabilities[i])[:5]
        return Verdict(
            agent=agent, step=step, reason=reason, source="tracer", confidence=round(confidence, 4),
            metadata={
                "method": "lite",
                "model": self.weights_id,
                "decode": self.decode,
                "with_ground_truth": bool(with_ground_truth and has_ground_truth(trajectory.ground_truth)),
                "drivers": drivers,
                "top_steps": [[i, round(scores.probabilities[i], 4)] for i in ranked],
            },
        )

    async def alocate(self, trajectory: Trajectory, *, with_ground_truth: bool = False) -> Verdict:
        """``locate`` for async callers (it is CPU-bound and takes milliseconds, so it runs inline)."""
        return self.locate(trajectory, with_ground_truth=with_ground_truth)
