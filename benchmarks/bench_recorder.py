"""Recorder overhead: the same scripted 50-step team with and without recording, in one process.

Prints the ratio of medians traced/untraced and the recording cost per step in microseconds, for a model
that answers instantly (pure overhead) and for one that takes 1 ms (a very fast real model), plus replay
from step 25. Usage: python benchmarks/bench_recorder.py [REPS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import agentracer
from agentracer.simple import SimpleAgent, SimpleTeam

STEPS = 50
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
REPLY = "some words of a plausible reply " * 8


def build(delay: float) -> SimpleTeam:
    async def model(messages):
        if delay:
            await asyncio.sleep(delay)
        return f"{len(messages)}: {REPLY}"

    agents = [SimpleAgent(name, model, system_prompt=f"You are the {name}.") for name in ("planner", "coder", "reviewer")]
    return SimpleTeam(agents, max_turns=STEPS, stop_word=None)


def median_seconds(fn, reps: int = REPS) -> float:
    for _ in range(3):
        fn()
    return statistics.median(_timed(fn) for _ in range(reps))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(delay: float) -> tuple[float, float, float, float]:
    untraced = lambda: asyncio.run(build(delay).run("do the task"))  # noqa: E731
    team = agentracer.trace(build, delay)
    traced = lambda: team.run("do the task")  # noqa: E731
    a = median_seconds(untraced)
    b = median_seconds(traced)
    c = median_seconds(untraced)
    base = (a + c) / 2
    trajectory = team.run("do the task")
    replay = median_seconds(lambda: team.replay(trajectory, step=25, action="REPLACED"))
    steps = len(trajectory.steps)
    return b / base, (b - base) / steps * 1e6, replay / b, a / c


if __name__ == "__main__":
    for delay in (0.0, 0.001):
        ratio, us, replay_ratio, drift = measure(delay)
        print(f"model latency {delay * 1e3:.0f} ms: traced/untraced {ratio:.3f}, {us:.1f} us/step recording cost, "
              f"replay(25)/traced {replay_ratio:.3f} (drift {drift:.3f}, {STEPS} steps, {REPS} reps)")
