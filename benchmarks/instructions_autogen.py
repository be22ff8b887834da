"""AutoGen recording cost in instructions: deterministic where wall-clock ratios drift with the machine's load.

Runs the scripted 50-message team of ``bench_autogen.py`` untraced and traced under valgrind's callgrind,
counting only the measured runs (wrapped in ``functools.reduce``), and prints instructions per run and their
ratio. Needs ``valgrind`` (``apt install valgrind``). Valgrind lacks the CPU's SHA instructions, so request
hashing counts several times what it costs natively: read the ratio as a slight overestimate.

    python benchmarks/instructions_autogen.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def _measured(mode: str, runs: int) -> None:
    """The child: warm up, then run ``runs`` times inside ``functools.reduce`` (what callgrind counts)."""
    sys.path.insert(0, HERE)
    import agentracer
    from bench_autogen import build

    traced = agentracer.trace(build)
    traced.run("warm up")
    if mode == "untraced":
        agentracer.uninstrument()
        run = lambda: asyncio.run(build().run(task="do the task"))  # noqa: E731
    else:
        run = lambda: traced.run("do the task")  # noqa: E731
    for _ in range(2):
        run()
    functools.reduce(lambda _a, _b: run(), range(runs + 1))


def _count(mode: str, runs: int, workdir: str) -> int:
    out = os.path.join(workdir, f"callgrind.{mode}")
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=functools_reduce",
         f"--callgrind-out-file={out}", sys.executable, __file__, "--child", mode, "--runs", str(runs)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=False,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"valgrind failed for {mode}: {proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=("traced", "untraced"))
    args = parser.parse_args()
    if args.child:
        _measured(args.child, args.runs)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt install valgrind)")
    with tempfile.TemporaryDirectory() as workdir:
        untraced, traced = (_count(mode, args.runs, workdir) / args.runs for mode in ("untraced", "traced"))
    print(f"AutoGen RoundRobinGroupChat, 50 scripted messages, {args.runs} runs each under callgrind")
    print(f"  untraced {untraced / 1e6:8.1f} M instructions per run")
    print(f"  traced   {traced / 1e6:8.1f} M instructions per run   traced/untraced {traced / untraced:.3f}"
          f"   (+{(traced - untraced) / 1e6:.1f} M per run)")


if __name__ == "__main__":
    main()
