"""AutoGen: how often the garbage collector runs, and for how long, in untraced, traced and replayed runs.

The scripted 50-message team of ``bench_autogen.py`` in interleaved rounds; a ``gc.callbacks`` hook times every
collection by generation. Prints, per mode, the median CPU time of a run and the collections per run with their
time (young, middle, full), which is where recording costs more than its instruction count says: what a run keeps
until it ends makes the collector run more often.

    python benchmarks/bench_autogen_gc.py [--rounds 60]
"""

from __future__ import annotations

import gc
import statistics
import time

from bench_autogen import arguments, compared_runs, setting, timed

GENERATIONS = ("young", "middle", "full")


class CollectionClock:
    """Counts and times the collector's runs by generation (a ``gc.callbacks`` hook)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.count[info["generation"]] += 1
            self.seconds[info["generation"]] += time.perf_counter() - self.started


def main() -> None:
    rounds = arguments(__doc__).rounds
    runs, _, _ = compared_runs()
    clocks = {name: CollectionClock() for name in runs}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, run in runs.items():  # warm up
        with setting(name):
            run()
    for _ in range(rounds):
        for name, run in runs.items():
            with setting(name):
                gc.callbacks.append(clocks[name])
                try:
                    times[name].append(timed(run))
                finally:
                    gc.callbacks.remove(clocks[name])
    print(f"AutoGen RoundRobinGroupChat, 50 scripted messages, {rounds} interleaved rounds (CPU time)")
    for name, clock in clocks.items():
        per_run = "  ".join(f"{g} {clock.count[i] / rounds:.2f} ({clock.seconds[i] / rounds * 1e3:.3f} ms)"
                            for i, g in enumerate(GENERATIONS))
        print(f"  {name:9s} median {statistics.median(times[name]) * 1e3:6.2f} ms; collections per run: {per_run}")


if __name__ == "__main__":
    main()
