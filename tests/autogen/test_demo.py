"""``agentracer demo``: a real AutoGen team, offline, scripted models, counterfactual label, one fix round."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from agentracer.schema import Trajectory

from agentracer_plugins.autogen.demo import run_demo
from agentracer_plugins.autogen.demo.team import BUGGY_CODE, FIXED_CODE


def test_demo_finds_the_decisive_step_and_fixes_the_next_run(tmp_path):
    lines: list[str] = []
    result = run_demo(tmp_path / "out", echo=lines.append)
    failed = result.failed
    assert failed.framework == "autogen" and failed.outcome.success is False
    assert [s.agent for s in failed.steps[:3]] == ["user", "planner", "coder"]
    assert failed.steps[2].tool_calls[0].arguments["code"] == BUGGY_CODE
    verdict = failed.label("counterfactual")
    assert verdict == result.verdict
    assert (verdict.agent, verdict.step) == ("coder", 2)
    attempts = verdict.metadata["attempts"]
    assert {(a["step"], a["status"]) for a in attempts} >= {(1, "not_flipped"), (2, "flipped")}
    replays = {r.id: r for r in result.replays}
    assert all(r.replay.parent_id == failed.id for r in replays.values())
    assert replays[verdict.metadata["replay_id"]].outcome.success is True
    corrected = result.corrected
    assert corrected is not None and corrected.outcome.success is True and corrected.replay is None
    assert corrected.steps[2].tool_calls[0].arguments["code"] == FIXED_CODE
    assert result.lite is not None and result.lite.source == "tracer"
    text = "\n".join(lines)
    assert "SCRIPTED" in text and "agent coder, step 2" in text and "CPU tracer verdict" in text
    assert "its replay against the failed run: steps 0-1 same, 2 replaced" in text and "outcome failure -> success" in text
    rows = [Trajectory.model_validate_json(line) for line in (tmp_path / "out" / "trajectories.jsonl").read_text().splitlines()]
    assert [r.id for r in rows] == [failed.id, *replays, corrected.id]
    assert rows[0].label("counterfactual").step == 2
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<html" in html.lower() and "coder" in html and "http://" not in html.replace("http://www.w3.org", "")


def test_demo_command_offline(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "AGENTRACER_API_KEY")}
    env["no_proxy"] = "*"
    proc = subprocess.run([sys.executable, "-m", "agentracer.cli", "demo", "--out", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "decisive error (counterfactual replay): agent coder, step 2" in proc.stdout
    hint = next(line for line in proc.stdout.splitlines() if line.strip().startswith("(agentracer locate "))
    located = subprocess.run([sys.executable, "-m", "agentracer.cli", *hint.strip()[len("(agentracer "):-1].split()],
                             capture_output=True, text=True, timeout=120, env=env)  # the command it names works
    verdict = next(line for line in proc.stdout.splitlines() if line.startswith("CPU tracer verdict"))
    assert located.returncode == 0 and located.stdout.split(": ", 1)[1].startswith(
        verdict.split("): agent ")[1].replace(", step", " at step")), (located.stdout, verdict)
    lines = (tmp_path / "d" / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) >= 3 and any("counterfactual" in json.dumps(json.loads(x)["labels"]) for x in lines)


def test_the_commands_the_demo_prints_are_quoted_for_a_shell(tmp_path):
    """``demo --out "demo out"`` printed ``(agentracer diff demo out/trajectories.jsonl --id ...)``: pasted, a
    shell split the path in two."""
    import shlex

    lines: list[str] = []
    run_demo(tmp_path / "demo out", echo=lines.append)
    hints = [shlex.split(line.strip()[1:-1]) for line in lines if line.strip().startswith("(agentracer ")]
    runs = str(tmp_path / "demo out" / "trajectories.jsonl")
    assert sorted(argv[1] for argv in hints) == ["diff", "locate"]
    assert all(argv[2:4] == [runs, "--id"] and len(argv) == 5 for argv in hints), hints


def test_the_demo_replaces_only_what_it_wrote(tmp_path):
    """`demo -o DIR` replaced a DIR/trajectories.jsonl it had not written (an annotate folder's store)."""
    import pytest
    from agentracer.errors import InputError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "trajectories.jsonl").write_text('{"id": "kept"}\n')
    with pytest.raises(InputError, match="was not written by the demo"):
        run_demo(mine, echo=lambda _line: None)
    assert (mine / "trajectories.jsonl").read_text() == '{"id": "kept"}\n'
    (tmp_path / "odd" / "report.html").mkdir(parents=True)
    with pytest.raises(InputError, match="is a folder"):
        run_demo(tmp_path / "odd", echo=lambda _line: None)
    assert not (tmp_path / "odd" / "trajectories.jsonl").exists()  # (refused before running, nothing written)
    for _ in range(2):  # (its own folder, again and again)
        run_demo(tmp_path / "again", echo=lambda _line: None)
    assert len((tmp_path / "again" / "trajectories.jsonl").read_text().splitlines()) >= 3
    (tmp_path / "again" / ".agentracer-demo").unlink()  # (a folder an earlier version wrote: its runs tell)
    run_demo(tmp_path / "again", echo=lambda _line: None)
    with (tmp_path / "again" / "trajectories.jsonl").open("a") as runs:  # (a run of the user's added: not replaced)
        runs.write(json.dumps({"id": "mine", "metadata": {"team": "my_team"}}) + "\n")
    with pytest.raises(InputError, match="was not written by the demo"):
        run_demo(tmp_path / "again", echo=lambda _line: None)
