"""`agentracer show` and `agentracer validate`, in-process."""

from __future__ import annotations

import json
import sqlite3
import sys
import types
from pathlib import Path

import pytest
from agentracer.formats.whowhen import load_whowhen
from agentracer.schema import Step, Trajectory, Verdict
from agentracer.store import open_store
from cli_invoke import run_cli

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"
HAND = DATA / "Hand-Crafted" / "13.json"


def labelled(trajectory_id: str) -> Trajectory:
    return Trajectory(
        id=trajectory_id, task="Sum the list", framework="python",
        steps=[Step(index=0, agent="planner", content="Plan: add them " + "very " * 80 + "carefully"),
               Step(index=1, agent="coder", kind="tool_call", content="CALL add"),
               Step(index=2, agent="checker", content="Looks fine")],
        labels=[Verdict(agent="coder", step=1, reason="added the wrong column", source="counterfactual")],
    )


def test_show_a_whowhen_file_marks_the_human_label() -> None:
    code, out, err = run_cli("show", str(HAND), "--width", "140")
    assert code == 0, err
    data = json.loads(HAND.read_text())
    step = int(data["mistake_step"])
    assert "Hand-Crafted/13" in out and "Orchestrator" in out and "WebSurfer" in out
    assert f"✗ {step}" in out
    assert "mistake (human)" in out and data["mistake_agent"] in out
    assert max(len(line) for line in out.splitlines()) <= 140


@pytest.mark.parametrize("suffix", ["jsonl", "db"])
def test_show_a_store_by_id_with_truncated_content(tmp_path: Path, suffix: str) -> None:
    store = open_store(tmp_path / f"s.{suffix}")
    store.extend([labelled("first"), labelled("second")])
    code, out, err = run_cli("show", str(store.path), "--id", "second", "--width", "100", "--max-chars", "40")
    assert code == 0, err
    assert "second" in out and "first of" not in out
    assert "very very" in out and "carefully" not in out and "…" in out
    assert "✗ 1" in out and "mistake (counterfactual)" in out and "added the wrong column" in out
    assert [line for line in out.splitlines() if "planner" in line]
    code, out, _ = run_cli("show", str(store.path), "--width", "100")
    assert code == 0 and "trajectory first" in out and "first of 2" in out


def test_show_a_replay_names_its_parent_and_marks_the_replaced_step(tmp_path: Path) -> None:
    from agentracer.schema import ReplayInfo, ToolResult

    replay = labelled("child").model_copy(update={"labels": [], "replay": ReplayInfo(parent_id="first", step=1,
                                                                                     action={"tool_results": {"c": "9"}})})
    replay.steps[1] = replay.steps[1].model_copy(update={
        "replaced": True, "kind": "tool_result", "metadata": {"replaced_tool_results": ["c"]},
        "tool_results": [ToolResult(call_id="c", name="add", content="9")]})
    path = tmp_path / "r.jsonl"
    path.write_text(replay.to_json() + "\n")
    code, out, err = run_cli("show", str(path), "--width", "120")
    assert code == 0, err
    assert "replay of" in out and "first, from step 1" in out
    assert "↻ 1" in out and "replaced action (tool results ['c'])" in out and "↻ 0" not in out


def test_show_unknown_id_is_a_clear_error(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.jsonl")
    store.append(labelled("a"))
    code, _, err = run_cli("show", str(store.path), "--id", "zzz")
    assert code == 2 and "zzz" in err and "Traceback" not in err


def test_show_html_calls_the_report_renderer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def render_html(trajectory: Trajectory, verdict: Verdict | None = None) -> str:
        seen["args"] = (trajectory.id, verdict)
        return f"<html>{trajectory.id}</html>"

    module = types.ModuleType("agentracer.report.html")
    module.render_html = render_html
    monkeypatch.setitem(sys.modules, "agentracer.report", types.ModuleType("agentracer.report"))
    monkeypatch.setitem(sys.modules, "agentracer.report.html", module)
    code, _, err = run_cli("show", str(HAND), "--html", str(tmp_path / "r" / "report.html"))
    assert code == 0, err
    assert (tmp_path / "r" / "report.html").read_text() == "<html>Hand-Crafted/13</html>"
    assert seen["args"] == ("Hand-Crafted/13", None)


def test_show_html_without_the_report_module_is_a_clear_error(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "agentracer.report.html", None)  # import now fails
    monkeypatch.setitem(sys.modules, "agentracer.report", None)
    code, _, err = run_cli("show", str(HAND), "--html", str(tmp_path / "report.html"))
    assert code == 2 and "agentracer.report" in err and "Traceback" not in err
    assert not (tmp_path / "report.html").exists()


def test_validate_good_files(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    store.extend([labelled("a"), labelled("b")])
    single = tmp_path / "one.json"
    single.write_text(labelled("c").to_json())
    code, out, err = run_cli("validate", str(store.path), str(single), str(HAND))
    assert code == 0, err
    assert "validated 4 good record(s) in 3 file(s); 0 problem(s)" in out


def test_validate_calls_a_file_with_no_record_a_problem(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    open_store(tmp_path / "good.jsonl").extend([labelled("a")])
    code, out, err = run_cli("validate", str(tmp_path / "good.jsonl"), str(tmp_path / "empty.jsonl"))
    assert code == 2 and "empty.jsonl: no record in the file" in err and "good.jsonl" not in err
    assert "validated 1 good record(s) in 2 file(s); 1 problem(s)" in out


def test_validate_reports_each_problem_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    good = labelled("a").to_json()
    wrong_version = json.loads(labelled("b").to_json()) | {"schema_version": "7.0"}
    bad_step = json.loads(labelled("c").to_json())
    bad_step["labels"][0]["step"] = 99
    lines = [good, json.dumps(wrong_version), "{oops", json.dumps(bad_step), good, labelled("d").to_json()[:50]]
    path.write_text("\n".join(lines))
    code, out, err = run_cli("validate", str(path), str(tmp_path / "missing.jsonl"))
    assert code == 2
    problems = err.strip().splitlines()
    assert len(problems) == 6 and all(p.startswith("error: ") for p in problems)
    assert f"{path}:2" in problems[0] and "schema_version" in problems[0] and "id b" in problems[0]
    assert f"{path}:3" in problems[1] and "JSON" in problems[1]
    assert f"{path}:4" in problems[2] and "labels" in problems[2]
    assert problems[3] == f"error: {path}:5: id 'a' repeats the record at {path}:1"  # lines, not good-record counts
    assert f"{path}:6" in problems[4] and "incomplete last line" in problems[4]
    assert "missing.jsonl" in problems[5]
    assert "validated 1 good record(s) in 2 file(s); 6 problem(s)" in out  # (the repeated id is not good)


def test_validate_a_corrupt_database_and_a_bad_whowhen_file(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    db.write_bytes(b"not sqlite at all" * 20)
    ww = tmp_path / "ww.json"
    ww.write_text('{"history": [{"content": "x", "role": "a"}], "mistake_agent": "a", "mistake_step": "4"}')
    code, out, err = run_cli("validate", str(db), str(ww))
    assert code == 2 and "Traceback" not in err
    assert "x.db" in err and "mistake_step" in err and "ww.json" in err
    assert "2 problem(s)" in out


def test_validate_rows_hand_edited_into_sqlite(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    store.append(labelled("a"))
    with sqlite3.connect(store.path) as db:
        db.execute("INSERT INTO trajectories (id, data) VALUES ('x', '{\"id\": \"x\", \"steps\": 3}')")
    code, _, err = run_cli("validate", str(store.path))
    assert code == 2 and "#2" in err and "steps" in err


def test_whowhen_file_loads_with_its_subset_path() -> None:
    assert load_whowhen(HAND, root=HAND.parent).id == "Hand-Crafted/13"


def test_show_and_diff_never_write_their_page_over_the_runs_they_read(tmp_path: Path) -> None:
    store = tmp_path / "runs.jsonl"
    open_store(store).append(labelled("a"))
    before = store.read_bytes()
    for command in (["show", str(store)], ["diff", str(store), str(store)]):
        code, _, err = run_cli(*command, "--html", str(store))
        assert code == 2 and "the page would replace the runs it shows" in err, err
        for name in ("other.jsonl", "notes.txt"):
            code, _, err = run_cli(*command, "--html", str(tmp_path / name))
            assert code == 2 and "give it a .html name" in err
    assert store.read_bytes() == before and not (tmp_path / "other.jsonl").exists()
    assert not (tmp_path / "notes.txt").exists()


def test_a_file_that_is_not_a_store_gives_twenty_lines_then_a_count_not_a_line_per_line(tmp_path: Path) -> None:
    page = tmp_path / "page.jsonl"
    page.write_text("<html>\n" * 60)
    code, out, err = run_cli("validate", str(page))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 21 and lines[-1].endswith("more problems, not shown (each is counted)")
    assert "60 problem(s)" in out + err


def test_show_prints_a_runs_text_as_written_never_as_markup_or_terminal_codes(tmp_path: Path) -> None:
    run = Trajectory(id="run-[/x]", task="Return the sum of [x for x in nums if x > 0]",
                     steps=[Step(index=0, agent="a[b]", content="\x1b[31mRED\x1b[0m \x1b]0;pwned\x07 [/opt]")])
    run.outcome.success, run.outcome.error = False, "ImportError: cannot load [/opt/app/plugins]"
    store = tmp_path / "s.jsonl"
    open_store(store).append(run)
    code, out, err = run_cli("show", str(store), "--width", "200")
    assert code == 0 and "Traceback" not in err, err
    assert "Return the sum of [x for x in nums if x > 0]" in out and "cannot load [/opt/app/plugins]" in out
    assert "run-[/x]" in out and "a[b]" in out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[31mRED\\x1b[0m \\x1b]0;pwned\\x07 [/opt]" in out


def test_show_html_replaces_an_earlier_page_whole_or_not_at_all(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "s.jsonl"
    open_store(store).append(labelled("r1"))
    page = tmp_path / "report.html"
    page.write_text("<html>the earlier report</html>")

    def full_disk(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    code, _, err = run_cli("show", str(store), "--html", str(page))
    monkeypatch.undo()
    assert code == 2 and f"{page}: cannot write the page (No space left on device)" in err
    assert page.read_text() == "<html>the earlier report</html>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "s.jsonl"]


def test_a_record_of_a_later_minor_version_is_shown_with_one_warning_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    record = json.loads(labelled("a").to_json()) | {"schema_version": "2.4", "cost_usd": 0.2}
    path = tmp_path / "newer.jsonl"
    path.write_text(json.dumps(record) + "\n")
    proc = subprocess.run([sys.executable, "-m", "agentracer.cli", "validate", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warned) == 1 and warned[0].startswith("warning: ") and "schema 2.4" in warned[0] and "cost_usd" in warned[0]


def test_the_cli_leaves_the_callers_warning_format_as_it_found_it() -> None:
    import warnings

    from agentracer.cli import main

    before = warnings.formatwarning
    try:
        main(["--version"])
    except SystemExit:
        pass
    assert warnings.formatwarning is before
