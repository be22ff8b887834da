"""Messages that name the real problem: empty or wrong `eval` data, refine's option, replay's JSON, a team
factory that needs arguments; `validate` on TracerTraj rows and on records without id or steps; a bad task
row in a `trace` batch."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from agentracer.errors import InputError
from agentracer.schema import Step, Trajectory, Verdict
from agentracer.store import open_store
from cli_invoke import run_cli


def one_error(err: str) -> str:
    problems = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(problems) == 1 and "Traceback" not in err, err
    return problems[0]


def labelled(trajectory_id: str) -> Trajectory:
    return Trajectory(id=trajectory_id, task="t", steps=[Step(index=0, agent="a", content="x"),
                                                         Step(index=1, agent="b", content="y")],
                      labels=[Verdict(agent="b", step=1, source="human")])


# ---- 5. messages ------------------------------------------------------------------------------------------

def test_eval_on_a_folder_without_whowhen_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("eval", "whowhen", "--data", str(tmp_path / "empty"), "--method", "random",
                           "-o", str(tmp_path / "r.jsonl"))
    line = one_error(err)
    assert code == 2 and "no Who&When files" in line and str(tmp_path / "empty") in line
    assert "nothing could be evaluated" not in err and not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("suffix", ["jsonl", "db"])
def test_eval_on_a_trajectory_store_says_so_once(tmp_path: Path, suffix: str) -> None:
    store = tmp_path / f"runs.{suffix}"
    open_store(store).extend([labelled("a"), labelled("b")])
    code, _, err = run_cli("eval", "whowhen", "--data", str(store), "--method", "random",
                           "-o", str(tmp_path / "r.jsonl"))
    line = one_error(err)
    assert code == 2 and "trajectory store" in line and "agentracer export tracertraj" in line
    assert "history" not in err and not (tmp_path / "r.jsonl").exists()


def test_refine_names_its_own_model_option(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"id": "1", "task": "t"}\n')
    code, _, err = run_cli("refine", "--team", "json:loads", "--tasks", str(tasks), "--evaluator", "exact",
                           "--tracer", "all-at-once")
    assert code == 2 and "--tracer-model" in err and "--model " not in err and "Traceback" not in err


def test_replay_names_the_option_whose_json_is_bad(tmp_path: Path) -> None:
    code, _, err = run_cli("replay", str(tmp_path / "runs.jsonl"), "--team", "json:loads", "--step", "1",
                           "--action-json", "{x", "-o", str(tmp_path / "out.jsonl"))
    assert code == 2 and "--action-json" in err and "not valid JSON" in err and "Traceback" not in err


# ---- 6. a team factory that needs arguments ---------------------------------------------------------------

TEAMS = textwrap.dedent('''
    def needs_a_name(name):
        return name

    def raises_inside():
        raise TypeError("inner trouble")

    def plays(task, feedback=None):  # (a CAMEL society's shape: built with the task it plays)
        from agentracer.simple import SimpleAgent, SimpleTeam

        return SimpleTeam([SimpleAgent("solo", lambda messages: f"played {task}")], max_turns=1)

    def plays_by_name(task, name):
        return plays(task)
''')


@pytest.fixture()
def teams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "msg_teams.py").write_text(TEAMS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_trace_with_a_factory_that_needs_arguments(teams: Path) -> None:
    for spec in ("json:loads", "msg_teams:needs_a_name"):
        code, _, err = run_cli("trace", "--team", spec, "--task", "t", "-o", str(teams / "out.jsonl"))
        line = one_error(err)
        assert code == 2 and "cannot be called with no arguments" in line and spec in line
    assert not (teams / "out.jsonl").exists()


def test_a_factory_that_needs_only_the_task_is_given_each_runs_task(teams: Path) -> None:
    """The README's CAMEL shape, ``make_society(task)``: the CLI gives it the task (it was refused as needing one)."""
    code, _, err = run_cli("trace", "--team", "msg_teams:plays", "--task", "t1", "-o", str(teams / "out.jsonl"))
    assert code == 0, err
    [run] = list(open_store(teams / "out.jsonl"))
    assert run.steps[-1].content == "played t1"
    code, _, err = run_cli("trace", "--team", "msg_teams:plays_by_name", "--task", "t", "-o", str(teams / "o2.jsonl"))
    line = one_error(err)
    assert code == 2 and "cannot be called with no arguments but the run's task" in line and "'name'" in line


def test_replay_with_a_factory_that_needs_arguments(teams: Path) -> None:
    runs = teams / "runs.jsonl"
    open_store(runs).append(labelled("a"))
    code, _, err = run_cli("replay", str(runs), "--team", "msg_teams:needs_a_name", "--step", "1",
                           "--action", "x", "-o", str(teams / "out.jsonl"))
    assert code == 2 and "cannot be called with no arguments" in one_error(err)


def test_a_type_error_inside_the_factory_stays_the_teams_own(teams: Path) -> None:
    """Not taken for a signature mismatch: it is the factory's own error, reported as such."""
    code, _, err = run_cli("trace", "--team", "msg_teams:raises_inside", "--task", "t", "-o", str(teams / "out.jsonl"))
    assert code == 2 and "raised TypeError" in err and "inner trouble" in err and "no arguments" not in err


# ---- 7. validate ------------------------------------------------------------------------------------------

def test_validate_reads_the_tracertraj_rows_export_wrote(tmp_path: Path) -> None:
    store = tmp_path / "s.jsonl"
    open_store(store).extend([labelled("a"), labelled("b")])
    rows = tmp_path / "rows.jsonl"
    assert run_cli("export", "tracertraj", str(store), "-o", str(rows))[0] == 0
    code, out, err = run_cli("validate", str(rows))
    assert code == 0, err
    assert "validated 2 good record(s) in 1 file(s); 0 problem(s)" in out
    code, out, err = run_cli("show", str(rows), "--id", "b")
    assert code == 0 and "trajectory b" in out, err
    rows.write_text(rows.read_text() + json.dumps({"question_ID": "c", "history": "no"}) + "\n")
    code, out, err = run_cli("validate", str(rows))
    assert code == 2 and f"{rows}:3" in one_error(err) and "history" in err


def test_validate_refuses_records_without_id_or_steps(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join([labelled("good").to_json(), "{}", json.dumps({"id": "x"}),
                               json.dumps({"steps": []})]) + "\n")
    code, out, err = run_cli("validate", str(path))
    problems = err.strip().splitlines()
    assert code == 2 and len(problems) == 3, err
    assert "'id'" in problems[0] and "'steps'" in problems[0] and f"{path}:2" in problems[0]
    assert "'steps'" in problems[1] and "id x" in problems[1]
    assert "'id'" in problems[2] and f"{path}:4" in problems[2]
    with pytest.raises(InputError, match="missing field 'id' and 'steps'"):  # the library's readers too
        list(open_store(path))
    assert "validated 1 good record(s)" in out
    single = tmp_path / "one.json"
    single.write_text("{}")
    code, _, err = run_cli("validate", str(single))
    assert code == 2 and "missing field 'id' and 'steps'" in one_error(err)


def test_show_refuses_a_record_without_steps_as_validate_does(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"id": "x"}) + "\n")
    for args in ((), ("--id", "x")):
        code, _, err = run_cli("show", str(path), *args)
        assert code == 2 and "missing field 'steps'" in one_error(err)


# ---- 8. a bad row in a trace batch ------------------------------------------------------------------------

def test_trace_reports_a_bad_task_row_and_runs_the_others(teams: Path) -> None:
    (teams / "good_team.py").write_text(textwrap.dedent('''
        from agentracer.simple import SimpleAgent, SimpleTeam

        def make_team():
            return SimpleTeam([SimpleAgent("solo", lambda messages: "done")], max_turns=1)
    '''))
    tasks = teams / "tasks.jsonl"
    tasks.write_text('{"task": "one", "id": "q1"}\n{"nottask": 1}\n{oops\n{"task": 3}\n{"task": "two"}\n')
    out = teams / "out.jsonl"
    code, _, err = run_cli("trace", "--team", "good_team:make_team", "--tasks", str(tasks), "-o", str(out))
    problems = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(problems) == 3 and "Traceback" not in err, err
    assert f"{tasks}:2" in problems[0] and f"{tasks}:3" in problems[1] and f"{tasks}:4" in problems[2]
    assert [t.task for t in open_store(out)] == ["one", "two"]
    assert [t.metadata.get("task_id") for t in open_store(out)] == ["q1", None]  # a row's id is kept


def test_train_prepare_names_a_tokenizer_path_that_is_not_there(tmp_path: Path) -> None:
    code, _, err = run_cli("train", "prepare", str(tmp_path), "-o", str(tmp_path / "out"), "--tokenizer",
                           str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere: no tokenizer.json here" in err, err


def test_runs_are_not_appended_to_a_file_that_holds_something_else(teams: Path) -> None:
    """trace, replay, import and collect appended runs to a tasks file, a results file or another program's database
    (which quietly gained a table), exit 0."""
    import sqlite3

    tasks = teams / "tasks.jsonl"
    tasks.write_text('{"task_id": 1, "text": "add two numbers", "test_list": []}\n')
    results = teams / "results.jsonl"
    results.write_text('{"id": "a", "method": "random", "with_gt": false}\n')
    other_db = teams / "app.db"
    with sqlite3.connect(other_db) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    notes = teams / "notes.jsonl"
    notes.write_text("just some text\n")
    unended = teams / "one_task.jsonl"  # (one record written without its newline: no torn store record)
    unended.write_text('{"task": "add two numbers", "ground_truth": "3"}')
    for output, what in ((tasks, "other records (task_id, text, test_list)"), (results, "other records (id, method"),
                         (other_db, "another database (tables users)"), (notes, "lines that are not JSON records"),
                         (unended, "other records (task, ground_truth)")):
        before = output.read_bytes()
        code, _, err = run_cli("trace", "--team", "msg_teams:plays", "--task", "t", "-o", str(output))
        assert code == 2 and what in one_error(err) and "not trajectories" in err, err
        assert output.read_bytes() == before
    for output in (teams / "runs.jsonl", teams / "runs.db", teams / "empty.jsonl"):
        if output.name == "empty.jsonl":
            output.write_text("")
        for _ in range(2):  # (a new store, then the same store again)
            code, _, err = run_cli("trace", "--team", "msg_teams:plays", "--task", "t", "-o", str(output))
            assert code == 0, err
        assert len(open_store(output)) == 2


def test_a_traced_team_is_not_given_a_store_that_holds_something_else(tmp_path: Path) -> None:
    import agentracer
    from agentracer.errors import InputError

    results = tmp_path / "results.jsonl"
    results.write_text('{"id": "a", "method": "random", "with_gt": false}\n')
    with pytest.raises(InputError, match=r"holds other records \(id, method, with_gt\), not trajectories"):
        agentracer.trace(lambda: None, store=results)


def test_a_store_whose_first_record_a_kill_tore_early_is_still_a_store(teams: Path) -> None:
    for torn in (b'{"sche', b'{"sche\x00\n'):  # (torn within its first bytes; then ended by a later writer)
        store = teams / "torn.jsonl"
        store.write_bytes(torn)
        code, _, err = run_cli("trace", "--team", "msg_teams:plays", "--task", "t", "-o", str(store))
        assert code == 0, err
