"""CAMEL role-play of ~50 steps: untraced vs traced vs replayed from step 25 (scripted models, offline).

Prints, for each model latency, the best wall time of each (runs interleaved, so a busy machine slows all
three alike), the ratios traced/untraced (target <= 1.05) and replay/original (target <= 1.1), and the
live model calls made for the replayed prefix (must be 0).

    python benchmarks/bench_camel.py [--rounds 25] [--repeats 5] [--latencies 0,0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import agentracer
from camel.societies import RolePlaying

from agentracer_plugins.camel import plugin, with_options
from agentracer_plugins.camel.testing import ScriptedModel

TASK = "Draft a 25-point checklist for releasing a Python library."


def turns(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


def build(rounds: int, latency: float, models: list[ScriptedModel]) -> RolePlaying:
    def lead(messages: list[dict[str, Any]]) -> str:
        turn = turns(messages)
        return f"Instruction: write checklist item {turn + 1}.\nInput: None" if turn < rounds else "CAMEL_TASK_DONE"

    def writer(messages: list[dict[str, Any]]) -> str:
        return f"Solution: item {turns(messages) + 1}: check the changelog entry. Next request."

    user = ScriptedModel([lead], cycle=True, latency=latency, name="lead")
    assistant = ScriptedModel([writer], cycle=True, latency=latency, name="writer")
    models[:] = [user, assistant]
    return RolePlaying("Writer", "Release Lead", task_prompt=TASK, with_task_specify=False,
                       assistant_agent_kwargs={"model": assistant}, user_agent_kwargs={"model": user})


async def run_untraced(society: RolePlaying, max_turns: int) -> int:
    """The same loop the plugin runs, on a society with no hooks installed."""
    message = await society.ainit_chat()
    steps = 0
    for _ in range(max_turns):
        assistant, user = await society.astep(message)
        steps += 2
        if "TASK_DONE" in user.msgs[0].content:
            break
        message = assistant.msgs[0]
    return steps


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench(rounds: int, repeats: int, latency: float) -> dict[str, Any]:
    models: list[ScriptedModel] = []
    max_turns = rounds + 2
    traced = agentracer.trace(lambda: with_options(build(rounds, latency, models), max_turns=max_turns))
    t = rounds  # the replaced step: the writer's answer in the middle of the run (step 25 for 25 rounds)

    def untraced() -> int:
        plugin.uninstrument()  # pure CAMEL: no hook installed at all
        return asyncio.run(run_untraced(build(rounds, latency, models), max_turns))

    def replay() -> Any:
        new = traced.replay(traj, step=t, action="Solution: item 13: tag the release. Next request.")
        return new, sum(m.calls for m in models)

    times: dict[str, list[float]] = {"untraced": [], "traced": [], "replay": []}
    for _ in range(repeats):
        seconds, steps = timed(untraced)
        times["untraced"].append(seconds)
        seconds, traj = timed(lambda: traced.run(TASK))
        times["traced"].append(seconds)
        assert len(traj.steps) == steps, (len(traj.steps), steps)
        seconds, (new, live_model_calls) = timed(replay)
        times["replay"].append(seconds)
    untraced_s, traced_s, replay_s = (min(times[k]) for k in ("untraced", "traced", "replay"))
    spread = {k: statistics.median(v) for k, v in times.items()}
    prefix_live = sum(1 for s in new.steps[:t] for c in s.model_calls if c.source == "live")
    after_live = sum(1 for s in new.steps[t:] for c in s.model_calls if c.source == "live")
    return {"latency": latency, "steps": steps, "untraced": untraced_s, "traced": traced_s, "replay": replay_s,
            "t": t, "prefix_live": prefix_live, "after_live": after_live, "model_calls": live_model_calls,
            "served": new.metadata["replay_stats"]["cassette"], "median": spread}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=25, help="role-play rounds (2 steps each)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--latencies", default="0,0.01", help="scripted model latency per call, seconds")
    args = parser.parse_args()
    for latency in (float(x) for x in args.latencies.split(",")):
        r = bench(args.rounds, args.repeats, latency)
        m = r["median"]
        print(f"CAMEL role-play, {r['steps']} steps, model latency {latency * 1000:.0f} ms, best of {args.repeats}:")
        print(f"  untraced {r['untraced']:.3f}s  traced {r['traced']:.3f}s  replay from step {r['t']} "
              f"{r['replay']:.3f}s  (medians {m['untraced']:.3f} / {m['traced']:.3f} / {m['replay']:.3f})")
        print(f"  traced/untraced = {r['traced'] / r['untraced']:.3f} (target <= 1.05)")
        print(f"  replay/original = {r['replay'] / r['traced']:.3f} (target <= 1.1)")
        print(f"  live model calls for the replayed prefix (steps < {r['t']}): {r['prefix_live']} (must be 0); "
              f"served from the recording: {r['served']}; live after it: {r['after_live']} "
              f"(the scripted models counted {r['model_calls']})")


if __name__ == "__main__":
    main()
