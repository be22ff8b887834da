"""AutoGen: how often the garbage collector runs, and for how long, in untraced, traced and replayed runs.

The scripted 50-message team of ``bench_autogen.py`` in interleaved rounds; a ``gc.callbacks`` hook times every
collection by generation. Prints, per mode, the median CPU time of a run and the collections per run with their
time (young, middle, full), which is where recording costs more than its instruction count says: what a run keeps
until it ends makes the collector run more often.

    python benchmarks/bench_autogen_gc.py [--rounds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable

import agentracer
from baseline import result_dropped
from bench_autogen import T, build

from agentracer_plugins.autogen import plugin

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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    traced = agentracer.trace(build)
    original = traced.run("do the task")

    def untraced() -> None:
        agentracer.uninstrument()
        try:
            asyncio.run(result_dropped(build().run(task="do the task")))
        finally:
            plugin.instrument()

    modes: dict[str, Callable[[], object]] = {
        "untraced": untraced, "traced": lambda: traced.run("do the task"),
        "replay": lambda: traced.replay(original, step=T, action="REPLACED"),
    }
    clocks = {name: CollectionClock() for name in modes}
    times: dict[str, list[float]] = {name: [] for name in modes}
    for run in modes.values():  # warm up
        run()
    for _ in range(args.rounds):
        for name, run in modes.items():
            gc.callbacks.append(clocks[name])
            start = time.process_time()
            try:
                run()
            finally:
                times[name].append(time.process_time() - start)
                gc.callbacks.remove(clocks[name])
    print(f"AutoGen RoundRobinGroupChat, 50 scripted messages, {args.rounds} interleaved rounds (CPU time)")
    for name, clock in clocks.items():
        per_run = "  ".join(f"{g} {clock.count[i] / args.rounds:.2f} ({clock.seconds[i] / args.rounds * 1e3:.3f} ms)"
                            for i, g in enumerate(GENERATIONS))
        print(f"  {name:9s} median {statistics.median(times[name]) * 1e3:6.2f} ms; collections per run: {per_run}")


if __name__ == "__main__":
    main()
