"""Recorder overhead: the same scripted 50-step team with and without recording, in one process.

Prints the ratio of medians traced/untraced and the recording cost per step in microseconds, for a model
that answers instantly (pure overhead, CPU time) and for one that takes 1 ms (a very fast real model, wall
time), plus replay from step 25, in interleaved rounds. Usage: python benchmarks/bench_recorder.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import agentracer
from agentracer.simple import SimpleAgent, SimpleTeam
from baseline import result_dropped

STEPS = 50
REPLY = "some words of a plausible reply " * 8


def build(delay: float) -> SimpleTeam:
    def model(messages):
        if delay:  # a blocking client's wait: asyncio.sleep would round to the event loop's timer ticks
            time.sleep(delay)
        return f"{len(messages)}: {REPLY}"

    agents = [SimpleAgent(name, model, system_prompt=f"You are the {name}.") for name in ("planner", "coder", "reviewer")]
    return SimpleTeam(agents, max_turns=STEPS, stop_word=None)


def _timed(fn, clock=time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def measure(delay: float, reps: int) -> tuple[float, float, float, float]:
    """Untraced and traced runs in interleaved rounds (a shared machine's speed drifts; interleaving puts the
    drift on both alike): ratio of medians, recording cost per step, replay/traced, median of round ratios."""
    untraced = lambda: asyncio.run(result_dropped(build(delay).run("do the task")))  # noqa: E731
    team = agentracer.trace(build, delay)
    traced = lambda: team.run("do the task")  # noqa: E731
    trajectory = team.run("do the task")
    replay = lambda: team.replay(trajectory, step=25, action="REPLACED")  # noqa: E731
    for fn in (untraced, traced, replay):
        fn()
    times: dict[str, list[float]] = {"untraced": [], "traced": [], "replay": []}
    clock = time.process_time if delay == 0 else time.perf_counter  # CPU time when nothing waits
    for _ in range(reps):
        times["untraced"].append(_timed(untraced, clock))
        times["traced"].append(_timed(traced, clock))
        times["replay"].append(_timed(replay, clock))
    base, b, r = (statistics.median(times[k]) for k in ("untraced", "traced", "replay"))
    per_round = statistics.median(t / u for t, u in zip(times["traced"], times["untraced"], strict=True))
    steps = len(trajectory.steps)
    return b / base, (b - base) / steps * 1e6, r / b, per_round


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    for delay in (0.0, 0.001):
        ratio, us, replay_ratio, per_round = measure(delay, reps)
        print(f"model latency {delay * 1e3:.0f} ms: traced/untraced {ratio:.3f} (median of round ratios "
              f"{per_round:.3f}), {us:.1f} us/step recording cost, replay(25)/traced {replay_ratio:.3f} "
              f"({STEPS} steps, {reps} interleaved rounds)")
