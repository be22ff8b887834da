"""Recording cost in instructions: deterministic where wall-clock ratios drift with the machine's load.

Runs a benchmark's scripted team untraced (never instrumented) and traced under valgrind's callgrind, counting only
the measured runs (wrapped in ``functools.reduce``), and prints instructions per run and their ratio: the
50-message AutoGen team of ``bench_autogen.py`` (run with the AutoGen environment's Python) or the 52-step CAMEL
role-play of ``bench_camel.py`` (the CAMEL environment's) or the framework-free team of ``bench_recorder.py``. Needs ``valgrind`` (``apt install valgrind``).
Children run without address-space randomisation (``setarch -R``) where it is available. Valgrind lacks the
CPU's SHA instructions, so request hashing counts several times what it costs natively: read
the ratio as a slight overestimate. Each measured run starts from a fully collected heap (the collection is not
counted), so the count holds the run's own work and its young-generation collections, and not the collector's rare
full collections, whose place among a few runs can move a child's count by millions of instructions per run
(they come natively once per 40-50 AutoGen runs, traced or not). ``--keep-heap`` counts
runs back to back instead, the collector's work between runs included.

    python benchmarks/instructions.py [--framework autogen|camel|simple] [--runs 5] [--children 1] [--breakdown] [--keep-heap]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from baseline import result_dropped

HERE = os.path.dirname(os.path.abspath(__file__))


def _autogen() -> tuple[Callable[[], Any], Callable[[], Any]]:
    import agentracer
    from bench_autogen import build

    traced = agentracer.trace(build)
    return (lambda: asyncio.run(result_dropped(build().run(task="do the task")))), (lambda: traced.run("do the task"))


def _camel() -> tuple[Callable[[], Any], Callable[[], Any]]:
    import agentracer
    from bench_camel import TASK, build, run_untraced

    from agentracer_plugins.camel import with_options

    models: list[Any] = []
    traced = agentracer.trace(lambda: with_options(build(25, 0, models), max_turns=27))
    return (lambda: asyncio.run(run_untraced(build(25, 0, models), 27))), (lambda: traced.run(TASK))


def _simple() -> tuple[Callable[[], Any], Callable[[], Any]]:
    import agentracer
    from bench_recorder import build

    traced = agentracer.trace(build, 0.0)
    return (lambda: asyncio.run(result_dropped(build(0.0).run("do the task")))), (lambda: traced.run("do the task"))


TEAMS = {"autogen": ("AutoGen RoundRobinGroupChat, 50 scripted messages", _autogen),
         "simple": ("framework-free 50-step team of bench_recorder.py, instant model", _simple),
         "camel": ("CAMEL role-play, 52 steps, instant scripted models", _camel)}


MODES = ("untraced", "traced")
DIAGNOSTIC_MODES = ("traced-unsettled", "untraced-gc-off", "traced-gc-off")  # for --breakdown


def _measured(framework: str, mode: str, runs: int, keep_heap: bool) -> None:
    """The child: warm up, then run ``runs`` times inside ``functools.reduce`` (what callgrind counts)."""
    sys.path.insert(0, HERE)
    # nothing is instrumented until the first traced run, and the untraced child never makes one: AutoGen counted
    # ~1.8 M more per untraced run (0.9 %) in a child that had run traced once before ``uninstrument``
    untraced, traced = TEAMS[framework][1]()
    if mode.endswith("-gc-off"):
        gc.disable()
    if mode == "traced-unsettled":  # diagnostic only: the recorded requests are left unredacted and unhashed
        from agentracer.record import Run

        Run._settle_requests = lambda self: None  # type: ignore[method-assign]
    run = untraced if mode.startswith("untraced") else traced
    for _ in range(3):
        run()
    # back to back: one counted stretch of ``runs`` runs; else each run counted alone, from a collected heap
    stretches, runs_each = (1, runs) if keep_heap else (runs, 1)
    for _ in range(stretches):
        if not keep_heap:
            gc.collect()  # not counted: see the module's docstring
        functools.reduce(lambda _a, _b: run(), range(runs_each + 1))


def _count(framework: str, mode: str, runs: int, keep_heap: bool, workdir: str, seed: int = 0) -> int:
    out = os.path.join(workdir, f"callgrind.{mode}")
    # without address-space randomisation: dicts and sets keyed by objects' ids then probe alike in every child,
    # which keeps a mode's count within ~0.2 M instead of ~1 M between children
    no_aslr = ["setarch", "-R"] if shutil.which("setarch") else []
    proc = subprocess.run(
        [*no_aslr, "valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=functools_reduce",
         f"--callgrind-out-file={out}", sys.executable, __file__, "--framework", framework, "--child", mode,
         "--runs", str(runs), *(["--keep-heap"] if keep_heap else [])],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": str(seed)}, check=False,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"valgrind failed for {mode}: {proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", choices=sorted(TEAMS), default="autogen")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per child process")
    parser.add_argument("--children", type=int, default=1,
                        help="child processes per mode, alternating; child i runs with PYTHONHASHSEED=i (where strings "
                             "and ids fall in the interpreter's dicts moves a traced AutoGen run's count by up to "
                             "~0.7 M between seeds: the median over seeds is reported)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also count, as diagnostics, a traced run whose recorded requests are not redacted and "
                             "hashed at its end, and both modes with the garbage collector off: how much of the "
                             "difference is that end-of-run pass, and how much is collection")
    parser.add_argument("--keep-heap", action="store_true",
                        help="no collection before each run: the collector's work carries over between runs as in a "
                             "long-lived process, full collections included where they happen to fall (use many runs)")
    parser.add_argument("--child", choices=MODES + DIAGNOSTIC_MODES)
    args = parser.parse_args()
    if args.child:
        _measured(args.framework, args.child, args.runs, args.keep_heap)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt install valgrind)")
    modes = MODES + DIAGNOSTIC_MODES if args.breakdown else MODES
    counts: dict[str, list[float]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as workdir:
        for child in range(args.children):  # child i runs with hash seed i: see ``--children``
            for mode in counts:
                counts[mode].append(_count(args.framework, mode, args.runs, args.keep_heap, workdir, child) / args.runs)
    per_run = {mode: statistics.median(values) for mode, values in counts.items()}
    untraced, traced = per_run["untraced"], per_run["traced"]
    heap = "runs back to back" if args.keep_heap else "each run from a collected heap"
    print(f"{TEAMS[args.framework][0]}, {args.runs} runs in each of {args.children} child(ren) per mode ({heap}), "
          "under callgrind (medians)")
    for mode, value in per_run.items():
        spread = f"   (range {min(counts[mode]) / 1e6:.1f}-{max(counts[mode]) / 1e6:.1f} M)" if args.children > 1 else ""
        print(f"  {mode:16} {value / 1e6:8.1f} M instructions per run{spread}")
    print(f"  traced/untraced {traced / untraced:.3f}   (+{(traced - untraced) / 1e6:.1f} M per run)")
    if args.breakdown:
        settle = traced - per_run["traced-unsettled"]
        collection = (traced - untraced) - (per_run["traced-gc-off"] - per_run["untraced-gc-off"])
        print(f"  of the difference: end-of-run redaction and hashing of requests {settle / 1e6:.1f} M, "
              f"garbage collection {collection / 1e6:.1f} M")


if __name__ == "__main__":
    main()
