"""Record size: a run's JSON with each request whole (``model_dump_json``) vs packed (schema 2.0, what stores write).

Builds runs whose every model call re-sends the conversation so far, as a team's agents do, with messages of
``--chars`` characters, for several lengths; prints the bytes of each form, their ratio, the time to write the run
as JSON and read it back in each form, and to append it to a JSONL store and get it back (medians of ``--repeat``).

    .venv/bin/python benchmarks/bench_record_size.py [--steps 25 50 100 200] [--chars 400] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from agentracer.schema import ModelCall, Step, Trajectory
from agentracer.store import open_store


def conversation_run(steps: int, chars: int) -> Trajectory:
    """A run of ``steps`` messages by three agents, each made by a model call sent the whole conversation."""
    agents = ["planner", "coder", "reviewer"]
    conversation = [{"role": "system", "content": "You are a careful team. " * (chars // 24)},
                    {"role": "user", "content": "Write a function that sums the squares of even numbers."}]
    made = []
    for i in range(steps):
        text = f"step {i}: " + "I think the next thing to do is to check the edge cases. " * (chars // 56)
        call = ModelCall(agent=agents[i % 3], call_index=i // 3, step=i, model="qwen",
                         request={"messages": list(conversation), "temperature": 0.0}, response=text,
                         request_hash=f"{i:032x}")
        made.append(Step(index=i, agent=agents[i % 3], content=text, model_calls=[call]))
        conversation.append({"role": "assistant", "name": agents[i % 3], "content": text})
    return Trajectory(id=f"size-{steps}", task="sum of squares of evens", framework="python", steps=made)


def _json_round_trip(run: Trajectory, repeat: int, packed: bool) -> float:
    times = []
    for _ in range(repeat):
        begun = time.perf_counter()
        Trajectory.model_validate_json(run.to_json() if packed else run.model_dump_json())
        times.append(time.perf_counter() - begun)
    return statistics.median(times)


def _store_round_trip(run: Trajectory, repeat: int) -> tuple[float, float]:
    writes, reads = [], []
    with tempfile.TemporaryDirectory() as folder:
        for k in range(repeat):
            store = open_store(Path(folder) / f"runs{k}.jsonl")
            begun = time.perf_counter()
            store.append(run)
            writes.append(time.perf_counter() - begun)
            begun = time.perf_counter()
            assert open_store(Path(folder) / f"runs{k}.jsonl").get(run.id) == run
            reads.append(time.perf_counter() - begun)
    return statistics.median(writes), statistics.median(reads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--chars", type=int, default=400, help="characters per message")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'steps':>6} {'whole KB':>9} {'packed KB':>9} {'whole/packed':>12} {'JSON whole ms':>13} "
          f"{'JSON packed ms':>14} {'store write ms':>14} {'store read ms':>13}")
    for steps in args.steps:
        run = conversation_run(steps, args.chars)
        whole, packed = len(run.model_dump_json().encode()), len(run.to_json().encode())
        whole_s, packed_s = (_json_round_trip(run, args.repeat, packed) for packed in (False, True))
        write_s, read_s = _store_round_trip(run, args.repeat)
        print(f"{steps:>6} {whole / 1e3:>9.0f} {packed / 1e3:>9.0f} {whole / packed:>12.1f} {whole_s * 1e3:>13.1f} "
              f"{packed_s * 1e3:>14.1f} {write_s * 1e3:>14.1f} {read_s * 1e3:>13.1f}")


if __name__ == "__main__":
    main()
