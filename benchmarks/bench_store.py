"""Store benchmark: write and stream back N trajectories of S steps with the JSONL and SQLite stores.

Reports write and read throughput (trajectories/s, MB/s of JSON) and the peak Python memory (tracemalloc)
of streaming a store of 1/10 of N and of N trajectories: streaming must not grow with the file.

    .venv/bin/python benchmarks/bench_store.py            # 10,000 trajectories of 30 steps
    .venv/bin/python benchmarks/bench_store.py --n 2000   # quicker

Prints one summary line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from agentracer.schema import ModelCall, Outcome, Step, Trajectory, Usage, Verdict
from agentracer.store import open_store


def make_trajectory(number: int, steps: int) -> Trajectory:
    """A realistic-sized trajectory: S steps of a few hundred characters, one model call each."""
    agents = ["planner", "coder", "reviewer"]
    return Trajectory(
        id=f"bench-{number:06d}", task=f"Task {number}: write a function that sums the squares of even numbers.",
        framework="python", ground_truth="42",
        steps=[Step(
            index=i, agent=agents[i % 3], started_at=1.7e9 + i, ended_at=1.7e9 + i + 0.5,
            content=f"step {i} of run {number}: " + "I think the next thing to do is check the edge cases. " * 4,
            usage=Usage(prompt_tokens=400 + i, completion_tokens=60),
            model_calls=[ModelCall(agent=agents[i % 3], call_index=i // 3, step=i, model="qwen",
                                   request={"messages": [{"role": "user", "content": f"turn {i}"}]},
                                   response=f"answer {i}", request_hash=f"{number:06d}{i:04d}", latency_s=0.4)],
        ) for i in range(steps)],
        outcome=Outcome(success=False, answer="41"),
        labels=[Verdict(agent="coder", step=min(4, steps - 1), reason="off by one", source="counterfactual")],
    )


def generate(count: int, steps: int) -> Iterator[Trajectory]:
    for number in range(count):
        yield make_trajectory(number, steps)


def write(path: Path, count: int, steps: int) -> float:
    """Write ``count`` trajectories in batches of 500 (one ``extend`` each); returns the seconds spent in the
    store (serialising and writing), not in building the objects."""
    store = open_store(path)
    spent = 0.0
    batch: list[Trajectory] = []
    for trajectory in generate(count, steps):
        batch.append(trajectory)
        if len(batch) == 500 or trajectory.id == f"bench-{count - 1:06d}":
            start = time.perf_counter()
            store.extend(batch)
            spent += time.perf_counter() - start
            batch = []
    return spent


def stream(path: Path) -> tuple[int, float]:
    """Stream the store back, touching each trajectory; returns (count, seconds)."""
    start = time.perf_counter()
    count = 0
    for trajectory in open_store(path):
        count += len(trajectory.steps) > 0
    return count, time.perf_counter() - start


def stream_peak_mb(path: Path) -> float:
    """Peak traced Python memory (MB) while streaming the whole store."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    for trajectory in open_store(path):
        del trajectory
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def bench(kind: str, folder: Path, count: int, steps: int) -> dict[str, float]:
    big, small = folder / f"big.{kind}", folder / f"small.{kind}"
    seconds = write(big, count, steps)
    write(small, max(count // 10, 1), steps)
    read, read_seconds = stream(big)
    assert read == count, f"{kind}: streamed {read} of {count}"
    size_mb = big.stat().st_size / 1e6
    return {
        "write_per_s": count / seconds, "read_per_s": count / read_seconds, "size_mb": size_mb,
        "write_mb_s": size_mb / seconds, "read_mb_s": size_mb / read_seconds,
        "peak_small": stream_peak_mb(small), "peak_big": stream_peak_mb(big),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="trajectories in the big store")
    parser.add_argument("--steps", type=int, default=30, help="steps per trajectory")
    args = parser.parse_args()
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("jsonl", "db"):
            r = bench(kind, Path(tmp), args.n, args.steps)
            parts.append(
                f"{kind}: write {r['write_per_s']:,.0f}/s ({r['write_mb_s']:.0f} MB/s), "
                f"read {r['read_per_s']:,.0f}/s ({r['read_mb_s']:.0f} MB/s), {r['size_mb']:.0f} MB; "
                f"stream peak {r['peak_small']:.2f} MB at {max(args.n // 10, 1):,} vs {r['peak_big']:.2f} MB at "
                f"{args.n:,} (x{r['peak_big'] / r['peak_small']:.2f})"
            )
    print(f"bench_store {args.n:,} trajectories x {args.steps} steps | " + " | ".join(parts))


if __name__ == "__main__":
    main()
