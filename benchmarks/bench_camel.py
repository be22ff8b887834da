"""CAMEL role-play of ~50 steps: untraced vs traced vs replayed from step 25 (scripted models, offline).

Prints, for each model latency, the medians of interleaved rounds (so a change in a shared machine's speed hits
all three alike; CPU time with an instant model, wall time with a slow one), the ratios traced/untraced (target
<= 1.05) and replay/original (target <= 1.1), and the live model calls made for the replayed prefix (must be 0).
The untraced runs have CAMEL's hooks removed.

    python benchmarks/bench_camel.py [--rounds 25] [--repeats 30] [--latencies 0,0.01]
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


def timed(fn: Any) -> tuple[float, float, Any]:
    """(CPU seconds, wall seconds, result) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def bench(rounds: int, repeats: int, latency: float) -> dict[str, Any]:
    models: list[ScriptedModel] = []
    max_turns = rounds + 2
    traced = agentracer.trace(lambda: with_options(build(rounds, latency, models), max_turns=max_turns))
    t = rounds  # the replaced step: the writer's answer in the middle of the run (step 25 for 25 rounds)
    original = traced.run(TASK)

    def untraced() -> int:
        plugin.uninstrument()  # pure CAMEL: no hook installed at all
        try:
            return asyncio.run(run_untraced(build(rounds, latency, models), max_turns))
        finally:
            plugin.instrument()

    def replay() -> Any:
        return traced.replay(original, step=t, action="Solution: item 13: tag the release. Next request.")

    for fn in (untraced, lambda: traced.run(TASK), replay):  # warm up
        fn()
    cpu: dict[str, list[float]] = {"untraced": [], "traced": [], "replay": []}
    wall: dict[str, list[float]] = {"untraced": [], "traced": [], "replay": []}
    for _ in range(repeats):  # interleaved, so a change in the machine's speed hits all three alike
        for name, fn in (("untraced", untraced), ("traced", lambda: traced.run(TASK)), ("replay", replay)):
            c, w, result = timed(fn)
            cpu[name].append(c)
            wall[name].append(w)
            if name == "untraced":
                steps = result
            elif name == "traced":
                assert len(result.steps) == steps, (len(result.steps), steps)
    for model in models:
        model.calls = 0
    new = replay()
    prefix_live = sum(1 for s in new.steps[:t] for c in s.model_calls if c.source == "live")
    after_live = sum(1 for s in new.steps[t:] for c in s.model_calls if c.source == "live")
    return {"latency": latency, "steps": steps, "t": t, "prefix_live": prefix_live, "after_live": after_live,
            "model_calls": sum(m.calls for m in models), "served": new.metadata["replay_stats"]["cassette"],
            "cpu": {k: statistics.median(v) for k, v in cpu.items()},
            "wall": {k: statistics.median(v) for k, v in wall.items()},
            "round_ratio": statistics.median(a / b for a, b in zip(cpu["traced"], cpu["untraced"], strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=25, help="role-play rounds (2 steps each)")
    parser.add_argument("--repeats", type=int, default=30, help="interleaved untraced/traced/replay rounds")
    parser.add_argument("--latencies", default="0,0.01", help="scripted model latency per call, seconds")
    args = parser.parse_args()
    for latency in (float(x) for x in args.latencies.split(",")):
        r = bench(args.rounds, args.repeats, latency)
        # with an instant model the CPU time is the run's time; with a slow one, the wall time is
        clock = "cpu" if latency == 0 else "wall"
        m = r[clock]
        print(f"CAMEL role-play, {r['steps']} steps, model latency {latency * 1000:.0f} ms, "
              f"medians of {args.repeats} interleaved rounds ({clock} time):")
        print(f"  untraced {m['untraced'] * 1e3:.1f} ms  traced {m['traced'] * 1e3:.1f} ms  replay from step {r['t']} "
              f"{m['replay'] * 1e3:.1f} ms")
        extra = f"; median of round ratios {r['round_ratio']:.3f}" if clock == "cpu" else ""
        print(f"  traced/untraced = {m['traced'] / m['untraced']:.3f} (target <= 1.05; "
              f"{(m['traced'] - m['untraced']) / r['steps'] * 1e6:.0f} us/step{extra})")
        print(f"  replay/original = {m['replay'] / m['traced']:.3f} (target <= 1.1)")
        print(f"  live model calls for the replayed prefix (steps < {r['t']}): {r['prefix_live']} (must be 0); "
              f"served from the recording: {r['served']}; live after it: {r['after_live']} "
              f"(the scripted models counted {r['model_calls']})")


if __name__ == "__main__":
    main()
