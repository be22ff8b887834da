"""`agentracer trace` and `agentracer replay` on a framework-free team defined in a user module."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

TEAM_MODULE = textwrap.dedent('''
    from agentracer.simple import SimpleAgent, SimpleTeam

    def make_team():
        def model(name):
            return lambda messages: f"{name} saw {len(messages)}: {messages[-1]['content'][:20]}"
        return SimpleTeam([SimpleAgent("planner", model("planner")), SimpleAgent("coder", model("coder"))], max_turns=4)
''')


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentracer.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_trace_then_replay_from_the_command_line(tmp_path):
    (tmp_path / "myteam.py").write_text(TEAM_MODULE)
    done = cli("trace", "--team", "myteam:make_team", "--task", "sum 2 3", "-o", "runs.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    original = json.loads((tmp_path / "runs.jsonl").read_text())
    assert [s["agent"] for s in original["steps"]] == ["user", "planner", "coder", "planner", "coder"]
    done = cli("replay", "runs.jsonl", "--team", "myteam:make_team", "--step", "2", "--action", "FIXED",
               "-o", "replays.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 served" not in done.stdout and "1 served, 2 live" in done.stdout
    assert "against the recording: steps 0-1 same, 2 replaced, 3-4 changed" in done.stdout
    replayed = json.loads((tmp_path / "replays.jsonl").read_text())
    assert replayed["steps"][2]["content"] == "FIXED" and replayed["replay"]["parent_id"] == original["id"]
    assert replayed["steps"][1]["content"] == original["steps"][1]["content"]


def test_the_diff_command_replay_prints_runs_as_pasted_into_a_shell(tmp_path):
    """``(agentracer diff my runs/replays.jsonl ...)`` was printed unquoted: pasted, a shell split the paths."""
    import shlex

    (tmp_path / "myteam.py").write_text(TEAM_MODULE)
    (tmp_path / "my runs").mkdir()
    done = cli("trace", "--team", "myteam:make_team", "--task", "sum 2 3", "-o", "my runs/runs.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = cli("replay", "my runs/runs.jsonl", "--team", "myteam:make_team", "--step", "2", "--action", "FIXED",
               "-o", "my runs/replays.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    hint = done.stdout.strip().splitlines()[-1].rsplit(" (", 1)[1].removesuffix(")")
    argv = shlex.split(hint)
    assert argv[:4] == ["agentracer", "diff", "my runs/replays.jsonl", "my runs/runs.jsonl"], hint
    diffed = cli(*argv[1:], cwd=tmp_path)  # (the command it names works)
    assert diffed.returncode == 0 and "2 replaced" in diffed.stdout, diffed.stderr


def test_replay_errors_are_one_line_with_exit_2_and_write_nothing(tmp_path):
    (tmp_path / "myteam.py").write_text(TEAM_MODULE)
    cli("trace", "--team", "myteam:make_team", "--task", "t", "-o", "runs.jsonl", cwd=tmp_path)
    done = cli("replay", "runs.jsonl", "--team", "myteam:make_team", "--step", "9", "--action", "x",
               "-o", "out.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "step 9 is out of range" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.jsonl").exists()
    done = cli("replay", "runs.jsonl", "--team", "nosuchmodule:f", "--step", "1", "--action", "x",
               "-o", "out.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "cannot import 'nosuchmodule'" in done.stderr
    for command in (["trace", "--team", "myteam:make_team", "--task", "t"],
                    ["replay", "runs.jsonl", "--team", "myteam:make_team", "--step", "1", "--action", "x"]):
        done = cli(*command, "-o", "out.txt", cwd=tmp_path)  # open_store would take any other name as JSONL
        assert done.returncode == 2 and "must be a .jsonl or .db store" in done.stderr
        assert not (tmp_path / "out.txt").exists()


def test_a_factory_that_raises_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "broken.py").write_text("def make_team():\n    raise ValueError('no model configured')\n")
    done = cli("trace", "--team", "broken:make_team", "--task", "t", "-o", "runs.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the team factory make_team raised ValueError: no model configured" in done.stderr


def test_a_replayed_team_that_raises_is_saved_with_its_error(tmp_path):
    (tmp_path / "myteam.py").write_text(TEAM_MODULE + textwrap.dedent('''
        def make_fragile_team():
            def coder(messages):
                if "BREAK" in messages[-1]["content"]:
                    raise RuntimeError("the coder crashed")
                return "coded"
            return SimpleTeam([SimpleAgent("planner", lambda m: "plan"), SimpleAgent("coder", coder)], max_turns=4)
    '''))
    cli("trace", "--team", "myteam:make_fragile_team", "--task", "t", "--evaluator", "exact", "-o", "runs.jsonl",
        cwd=tmp_path)
    done = cli("replay", "runs.jsonl", "--team", "myteam:make_fragile_team", "--step", "1", "--action", "BREAK",
               "-o", "out.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "the replayed team raised" in done.stderr and "the coder crashed" in done.stderr
    assert "judged" not in done.stderr  # (a team that raised is judged by nothing: its run failed)
    replayed = json.loads((tmp_path / "out.jsonl").read_text())
    assert replayed["outcome"]["success"] is False and "the coder crashed" in replayed["outcome"]["error"]
    assert replayed["steps"][1]["content"] == "BREAK" and replayed["steps"][1]["replaced"]


ECHO_TEAM = textwrap.dedent('''
    from agentracer.simple import SimpleAgent, SimpleTeam

    def make_team():
        return SimpleTeam([SimpleAgent("solver", lambda messages: "FINAL ANSWER: " + messages[-1]["content"])],
                          max_turns=1)

    def broken_judge(trajectory):
        raise KeyError("no answer key")
''')


def test_trace_and_replay_judge_runs_with_an_evaluator_and_keep_a_run_whose_evaluator_raised(tmp_path):
    (tmp_path / "echo.py").write_text(ECHO_TEAM)
    (tmp_path / "tasks.jsonl").write_text(json.dumps({"task": "42", "ground_truth": "42"}) + "\n"
                                          + json.dumps({"task": "41", "ground_truth": "42"}) + "\n")
    done = cli("trace", "--team", "echo:make_team", "--tasks", "tasks.jsonl", "--evaluator", "exact",
               "-o", "runs.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [r["outcome"]["success"] for r in runs] == [True, False]
    assert "success=True" in done.stdout and "success=False" in done.stdout

    done = cli("replay", "runs.jsonl", "--id", runs[1]["id"], "--team", "echo:make_team", "--step", "1",
               "--action", "FINAL ANSWER: 42", "--evaluator", "exact", "-o", "fixed.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "fixed.jsonl").read_text())["outcome"]["success"] is True
    # without --evaluator the replay is judged as its recording was (it said "failure -> unknown")
    assert all(r["metadata"]["evaluator"] == "exact" for r in runs)
    done = cli("replay", "runs.jsonl", "--id", runs[1]["id"], "--team", "echo:make_team", "--step", "1",
               "--action", "FINAL ANSWER: 42", "-o", "again.jsonl", cwd=tmp_path)
    assert done.returncode == 0 and "the recording's evaluator 'exact'" in done.stderr, done.stderr
    assert json.loads((tmp_path / "again.jsonl").read_text())["outcome"]["success"] is True
    assert "failure -> success" in done.stdout
    done = cli("replay", "runs.jsonl", "--id", runs[1]["id"], "--team", "echo:make_team", "--step", "99",
               "--action", "x", "-o", "refused.jsonl", cwd=tmp_path)  # refused: nothing was judged, nothing said of it
    assert done.returncode == 2 and "out of range" in done.stderr and "evaluator" not in done.stderr, done.stderr

    done = cli("trace", "--team", "echo:make_team", "--task", "7", "--evaluator", "echo:broken_judge",
               "-o", "judged.jsonl", cwd=tmp_path)
    assert done.returncode == 0 and "the evaluator raised KeyError" in done.stderr
    kept = json.loads((tmp_path / "judged.jsonl").read_text())
    assert kept["outcome"]["success"] is None and "no answer key" in kept["metadata"]["evaluation_error"]
    done = cli("trace", "--team", "echo:make_team", "--task", "7", "--evaluator", "nosuch", "-o", "x.jsonl",
               cwd=tmp_path)
    assert done.returncode == 2 and "unknown evaluator 'nosuch'" in done.stderr and not (tmp_path / "x.jsonl").exists()


def test_trace_and_refine_never_append_runs_to_their_tasks_file_and_an_empty_one_is_an_error(tmp_path):
    (tmp_path / "echo.py").write_text(ECHO_TEAM)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "t1", "task": "42", "ground_truth": "42"}) + "\n")
    before = tasks.read_bytes()
    done = cli("trace", "--team", "echo:make_team", "--tasks", "tasks.jsonl", "-o", "tasks.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "the runs would be appended to the tasks" in done.stderr
    done = cli("refine", "--team", "echo:make_team", "--tasks", "tasks.jsonl", "--evaluator", "exact",
               "-o", "tasks.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "the attempts would be appended to the tasks" in done.stderr
    assert tasks.read_bytes() == before
    (tmp_path / "empty.jsonl").write_text("\n")
    done = cli("trace", "--team", "echo:make_team", "--tasks", "empty.jsonl", "-o", "runs.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "empty.jsonl: has no tasks" in done.stderr
    assert not (tmp_path / "runs.jsonl").exists()


def test_trace_names_the_line_of_a_tasks_file_that_is_not_utf8_and_reads_one_with_a_bom(tmp_path):
    (tmp_path / "echo.py").write_text(ECHO_TEAM)
    (tmp_path / "tasks.jsonl").write_bytes(b'{"task": "42"}\n{"task": "\xff"}\n')
    done = cli("trace", "--team", "echo:make_team", "--tasks", "tasks.jsonl", "-o", "runs.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "tasks.jsonl:2: not UTF-8 text" in done.stderr and "Traceback" not in done.stderr
    assert [json.loads(line)["task"] for line in (tmp_path / "runs.jsonl").read_text().splitlines()] == ["42"]
    (tmp_path / "tasks.jsonl").write_bytes(b'\xef\xbb\xbf{"task": "42"}\n')
    done = cli("trace", "--team", "echo:make_team", "--tasks", "tasks.jsonl", "-o", "runs.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_trace_reads_mbpp_rows_as_annotate_does(tmp_path):
    (tmp_path / "echo.py").write_text(ECHO_TEAM)
    row = json.loads((Path(__file__).resolve().parents[2] / "data" / "mbpp" / "mbpp_test.jsonl").read_text()
                     .splitlines()[0])
    (tmp_path / "tasks.jsonl").write_text(json.dumps(row) + "\n")
    done = cli("trace", "--team", "echo:make_team", "--tasks", "tasks.jsonl", "-o", "runs.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [run] = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert run["task"].startswith(row["text"]) and row["test_list"][0] in run["task"]
    assert run["ground_truth"]["tests"] == row["test_list"] and run["metadata"]["task_id"] == str(row["task_id"])


def test_trace_reports_a_bad_mbpp_row_by_its_line_and_runs_the_others(tmp_path):
    (tmp_path / "echo.py").write_text(ECHO_TEAM)
    good = {"task_id": 1, "text": "Write add.", "test_list": ["assert add(1, 2) == 3"]}
    bad = [{**good, "task_id": 2, "test_list": 5}, {**good, "task_id": 3, "text": 5}, {**good, "task_id": 4, "text": None},
           {**good, "task_id": 5, "test_list": "abc"}, {**good, "task_id": True}, {"task": "t", "id": [1]}]
    rows = [good, *bad, {**good, "task_id": 9}]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    done = cli("trace", "--team", "echo:make_team", "--tasks", "tasks.jsonl", "-o", "runs.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    for line in range(2, 8):
        assert f"tasks.jsonl:{line}:" in done.stderr
    stored = [json.loads(line)["metadata"]["task_id"] for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert stored == ["1", "9"]


PICKY_TEAM = ECHO_TEAM + textwrap.dedent('''
    import agentracer

    def picky(task):
        if task == "bad":
            raise ValueError("cannot build for bad")
        return make_team()

    own_store = agentracer.trace(make_team, store="own.jsonl")
''')


def test_trace_reports_a_task_its_factory_refuses_and_runs_the_others(tmp_path):
    (tmp_path / "picky.py").write_text(PICKY_TEAM)
    (tmp_path / "tasks.jsonl").write_text('{"task": "ok1"}\n{"task": "bad"}\n{"task": "ok2"}\n')
    done = cli("trace", "--team", "picky:picky", "--tasks", "tasks.jsonl", "-o", "runs.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "tasks.jsonl:2:" in done.stderr and "cannot build for bad" in done.stderr
    assert [json.loads(line)["task"] for line in (tmp_path / "runs.jsonl").read_text().splitlines()] == ["ok1", "ok2"]


def test_trace_into_the_teams_own_store_appends_each_run_once(tmp_path):
    (tmp_path / "picky.py").write_text(PICKY_TEAM)
    (tmp_path / "tasks.jsonl").write_text('{"task": "one"}\n{"task": "two"}\n')
    done = cli("trace", "--team", "picky:own_store", "--tasks", "tasks.jsonl", "-o", "own.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["task"] for line in (tmp_path / "own.jsonl").read_text().splitlines()] == ["one", "two"]
