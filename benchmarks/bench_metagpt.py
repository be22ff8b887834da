"""MetaGPT: recording overhead and replay cost of a scripted two-role team, measured in one run.

Two roles answer each other for ``--rounds-per-run`` MetaGPT rounds (one routed message and one
``aask`` per round, through MetaGPT's own Team/Environment/Role/Action machinery and a scripted
``BaseLLM``). Untraced (hooks removed) vs traced vs replayed from the middle step, interleaved, medians:
prints traced/untraced, replay/original and the model calls that reached the LLM while the prefix was
replayed (must be 0).

    .nox/metagpt/bin/python benchmarks/bench_metagpt.py [--repeats 7] [--rounds-per-run 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from agentracer_plugins.metagpt.offline import prepare_temporary_home

prepare_temporary_home("bench-metagpt-")  # (MetaGPT reads its config at import)

import agentracer  # noqa: E402
from baseline import result_dropped  # noqa: E402
from metagpt.actions import Action, UserRequirement  # noqa: E402
from metagpt.roles import Role  # noqa: E402
from metagpt.team import Team  # noqa: E402

from agentracer_plugins import metagpt as mg_plugin  # noqa: E402
from agentracer_plugins.metagpt import Rounds  # noqa: E402
from agentracer_plugins.metagpt.testing import ScriptedLLM  # noqa: E402

REPLY = "some words of a plausible reply " * 8


class CountingLLM(ScriptedLLM):
    reached = 0

    def _reply(self, messages: list[dict[str, Any]]) -> str:
        CountingLLM.reached += 1
        return super()._reply(messages)


class Ping(Action):
    name: str = "Ping"

    async def run(self, with_messages: Any = None) -> str:
        return await self._aask(f"Answer briefly: {with_messages[-1].content[:80]}")


class Pong(Action):
    name: str = "Pong"

    async def run(self, with_messages: Any = None) -> str:
        return await self._aask(f"Reply briefly: {with_messages[-1].content[:80]}")


class Pinger(Role):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._watch([UserRequirement, Pong])
        self.set_actions([Ping])


class Ponger(Role):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._watch([Ping])
        self.set_actions([Pong])


def build(n_round: int) -> Rounds:
    team = Team()
    team.hire([Pinger(name="P", profile="Pinger", llm=CountingLLM(REPLY, model="ping")),
               Ponger(name="Q", profile="Ponger", llm=CountingLLM(REPLY, model="pong"))])
    return Rounds(team, n_round=n_round)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds-per-run", type=int, default=40)
    args = parser.parse_args()

    traced = agentracer.trace(build, args.rounds_per_run)
    recorded = traced.run("Start the conversation.")
    t = len(recorded.steps) // 2
    times: dict[str, list[float]] = {"untraced": [], "traced": [], "replay": []}
    prefix_live = 0
    for _ in range(args.repeats):
        mg_plugin.uninstrument()
        start = time.perf_counter()  # (the team's build counted on both sides: a traced run builds its own)
        options = build(args.rounds_per_run)
        asyncio.run(result_dropped(options.team.run(n_round=options.n_round, idea="Start the conversation.",
                                                    auto_archive=False)))
        times["untraced"].append(time.perf_counter() - start)

        start = time.perf_counter()
        traced.run("Start the conversation.")
        times["traced"].append(time.perf_counter() - start)

        CountingLLM.reached = 0
        start = time.perf_counter()
        replay = traced.replay(recorded, step=t, action="a replaced reply")
        times["replay"].append(time.perf_counter() - start)
        prefix_live += sum(1 for s in replay.steps[:t] for c in s.model_calls if c.source == "live")
        live_after = replay.metadata["replay_stats"]["live"]
    med = {k: statistics.median(v) for k, v in times.items()}
    steps = len(recorded.steps)
    print(f"MetaGPT Team, 2 scripted roles, {steps} steps ({args.rounds_per_run} rounds), {args.repeats} repeats")
    print(f"  untraced median   {med['untraced'] * 1e3:8.1f} ms")
    print(f"  traced median     {med['traced'] * 1e3:8.1f} ms   traced/untraced  {med['traced'] / med['untraced']:.3f}"
          f"   ({(med['traced'] - med['untraced']) / steps * 1e6:.0f} us/step)")
    print(f"  replay(t={t}) med  {med['replay'] * 1e3:8.1f} ms   replay/original  {med['replay'] / med['traced']:.3f}")
    print(f"  live calls during prefix replay: {prefix_live} (must be 0); live calls after t in the last replay: "
          f"{live_after}; calls that reached the LLM in the last replay: {CountingLLM.reached}")


if __name__ == "__main__":
    main()
