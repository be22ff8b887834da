"""Counterfactual search: the paper's sequential scan (k=1) vs concurrent candidates (k=8).

A scripted 20-step team (the task + 19 agent messages) whose decisive error is at step 12; every agent
message and every analyzer proposal is an HTTP request to a loopback OpenAI-compatible server that waits
300 ms per request (``agentracer.testing.openai_server``). Both searches must give the same label; printed:
wall time of each, their ratio (target >= 4x) and the model calls each used.

    .venv/bin/python benchmarks/bench_annotate.py [--latency 0.3] [--steps 20] [--error-step 12] [--k 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time

import agentracer
import httpx
from agentracer.annotate import Budget, CounterfactualSearch, LocalReplayer
from agentracer.models import load_model
from agentracer.simple import SimpleAgent, SimpleTeam
from agentracer.testing.openai_server import OpenAIServer

VALUE = re.compile(r"value = (-?\d+)")


def last_value(text: str) -> int:
    found = VALUE.findall(text)
    return int(found[-1]) if found else 0


def responder(error_step: int):
    """The server's answers: agents count (one slips at ``error_step``); the analyzer fixes locally."""

    def answer(request: dict) -> str:
        messages = request["messages"]
        if messages and "You analyse a failed run" in str(messages[0].get("content")):
            user = messages[-1]["content"]
            before = user.split("History before the step:")[1].split(" to correct - agent")[0]
            return f"<correction>value = {last_value(before.rsplit(chr(10) * 2 + 'Step ', 1)[0]) + 1} (checked)</correction>"
        history = [m for m in messages if m["role"] != "system"]
        previous = last_value("\n".join(str(m["content"]) for m in history[1:]))
        return f"value = {previous + (2 if len(history) == error_step else 1)}"

    return answer


def make_team(client: httpx.AsyncClient, base_url: str, steps: int) -> SimpleTeam:
    """Four agents taking turns; their model is the loopback server (one shared HTTP client)."""

    async def model(messages: list[dict]) -> str:
        reply = await client.post(f"{base_url}/chat/completions", json={"model": "scripted", "messages": messages})
        reply.raise_for_status()
        return reply.json()["choices"][0]["message"]["content"]

    agents = [SimpleAgent(f"agent{i}", model, system_prompt=f"You are agent {i}; add one.") for i in range(4)]
    return SimpleTeam(agents, max_turns=steps - 1, stop_word=None)


async def search(team, trajectory, analyzer_spec: str, k: int) -> tuple[float, object, Budget]:
    budget = Budget()
    evaluator = lambda t: last_value(t.steps[-1].text) == int(t.ground_truth)  # noqa: E731
    cf = CounterfactualSearch(LocalReplayer(team, evaluator), load_model(analyzer_spec, cache=False), k=k,
                              budget=budget)
    started = time.perf_counter()
    result = await cf.asearch(trajectory)
    return time.perf_counter() - started, result, budget


async def main(args: argparse.Namespace) -> int:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with OpenAIServer(responder(args.error_step), latency=args.latency) as server:
        client = httpx.AsyncClient(timeout=60, limits=limits)
        team = agentracer.trace(make_team, client, server.base_url, args.steps)
        evaluator = lambda t: last_value(t.steps[-1].text) == int(t.ground_truth)  # noqa: E731
        trajectory = await team.arun("Count from 0, one step per message.", ground_truth=str(args.steps - 1))
        agentracer.team.apply_evaluation(trajectory, evaluator)
        assert trajectory.outcome.success is False and len(trajectory.steps) == args.steps
        spec = f"openai:{server.base_url}@scripted"
        rows = []
        for k in (1, args.k):
            before = len(server.requests)
            seconds, result, budget = await search(team, trajectory, spec, k)
            rows.append((k, seconds, result, budget, len(server.requests) - before))
        await client.aclose()
    (_, t1, r1, b1, n1), (kk, tk, rk, bk, nk) = rows
    same = (r1.verdict.agent, r1.verdict.step) == (rk.verdict.agent, rk.verdict.step)
    print(f"team: {args.steps} steps, decisive error at step {args.error_step}; server latency {args.latency * 1000:.0f} ms")
    for k, seconds, result, budget, requests in rows:
        v = result.verdict
        print(f"k={k:<2} label {v.agent}|{v.step}  wall {seconds:6.2f}s  replays {len(result.replays):2d}  "
              f"model calls {budget.model_calls:3d} (analyzer {result.analyzer_calls}, server requests {requests})")
    print(f"same label: {same}; wall-time ratio sequential/k={kk}: {t1 / tk:.2f}x (target >= 4x); "
          f"model calls {b1.model_calls} vs {bk.model_calls}")
    return 0 if same else 1


if __name__ == "__main__":
    os.environ.setdefault("AGENTRACER_CACHE", "off")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--error-step", type=int, default=12)
    parser.add_argument("--k", type=int, default=8)
    raise SystemExit(asyncio.run(main(parser.parse_args())))
