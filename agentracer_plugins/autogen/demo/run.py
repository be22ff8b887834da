"""The demo's script: run, fail, find the decisive step, compare with the CPU tracer, correct, report."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import agentracer
from agentracer.annotate import CounterfactualSearch, LocalReplayer, label_failed
from agentracer.evaluate.outcome import CodeTests
from agentracer.models import ScriptedModel
from agentracer.refine import Refiner
from agentracer.schema import Trajectory, Verdict

from .team import FIXED_CODE, load_task, make_team, task_text

SCRIPTED_NOTE = ("Models: planner, coder, reviewer (AutoGen ScriptedClient) and the analyzer are SCRIPTED - "
                 "no language model, no API key, no GPU, no network. The coder's scripted mistake is an "
                 "off-by-one loop bound; the CPU tracer is agentracer's own small trained model.")


def _analyzer(messages: Sequence[dict[str, Any]]) -> str:
    """The scripted analyzer: a reworded plan for the planner, the fixed loop bound for the coder's code."""
    user = messages[-1]["content"]
    target = user.split(" to correct - agent ", 1)[1] if " to correct - agent " in user else ""
    if target.startswith("planner"):
        return ("<correction>Plan: iterate i from 1 through n, add (2*i)**5 to a running total and return it. "
                "Coder, please implement even_Power_Sum(n) and run it once.</correction>")
    if target.startswith("coder") and '"tool_calls"' in target:
        call = {"tool_calls": [{"name": "run_python", "arguments": {"code": FIXED_CODE}}]}
        return f"The loop stops one short of n.\n<correction>{json.dumps(call)}</correction>"
    return "<correction>UNCHANGED</correction>"


def _lite_verdict(trajectory: Trajectory) -> tuple[Verdict | None, str]:
    try:
        from agentracer.tracer.lite import LiteTracer

        return LiteTracer().locate(trajectory), ""
    except Exception as exc:  # the CPU tracer is optional here: say why it is missing
        return None, f"{type(exc).__name__}: {exc}"


@dataclass
class DemoResult:
    """What the demo found and wrote."""

    failed: Trajectory
    verdict: Verdict | None
    lite: Verdict | None
    replays: list[Trajectory]
    corrected: Trajectory | None
    out_dir: Path | None
    seconds: float
    lines: list[str] = field(default_factory=list)


def run_demo(out_dir: str | Path | None = "agentracer-demo", echo: Callable[[str], Any] = print) -> DemoResult:
    """Run the whole demo; write ``report.html`` and ``trajectories.jsonl`` under ``out_dir`` (None: no files)."""
    started = time.perf_counter()
    lines: list[str] = []
    if out_dir is not None:
        check_out_dir(Path(out_dir))

    def say(text: str = "") -> None:
        lines.append(text)
        echo(text)

    row = load_task()
    task = task_text(row)
    truth = {"tests": row["test_list"], "answer": row["code"]}
    evaluator = CodeTests(row["test_list"], timeout=10, memory_mb=256)
    team = agentracer.trace(make_team, name=TEAM_NAME)
    say("agentracer demo: a real AutoGen RoundRobinGroupChat (planner, coder with a Python tool, reviewer)")
    say(f"on MBPP task {row['task_id']}: {row['text']}")
    say(SCRIPTED_NOTE)
    say()

    failed = team.run(task, ground_truth=truth, metadata={"title": "1. the failed run (counterfactual label)"})
    agentracer.team.apply_evaluation(failed, evaluator)
    say(f"run: {len(failed.steps)} steps, asserts {'PASS' if failed.outcome.success else 'FAIL'}")
    say("  " + (failed.outcome.feedback or "").replace("\n", "\n  "))

    search = CounterfactualSearch(LocalReplayer(team, evaluator), ScriptedModel(_analyzer, name="scripted-analyzer"),
                                  k=2)
    result = search.search(failed)
    label_failed(failed, result)
    verdict = result.verdict
    say()
    say(f"counterfactual replay: {len(result.replays)} replays tried, {result.stopped}")
    for attempt in sorted(result.attempts, key=lambda a: a.step):
        outcome = {True: "PASS", False: "FAIL", None: "-"}[attempt.success]
        say(f"  step {attempt.step} ({attempt.agent}): {attempt.status}, asserts {outcome}")
    for index, replay in enumerate(result.replays, start=2):
        replay.metadata["title"] = f"{index}. replay from step {replay.replay.step} ({replay.outcome.success and 'PASS' or 'FAIL'})"

    lite, why = _lite_verdict(failed)
    say()
    if verdict is not None:
        say(f"decisive error (counterfactual replay): agent {verdict.agent}, step {verdict.step}")
        flipped = next((r for r in result.replays if r.id == verdict.metadata.get("replay_id")), None)
        if flipped is not None:
            say(f"  its replay against the failed run: {agentracer.compare(failed, flipped).summary()}")
            if out_dir is not None:
                say(f"  ({_command('diff', out_dir, flipped.id)})")
    else:
        say("decisive error: not found")
    if lite is not None:
        say(f"CPU tracer verdict (no replay, {lite.metadata.get('method', 'lite')}): agent {lite.agent}, "
            f"step {lite.step}")
        if out_dir is not None:
            say(f"  ({_command('locate', out_dir, failed.id)})")
    else:
        say(f"CPU tracer verdict: unavailable ({why})")

    corrected = None
    if verdict is not None:
        refiner = Refiner(make_team, evaluator, lambda trajectory: verdict)
        refined = refiner.run(task, ground_truth=truth, rounds=1, first=failed)
        corrected = refined.final if refined.final is not failed else None
        if corrected is not None:
            corrected.metadata["title"] = f"{len(result.replays) + 2}. corrected run after feedback to {verdict.agent}"
        say()
        say(f"self-correction: feedback to {verdict.agent} naming step {verdict.step}; next run asserts "
            f"{'PASS' if refined.success else 'FAIL'}")
        if corrected is not None and corrected.outcome.feedback:
            say(f"  {corrected.outcome.feedback}")

    written = Path(out_dir) if out_dir is not None else None
    if written is not None:
        _write(written, failed, verdict, lite, result.replays, corrected)
        say()
        say(f"wrote {written / 'report.html'} and {written / 'trajectories.jsonl'}")
    seconds = time.perf_counter() - started
    say(f"done in {seconds:.1f}s")
    return DemoResult(failed, verdict, lite, result.replays, corrected, written, seconds, lines)


def _command(name: str, out_dir: str | Path, trajectory_id: str) -> str:
    """A follow-up command on the demo's runs, quoted as a shell reads it back (a folder named with a space)."""
    return shlex.join(["agentracer", name, str(Path(out_dir) / "trajectories.jsonl"), "--id", trajectory_id])


TEAM_NAME = "demo: planner + coder + reviewer"
_OUTPUTS = ("trajectories.jsonl", "report.html")
_MARK = ".agentracer-demo"  # (beside what a demo wrote: a later demo may replace it)


def check_out_dir(out: Path) -> None:
    """Refuse, before the demo runs, a folder whose outputs' names are taken by something the demo did not write
    (another command's store, a folder): the demo replaces only its own files."""
    from agentracer.errors import InputError

    if out.exists() and not out.is_dir():
        raise InputError("is a file: give the demo a folder", where=str(out))
    runs = out / _OUTPUTS[0]
    demos = not runs.exists() or _demo_runs_only(runs)  # (the runs are looked at whatever marks the folder)
    for name in _OUTPUTS:
        path = out / name
        if path.is_dir():
            raise InputError("is a folder: give the demo another output folder", where=str(path))
        ours = demos and (name == _OUTPUTS[0] or (out / _MARK).is_file() or runs.exists())
        if path.exists() and not ours:
            raise InputError("was not written by the demo: give the demo another output folder (it would replace "
                             "the file)", where=str(path))


def _demo_runs_only(path: Path) -> bool:
    """Whether a trajectories file holds the runs of a demo only (one written before the demo marked its folder)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        teams = {TEAM_NAME, make_team.__qualname__}  # (the refined run's team is the factory's own)
        return bool(lines) and all(json.loads(line)["metadata"]["team"] in teams for line in lines if line.strip())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write(out: Path, failed: Trajectory, verdict: Verdict | None, lite: Verdict | None,
           replays: list[Trajectory], corrected: Trajectory | None) -> None:
    from agentracer.atomic import write_text_replacing
    from agentracer.report.html import render_report

    out.mkdir(parents=True, exist_ok=True)
    (out / _MARK).write_text("written by `agentracer demo`, which may replace trajectories.jsonl and report.html\n")
    runs = [failed, *replays, *([corrected] if corrected is not None else [])]
    write_text_replacing(out / "trajectories.jsonl", "".join(t.to_json() + "\n" for t in runs))
    items: list[Any] = [(failed, verdict)]
    if lite is not None:
        beside = failed.model_copy(deep=True)
        beside.metadata["title"] = "1b. the failed run (CPU tracer verdict)"
        items.append((beside, lite))
    items += [(r, None) for r in runs[1:]]
    write_text_replacing(out / "report.html", render_report(items, title="agentracer demo"))
