"""Throughput of `eval whowhen` against a loopback OpenAI-compatible server with 200 ms latency.

Evaluates the 136 Who&When trajectories in data/whowhen with the `agentracer` method at concurrency 1
and at concurrency 32 (cache off, so every item is a real HTTP request), and prints both wall times and
their ratio (target >= 20x). The server runs as a separate process (`python -m
agentracer.testing.openai_server`), so its request handling does not share this process's CPU time.

    .venv/bin/python benchmarks/bench_eval_throughput.py [--latency 0.2] [--high 32]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agentracer.models.openai_http import OpenAIChatModel
from agentracer.tracer import get_method
from agentracer.tracer.evaluation import evaluate_items, iter_items, read_rows

ROOT = Path(__file__).resolve().parents[1]
ANSWER = "<think>the surfer clicked the wrong link</think><answer>WebSurfer|3</answer>"


def start_server(latency: float, folder: Path) -> tuple[subprocess.Popen, str]:
    port_file = folder / "port"
    process = subprocess.Popen([sys.executable, "-m", "agentracer.testing.openai_server", "--answer", ANSWER,
                                "--latency", str(latency), "--port-file", str(port_file), "--lifetime", "900"],
                               stdout=subprocess.DEVNULL)
    for _ in range(200):
        if port_file.exists() and port_file.read_text().strip():
            return process, f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the loopback server did not start")


def timed_run(items: list, base_url: str, concurrency: int, output: Path) -> tuple[float, int]:
    model = OpenAIChatModel(base_url, "bench", cache=False, max_concurrency=concurrency)
    method = get_method("agentracer", model)
    started = time.perf_counter()
    asyncio.run(evaluate_items(items, method, output, with_gt=True, method_name="agentracer",
                               model_name=model.name, concurrency=concurrency))
    elapsed = time.perf_counter() - started
    answered = sum(1 for r in read_rows(output) if r["error"] is None)
    return elapsed, answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "whowhen"))
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--high", type=int, default=32)
    args = parser.parse_args()
    items = [item for item in iter_items(args.data) if item.trajectory is not None]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server, base_url = start_server(args.latency, folder)
        try:
            serial, ok_serial = timed_run(items, base_url, 1, folder / "c1.jsonl")
            parallel, ok_parallel = timed_run(items, base_url, args.high, folder / "chigh.jsonl")
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"{len(items)} trajectories, server latency {args.latency * 1000:.0f} ms")
    print(f"concurrency 1:  {serial:7.2f} s  ({ok_serial} answered, {len(items) / serial:6.1f} items/s)")
    print(f"concurrency {args.high}: {parallel:7.2f} s  ({ok_parallel} answered, {len(items) / parallel:6.1f} items/s)")
    ratio = serial / parallel
    print(f"speed-up: {ratio:.1f}x (target >= 20x) {'OK' if ratio >= 20 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
