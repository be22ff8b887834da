"""AutoGen: recording overhead and replay cost on a scripted 50-message team, measured in one run.

Untraced (AutoGen's own functions: the hooks removed) vs traced (``agentracer.trace``) vs replayed from step
25, in interleaved rounds timed by CPU time (a shared VM's speed drifts; interleaving puts the drift on all
three alike): prints traced/untraced as the ratio of medians and as the median of each round's ratio (goal
<= 1.05), replay/original (goal <= 1.1), microseconds of overhead per step, and the live model calls made
while the prefix was replayed (must be 0).

    python benchmarks/bench_autogen.py [--rounds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import agentracer
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.replay import ReplayChatCompletionClient
from baseline import result_dropped

from agentracer_plugins.autogen import plugin

N_MESSAGES, T = 50, 25
REPLY = "some words of a plausible reply " * 8


class CountingClient(ReplayChatCompletionClient):
    """AutoGen's scripted client, counting the calls that reach it."""

    calls = 0

    async def create(self, *args, **kwargs):
        CountingClient.calls += 1
        return await super().create(*args, **kwargs)


def build() -> RoundRobinGroupChat:
    client = CountingClient([f"message {i}: {REPLY}" for i in range(N_MESSAGES + 5)])
    agents = [AssistantAgent(n, model_client=client) for n in ("planner", "coder", "reviewer")]
    return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(N_MESSAGES + 1))


def timed(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def rounds_argument(doc: str) -> int:
    """``--rounds`` from the command line (a benchmark's docstring's first paragraph is its help)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    return parser.parse_args().rounds


@contextlib.contextmanager
def hooks_removed() -> Iterator[None]:
    """AutoGen's own functions for the block (an untraced run), the hooks back afterwards."""
    agentracer.uninstrument()
    try:
        yield
    finally:
        plugin.instrument()


def compared_runs() -> tuple[dict[str, Callable[[], Any]], Any, Any]:
    """The three runs compared (untraced: to call with ``hooks_removed``; traced; replayed from step T), the traced
    team and the recording the replays start from."""
    traced = agentracer.trace(build)
    original = traced.run("do the task")
    runs = {
        "untraced": lambda: asyncio.run(result_dropped(build().run(task="do the task"))),
        "traced": lambda: traced.run("do the task"),
        "replay": lambda: traced.replay(original, step=T, action="REPLACED"),
    }
    return runs, traced, original


def main() -> None:
    rounds = rounds_argument(__doc__)
    runs, traced, original = compared_runs()
    with hooks_removed():  # warm up
        runs["untraced"]()
    runs["traced"]()
    runs["replay"]()
    times: dict[str, list[float]] = {"untraced": [], "traced": [], "replay": []}
    for _ in range(rounds):  # interleaved, so load changes hit all three alike
        with hooks_removed():
            times["untraced"].append(timed(runs["untraced"]))
        times["traced"].append(timed(runs["traced"]))
        times["replay"].append(timed(runs["replay"]))
    med = {k: statistics.median(v) for k, v in times.items()}
    per_round = statistics.median(t / u for t, u in zip(times["traced"], times["untraced"], strict=True))

    CountingClient.calls = 0
    replayed = traced.replay(original, step=T, action="REPLACED")
    live_total = CountingClient.calls
    prefix_live = sum(c.source == "live" for s in replayed.steps[:T] for c in s.model_calls)
    prefix_same = [s.content for s in replayed.steps[:T]] == [s.content for s in original.steps[:T]]
    steps = len(original.steps)
    print(f"AutoGen RoundRobinGroupChat, {N_MESSAGES} scripted messages, {steps} steps, {rounds} rounds")
    print(f"  untraced median   {med['untraced'] * 1e3:8.1f} ms")
    print(f"  traced median     {med['traced'] * 1e3:8.1f} ms   traced/untraced  {med['traced'] / med['untraced']:.3f}"
          f"   ({(med['traced'] - med['untraced']) / steps * 1e6:.0f} us/step; median of round ratios "
          f"{per_round:.3f})")
    print(f"  replay(t={T}) med  {med['replay'] * 1e3:8.1f} ms   replay/original  {med['replay'] / med['traced']:.3f}")
    print(f"  live calls during prefix replay: {prefix_live} (must be 0); live calls in all of the replay: "
          f"{live_total} (steps after t: {steps - T - 1}); prefix identical: {prefix_same}")


if __name__ == "__main__":
    main()
