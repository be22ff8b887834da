"""CPU tracer benchmark: milliseconds per trajectory (median, p95) and cross-validated accuracy.

    .venv/bin/python benchmarks/bench_lite.py [--data data/whowhen] [--repeats 1] [--rounds 3]

Timing: the shipped weights, ``LiteTracer.locate`` on every Who&When file (features + scoring, the
trajectory already parsed), ``--rounds`` times; per-trajectory wall time. Accuracy: a fresh grouped
k-fold cross-validation (nested L2 choice) computed now on the same data, next to the report stored in
the shipped weights. Needs the ``lite`` extra for the cross-validation only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from agentracer.formats.whowhen import iter_whowhen_dir
from agentracer.schema import Trajectory
from agentracer.tracer.lite import LiteTracer

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "whowhen"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-cv", action="store_true")
    args = parser.parse_args()

    trajectories = [t for _, t in iter_whowhen_dir(args.data) if isinstance(t, Trajectory)]
    tracer = LiteTracer()
    timings: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for trajectory in trajectories:
            subset = str(trajectory.metadata.get("subset", "all"))
            for with_gt in (False, True):
                wall, cpu = time.perf_counter(), time.process_time()
                tracer.locate(trajectory, with_ground_truth=with_gt)
                measured = {"wall": 1000 * (time.perf_counter() - wall), "cpu": 1000 * (time.process_time() - cpu)}
                for key in (subset, "all"):
                    for clock, value in measured.items():
                        timings.setdefault(key, {}).setdefault(clock, []).append(value)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"lite tracer latency over {len(trajectories)} trajectories x {args.rounds} rounds x with/without G "
          f"({os.cpu_count()} CPUs, load average {load:.1f}; CPU time is the process's own)")
    for subset, clocks in sorted(timings.items()):
        for clock, values in clocks.items():
            print(f"  {subset:<22}{clock:>5}  median {statistics.median(values):7.2f} ms   "
                  f"p95 {percentile(values, 0.95):7.2f} ms   max {max(values):7.2f} ms")

    shipped = tracer.model.metadata.get("cv")
    if shipped:
        from agentracer.tracer.lite_train import format_report

        print("\nshipped weights' training report:")
        print(format_report(shipped))
    if not args.no_cv:
        from agentracer.tracer.lite_train import cross_validate, format_report, load_examples

        start = time.perf_counter()
        report = cross_validate(load_examples(args.data), folds=args.folds, repeats=args.repeats, seed=1)
        print(f"\ncross-validation computed now (seed 1, {time.perf_counter() - start:.0f} s):")
        print(format_report(report))


if __name__ == "__main__":
    main()
