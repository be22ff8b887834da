"""AutoGen: recording overhead and replay cost on a scripted 50-message team, measured in one run.

Untraced (AutoGen's own functions: the hooks removed) vs traced (``agentracer.trace``) vs replayed from step
25, in interleaved rounds (a shared VM's speed drifts; interleaving puts the drift on all three alike), for each
model latency: CPU time with an instant model, wall time with a slow one. Prints traced/untraced as the ratio of
medians and as the median of each round's ratio (goal <= 1.05), replay/original (goal <= 1.1), microseconds of
overhead per step, and the live model calls made while the prefix was replayed (must be 0). With an instant model
it also times the hooks alone (``--floor``): traced runs with the recording switched off (model calls pass straight
through, no message becomes a step), the least any recorder on these hook points could cost.

    python benchmarks/bench_autogen.py [--rounds 60] [--latencies 0,0.01] [--slow-rounds 10] [--floor]
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
    """AutoGen's scripted client, counting the calls that reach it; ``latency`` seconds per call."""

    calls = 0
    latency = 0.0

    async def create(self, *args, **kwargs):
        CountingClient.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        return await super().create(*args, **kwargs)


def build(latency: float = 0.0) -> RoundRobinGroupChat:
    client = CountingClient([f"message {i}: {REPLY}" for i in range(N_MESSAGES + 5)])
    client.latency = latency
    agents = [AssistantAgent(n, model_client=client) for n in ("planner", "coder", "reviewer")]
    return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(N_MESSAGES + 1))


def timed(fn, clock: Callable[[], float] = time.process_time) -> float:
    start = clock()
    fn()
    return clock() - start


def arguments(doc: str, *, more: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """``--rounds`` (and what ``more`` adds) from the command line (a benchmark's docstring's first paragraph is
    its help)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60, help="interleaved rounds with an instant model")
    if more is not None:
        more(parser)
    return parser.parse_args()


@contextlib.contextmanager
def hooks_removed() -> Iterator[None]:
    """AutoGen's own functions for the block (an untraced run), the hooks back afterwards."""
    agentracer.uninstrument()
    try:
        yield
    finally:
        plugin.instrument()


@contextlib.contextmanager
def recording_off() -> Iterator[None]:
    """The hooks installed and a run active, but nothing recorded: every model call passes straight through and
    no message becomes a step (the floor of ``--floor``: what the hook points and a run's bookkeeping cost)."""
    from agentracer_plugins.autogen import hooks, steps

    async def pass_through(run, client, args, kwargs, live, *, stream):
        return await live()

    saved = hooks._route_model_call, steps.record_message
    hooks._route_model_call, steps.record_message = pass_through, lambda *args, **kwargs: None
    try:
        yield
    finally:
        hooks._route_model_call, steps.record_message = saved


SETTINGS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "untraced": hooks_removed, "hooks only": recording_off}
"""The context each compared run is timed in (none for the others)."""


def setting(name: str) -> contextlib.AbstractContextManager[None]:
    """The context the run ``name`` of ``compared_runs`` is timed in."""
    return SETTINGS.get(name, contextlib.nullcontext)()


def compared_runs(latency: float = 0.0, *, floor: bool = False) -> tuple[dict[str, Callable[[], Any]], Any, Any]:
    """The runs compared (each timed in its ``setting``): untraced, traced, replayed from step T and, with
    ``floor``, traced with the recording off; the traced team and the recording the replays start from."""
    traced = agentracer.trace(build, latency)
    original = traced.run("do the task")
    runs = {
        "untraced": lambda: asyncio.run(result_dropped(build(latency).run(task="do the task"))),
        "traced": lambda: traced.run("do the task"),
        "replay": lambda: traced.replay(original, step=T, action="REPLACED"),
    }
    if floor:
        runs["hooks only"] = runs["traced"]
    return runs, traced, original


def measure(latency: float, rounds: int, floor: bool) -> None:
    """Time the compared runs in interleaved rounds and print their ratios and the replayed prefix's live calls."""
    clock = time.process_time if latency == 0 else time.perf_counter  # an instant model: CPU; a slow one: wall
    runs, traced, original = compared_runs(latency, floor=floor)
    for name, run in runs.items():  # warm up
        with setting(name):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):  # interleaved, so load changes hit all alike
        for name, run in runs.items():
            with setting(name):
                times[name].append(timed(run, clock))
    med = {k: statistics.median(v) for k, v in times.items()}
    steps = len(original.steps)

    def versus_untraced(name: str) -> str:
        per_round = statistics.median(t / u for t, u in zip(times[name], times["untraced"], strict=True))
        return (f"{name}/untraced  {med[name] / med['untraced']:.3f}   ({(med[name] - med['untraced']) / steps * 1e6:.0f}"
                f" us/step; median of round ratios {per_round:.3f})")

    CountingClient.calls = 0
    replayed = traced.replay(original, step=T, action="REPLACED")
    live_total = CountingClient.calls
    prefix_live = sum(c.source == "live" for s in replayed.steps[:T] for c in s.model_calls)
    prefix_same = [s.content for s in replayed.steps[:T]] == [s.content for s in original.steps[:T]]
    kind = "CPU" if latency == 0 else "wall"
    print(f"AutoGen RoundRobinGroupChat, {N_MESSAGES} scripted messages, {steps} steps, model latency "
          f"{latency * 1e3:.0f} ms, {rounds} rounds ({kind} time)")
    print(f"  untraced median   {med['untraced'] * 1e3:8.1f} ms")
    print(f"  traced median     {med['traced'] * 1e3:8.1f} ms   {versus_untraced('traced')}")
    if "hooks only" in med:
        print(f"  hooks only median {med['hooks only'] * 1e3:8.1f} ms   {versus_untraced('hooks only')}")
    print(f"  replay(t={T}) med  {med['replay'] * 1e3:8.1f} ms   replay/original  {med['replay'] / med['traced']:.3f}")
    print(f"  live calls during prefix replay: {prefix_live} (must be 0); live calls in all of the replay: "
          f"{live_total} (steps after t: {steps - T - 1}); prefix identical: {prefix_same}")


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latencies", default="0,0.01", help="scripted model latency per call, seconds")
    parser.add_argument("--slow-rounds", type=int, default=10, help="interleaved rounds with a slow model")
    parser.add_argument("--floor", action="store_true", help="also time the hooks with the recording off")


def main() -> None:
    args = arguments(__doc__, more=_options)
    for latency in (float(x) for x in args.latencies.split(",")):
        measure(latency, args.rounds if latency == 0 else args.slow_rounds, args.floor and latency == 0)


if __name__ == "__main__":
    main()
