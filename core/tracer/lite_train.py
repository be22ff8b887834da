"""Train the CPU tracer and report its cross-validated accuracy (needs the ``lite`` extra: numpy, scipy).

    python -m agentracer.tracer.lite_train --data data/whowhen [--extra labelled.jsonl ...] \\
        [--out core/assets/lite_weights.json] [--folds 5] [--repeats 3]

The model is a conditional logit (softmax over a trajectory's steps) with an L2 penalty, fitted by L-BFGS.
Accuracy is measured only by grouped k-fold cross-validation on the data it is given (a group is a
Who&When file, or a recorded run and its replays), repeated with several shuffles; the hyper-parameters
are fixed in this file, never searched on a test fold. Sanity baselines are scored on the same folds.
The report goes to stdout and into the weights file (``cv``), so what ships says how well it did.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

from ..atomic import write_text_replacing
from ..errors import InputError
from ..formats.whowhen import iter_whowhen_dir
from ..schema import Trajectory, Verdict
from ..store import open_store
from .lite import WEIGHTS_FORMAT, LinearScorer, LiteModel, decode, score_steps
from .lite_features import FEATURE_NAMES, GROUND_TRUTH_FEATURES, agent_kind, trajectory_features

#: The L2 penalties tried; each training set picks one by an inner cross-validation of its own (nested CV).
L2_GRID = (0.02, 0.1, 0.5, 2.0)
INNER_FOLDS = 3
LABEL_PREFERENCE = ("human", "counterfactual", "injection")
SETTINGS = ("without_gt", "with_gt")


@dataclass
class Example:
    """A labelled trajectory with its feature rows precomputed for both settings."""

    trajectory: Trajectory
    label: Verdict
    group: str
    subset: str
    rows: dict[str, np.ndarray]


def _label(trajectory: Trajectory) -> Verdict | None:
    for source in LABEL_PREFERENCE:
        label = trajectory.label(source)
        if label is not None:
            return label
    return None


def make_example(trajectory: Trajectory, *, group: str, subset: str) -> Example | None:
    """An Example, or None when the trajectory has no usable label (none, or no steps)."""
    label = _label(trajectory)
    if label is None or not trajectory.steps or label.step >= len(trajectory.steps):
        return None
    rows = {
        "without_gt": np.asarray(trajectory_features(trajectory, with_ground_truth=False), dtype=float),
        "with_gt": np.asarray(trajectory_features(trajectory, with_ground_truth=True), dtype=float),
    }
    return Example(trajectory, label, group, subset, rows)


def load_examples(data: str | Path | None, extra: Iterable[str | Path] = ()) -> list[Example]:
    """Who&When files under ``data`` plus labelled trajectories from JSONL/SQLite stores in ``extra``."""
    examples: list[Example] = []
    if data is not None:
        if not Path(data).exists():
            raise InputError("no such folder", where=str(data))
        for relative, item in iter_whowhen_dir(data):
            if isinstance(item, InputError):
                print(f"skipped {relative}: {item}", file=sys.stderr)
                continue
            subset = str(item.metadata.get("subset") or "whowhen")
            example = make_example(item, group=f"whowhen:{relative}", subset=subset)
            if example is not None:
                examples.append(example)
    for path in extra:
        if not Path(path).is_file():  # (opening a store that is not there would make an empty one)
            raise InputError("no such store (--extra takes a JSONL or SQLite store of labelled runs)", where=str(path))
        for trajectory in open_store(path):
            group = trajectory.replay.parent_id if trajectory.replay else trajectory.id
            subset = str(trajectory.metadata.get("subset") or f"extra:{trajectory.framework or 'run'}")
            example = make_example(trajectory, group=f"{path}:{group}", subset=subset)
            if example is not None:
                examples.append(example)
    return examples


def fit(examples: Sequence[Example], setting: str, *, l2: float) -> LinearScorer:
    """Fit one weight set by L-BFGS on the mean negative log-likelihood of the labelled steps plus L2."""
    blocks = [e.rows[setting] for e in examples]
    stacked = np.vstack(blocks)
    mean = stacked.mean(axis=0)
    scale = stacked.std(axis=0)
    scale[scale < 1e-9] = 1.0
    if setting == "without_gt":  # these features are always 0 without the ground truth: keep them inert
        for j, name in enumerate(FEATURE_NAMES):
            if name in GROUND_TRUTH_FEATURES:
                mean[j], scale[j] = 0.0, 1.0
    z = (stacked - mean) / scale
    starts = np.cumsum([0] + [len(b) for b in blocks[:-1]])
    segment = np.repeat(np.arange(len(blocks)), [len(b) for b in blocks])
    labelled = starts + np.asarray([e.label.step for e in examples])
    count = len(examples)
    label_sum = z[labelled].sum(axis=0)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = z @ w
        top = np.maximum.reduceat(s, starts)
        e = np.exp(s - top[segment])
        total = np.add.reduceat(e, starts)
        p = e / total[segment]
        loss = float((top + np.log(total)).sum() - s[labelled].sum()) / count + 0.5 * l2 * float(w @ w)
        grad = (p @ z - label_sum) / count + l2 * w
        return loss, grad

    result = minimize(objective, np.zeros(len(FEATURE_NAMES)), jac=True, method="L-BFGS-B",
                      options={"maxiter": 500})
    coef = result.x
    if setting == "without_gt":
        coef = np.array([0.0 if name in GROUND_TRUTH_FEATURES else c for name, c in zip(FEATURE_NAMES, coef, strict=True)])
    return LinearScorer(FEATURE_NAMES, tuple(mean.tolist()), tuple(scale.tolist()), tuple(coef.tolist()))


def fit_model(examples: Sequence[Example], *, decode_as: str = "agent", l2: float | None = None,
              seed: int = 0) -> LiteModel:
    """Both weight sets (without and with the ground truth); ``l2=None`` picks it by inner CV per setting."""
    scorers = {}
    chosen = {}
    for setting in SETTINGS:
        chosen[setting] = l2 if l2 is not None else select_l2(examples, setting, seed=seed)
        scorers[setting] = fit(examples, setting, l2=chosen[setting])
    return LiteModel(scorers["without_gt"], scorers["with_gt"], decode_as, {"l2": chosen})


def _fast_hits(scorer: LinearScorer, example: Example, setting: str) -> float:
    """Agent hit + step hit (0..2) of the agent decode, scored with numpy on the precomputed rows."""
    z = (example.rows[setting] - np.asarray(scorer.mean)) / np.asarray(scorer.scale)
    s = z @ np.asarray(scorer.coef)
    p = np.exp(s - s.max())
    agent, step, _ = decode(example.trajectory, (p / p.sum()).tolist(), "agent")
    return float(_same(agent, example.label.agent)) + float(step == example.label.step)


def select_l2(examples: Sequence[Example], setting: str, *, seed: int = 0) -> float:
    """The L2 penalty of ``L2_GRID`` with the best agent+step accuracy in an inner grouped CV of ``examples``,
    averaged over subsets (each subset weighs the same, an ``--extra`` framework's too: 10 Hand-Crafted runs are not
    outvoted by 126 others, on
    which a penalty that flattens the step scores costs little while it hands every Magentic-One run to its
    orchestrator); an exact tie goes to the larger penalty."""
    if len({e.group for e in examples}) < 2 * INNER_FOLDS:
        return L2_GRID[len(L2_GRID) // 2]
    folds = grouped_folds(examples, INNER_FOLDS, seed)
    hits = {l2: dict.fromkeys({e.subset for e in examples}, 0.0) for l2 in L2_GRID}
    for test in folds:
        test_set = set(test)
        train = [e for i, e in enumerate(examples) if i not in test_set]
        for l2 in L2_GRID:
            scorer = fit(train, setting, l2=l2)
            for i in test:
                hits[l2][examples[i].subset] += _fast_hits(scorer, examples[i], setting)
    sizes = {subset: sum(e.subset == subset for e in examples) for subset in hits[L2_GRID[0]]}
    accuracy = {l2: sum(h / sizes[subset] for subset, h in by_subset.items()) / len(sizes)
                for l2, by_subset in hits.items()}
    return max(L2_GRID, key=lambda l2: (round(accuracy[l2], 9), l2))


def grouped_folds(examples: Sequence[Example], folds: int, seed: int) -> list[list[int]]:
    """Test-fold indices: whole groups per fold, each subset's groups spread evenly over the folds."""
    rng = random.Random(seed)
    by_subset: dict[str, list[str]] = {}
    for e in examples:
        groups = by_subset.setdefault(e.subset, [])
        if e.group not in groups:
            groups.append(e.group)
    fold_of: dict[str, int] = {}
    offset = 0
    for subset in sorted(by_subset):
        groups = sorted(by_subset[subset])
        rng.shuffle(groups)
        for i, group in enumerate(groups):
            fold_of[group] = (i + offset) % folds
        offset += len(groups)
    return [[i for i, e in enumerate(examples) if fold_of[e.group] == k] for k in range(folds)]


def _same(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def _first_worker(trajectory: Trajectory) -> str:
    return next((s.agent for s in trajectory.steps if agent_kind(s.agent).worker), trajectory.steps[0].agent)


def _per_subset_mode(examples: Sequence[Example], key: Any) -> dict[str, Any]:
    """The most common ``key(example)`` of each subset (the majority baselines, fitted on a training fold)."""
    counters: dict[str, Counter[Any]] = {}
    for e in examples:
        counters.setdefault(e.subset, Counter())[key(e)] += 1
    return {subset: c.most_common(1)[0][0] for subset, c in counters.items()}


class _Tally:
    """Accumulates per-subset hits for one predictor."""

    def __init__(self) -> None:
        self.hits: dict[str, defaultdict[str, float]] = {}

    def add(self, subset: str, **scores: float) -> None:
        for key in (subset, "all"):
            counter = self.hits.setdefault(key, defaultdict(float))
            counter["n"] += 1
            for name, value in scores.items():
                counter[name] += value

    def report(self) -> dict[str, dict[str, float]]:
        return {subset: {k: round(100 * v / c["n"], 1) for k, v in c.items() if k != "n"} | {"n": int(c["n"])}
                for subset, c in sorted(self.hits.items())}


def cross_validate(examples: Sequence[Example], *, folds: int = 5, repeats: int = 3, seed: int = 0,
                   l2: float | None = None) -> dict[str, Any]:
    """Grouped k-fold CV, repeated; accuracy in % per subset (counts are summed over the repeats).

    With ``l2=None`` each training fold chooses its own penalty by an inner CV (nested), so the test
    fold never influences any choice.
    """
    if len({e.group for e in examples}) < folds:
        raise InputError(f"{len(examples)} labelled trajectories are too few for {folds}-fold cross-validation")
    tallies = {f"{setting}/{how}": _Tally() for setting in SETTINGS for how in ("agent", "step")}
    baselines = _Tally()
    chosen: Counter[str] = Counter()
    for repeat in range(repeats):
        for test in grouped_folds(examples, folds, seed + repeat):
            test_set = set(test)
            train = [e for i, e in enumerate(examples) if i not in test_set]
            model = fit_model(train, l2=l2, seed=seed + repeat)
            chosen.update(f"{setting}={value}" for setting, value in model.metadata["l2"].items())
            majority = _per_subset_mode(train, lambda e: e.label.agent.lower())
            modal_step = _per_subset_mode(train, lambda e: e.label.step)
            for i in test:
                e = examples[i]
                n = len(e.trajectory.steps)
                for setting in SETTINGS:
                    probabilities = score_steps(model, e.trajectory,
                                                with_ground_truth=setting == "with_gt").probabilities
                    for how in ("agent", "step"):
                        agent, step, _ = decode(e.trajectory, probabilities, how)
                        tallies[f"{setting}/{how}"].add(
                            e.subset, agent=_same(agent, e.label.agent), step=step == e.label.step,
                            step_pm1=abs(step - e.label.step) <= 1, step_pm3=abs(step - e.label.step) <= 3)
                baselines.add(e.subset, majority_agent=_same(str(majority.get(e.subset, "")), e.label.agent),
                              first_worker_agent=_same(_first_worker(e.trajectory), e.label.agent),
                              random_step=1.0 / n, modal_step=min(modal_step.get(e.subset, 0), n - 1) == e.label.step)
    return {
        "folds": folds, "repeats": repeats, "seed": seed,
        "l2": l2 if l2 is not None else {"grid": list(L2_GRID), "inner_folds": INNER_FOLDS, "chosen": dict(chosen)},
        "groups": len({e.group for e in examples}),
        "results": {key: tally.report() for key, tally in tallies.items()},
        "baselines": baselines.report(),
    }


def format_report(report: dict[str, Any]) -> str:
    """The CV report as a small text table."""
    lines = [f"{report['folds']}-fold grouped cross-validation x{report['repeats']} repeats "
             f"({report['groups']} groups), accuracy %"]
    header = f"{'subset':<22}{'setting/decode':<20}{'agent':>7}{'step':>7}{'±1':>7}{'±3':>7}"
    lines.append(header)
    subsets = sorted(report["baselines"])
    for subset in subsets:
        for key, table in report["results"].items():
            row = table.get(subset)
            if row:
                lines.append(f"{subset:<22}{key:<20}{row['agent']:>7}{row['step']:>7}"
                             f"{row['step_pm1']:>7}{row['step_pm3']:>7}")
        b = report["baselines"][subset]
        lines.append(f"{subset:<22}baselines: majority agent {b['majority_agent']}, first worker "
                     f"{b['first_worker_agent']}, random step {b['random_step']}, modal step {b['modal_step']} "
                     f"(n={b['n'] // max(1, report['repeats'])})")
    return "\n".join(lines)


def weights_document(model: LiteModel, examples: Sequence[Example], report: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON the tracer loads: features, both weight sets, decode, what it was trained on, the CV report."""
    def scorer(s: LinearScorer) -> dict[str, list[float]]:
        return {"mean": [round(v, 6) for v in s.mean], "scale": [round(v, 6) for v in s.scale],
                "coef": [round(v, 6) for v in s.coef]}

    return {
        "format": WEIGHTS_FORMAT,
        "l2": model.metadata.get("l2"),
        "features": list(FEATURE_NAMES),
        "decode": model.decode,
        "models": {"without_gt": scorer(model.without_gt), "with_gt": scorer(model.with_gt)},
        "trained_on": dict(Counter(e.subset for e in examples)),
        "trained_at": time.strftime("%Y-%m-%d"),
        "cv": report,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentracer.tracer.lite_train", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/whowhen", help="Who&When folder (development split)")
    parser.add_argument("--extra", action="append", default=[], help="labelled trajectories (JSONL/SQLite store)")
    parser.add_argument("--out", help="write the weights JSON here")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cv", action="store_true", help="skip cross-validation (the weights then carry no report)")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2 (each fold is scored by a model fitted on the others)")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        if args.out:
            _check_weights_output(args.out, [args.data, *args.extra])
        examples = load_examples(args.data, args.extra)
        if not examples:
            raise InputError("no labelled trajectories found", where=args.data)
        report = None if args.no_cv else cross_validate(examples, folds=args.folds, repeats=args.repeats,
                                                         seed=args.seed)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report is not None:
        print(format_report(report))
    model = fit_model(examples)
    if args.out:
        document = weights_document(model, examples, report)
        try:
            write_text_replacing(args.out, json.dumps(document, indent=1) + "\n")
        except OSError as exc:
            print(f"error: {args.out}: cannot write the weights ({exc.strerror or exc})", file=sys.stderr)
            return 2
        print(f"wrote {args.out} (trained on {len(examples)} trajectories)")
    return 0


def _check_weights_output(out: str, sources: Sequence[str | None]) -> None:
    """Refuse, before any training, a weights path that is a folder or one of the training data's own files."""
    path = Path(out)
    if path.is_dir():
        raise InputError("is a folder: give the weights a file name (weights.json)", where=out)
    for source in sources:
        if source is None or not Path(source).exists():
            continue
        inside = Path(source).is_dir() and Path(source).resolve() in path.resolve().parents
        if inside or (path.exists() and path.resolve() == Path(source).resolve()):
            raise InputError(f"is training data ({source}): the weights would replace it", where=out)


if __name__ == "__main__":
    raise SystemExit(main())
