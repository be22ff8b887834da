"""Outputs never destroy inputs: exports and imports refuse their own source, exports replace their output only
when they wrote something, and `eval` appends only to a results file of the same method and model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from agentracer.formats.tracertraj import read_tracertraj
from agentracer.schema import Step, Trajectory, Verdict
from agentracer.store import open_store
from cli_invoke import run_cli

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"
ROW = {"question_ID": "q", "question": "?", "ground_truth": "1", "mistake_agent": "a", "mistake_step": 0,
       "mistake_reason": "r", "history": [{"content": "c", "name": "a", "role": "assistant", "step": 0}]}


def run(trajectory_id: str, labelled: bool = True) -> Trajectory:
    labels = [Verdict(agent="a", step=0, source="human")] if labelled else []
    return Trajectory(id=trajectory_id, steps=[Step(index=0, agent="a", content="x")], labels=labels)


def store_of(path: Path, *runs: Trajectory) -> Path:
    open_store(path).extend(runs)
    return path


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files an export left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def one_error(err: str) -> str:
    problems = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(problems) == 1 and "Traceback" not in err, err
    return problems[0]


# ---- 1. an export never writes over its source ----------------------------------------------------------

@pytest.mark.parametrize("fmt", ["tracertraj", "openinference"])
def test_export_refuses_to_write_over_its_source(tmp_path: Path, fmt: str) -> None:
    source = store_of(tmp_path / "s.jsonl", run("a"), run("b"))
    before = source.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(source)
    for output in (source, tmp_path / "." / "s.jsonl", tmp_path / "link.jsonl"):
        code, _, err = run_cli("export", fmt, str(source), "-o", str(output))
        assert code == 2 and "another file than SOURCE" in one_error(err)
        assert source.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_export_whowhen_never_writes_over_its_source(tmp_path: Path) -> None:
    source = tmp_path / "run.json"
    source.write_text(run("run").model_copy(update={"metadata": {"precious": 1}}).model_dump_json())
    before = source.read_bytes()
    code, _, err = run_cli("export", "whowhen", str(source), "-o", str(tmp_path))
    assert code == 2 and "is SOURCE itself" in one_error(err)
    assert source.read_bytes() == before and leftovers(tmp_path) == []
    assert run_cli("export", "whowhen", str(source), "-o", str(tmp_path / "out"))[0] == 0
    assert json.loads((tmp_path / "out" / "run.json").read_text())["mistake_agent"] == "a"


# ---- 2. an import never writes over its source -----------------------------------------------------------

@pytest.mark.parametrize("replace", [False, True])
def test_import_tracertraj_refuses_to_write_over_its_source(tmp_path: Path, replace: bool) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text(json.dumps(ROW) + "\n")
    before = source.read_bytes()
    code, _, err = run_cli("import", "tracertraj", str(source), "-o", str(source), *(["--replace"] * replace))
    assert code == 2 and "another store than SOURCE" in one_error(err)
    assert source.read_bytes() == before


def test_import_openinference_refuses_to_write_over_its_source(tmp_path: Path) -> None:
    spans = tmp_path / "spans.jsonl"
    assert run_cli("export", "openinference", str(store_of(tmp_path / "s.jsonl", run("a"))), "-o", str(spans))[0] == 0
    before = spans.read_bytes()
    code, _, err = run_cli("import", "openinference", str(spans), "-o", str(spans), "--replace")
    assert code == 2 and "another store than SOURCE" in one_error(err)
    assert spans.read_bytes() == before


def test_import_whowhen_refuses_an_output_that_is_not_a_store(tmp_path: Path) -> None:
    folder = tmp_path / "ww"
    shutil.copytree(DATA / "Hand-Crafted", folder)
    before = (folder / "13.json").read_bytes()
    for output in (folder / "13.json", folder / "new.json"):
        code, _, err = run_cli("import", "whowhen", str(folder), "-o", str(output), "--replace")
        assert code == 2 and ".jsonl or .db" in one_error(err)
    assert (folder / "13.json").read_bytes() == before and not (folder / "new.json").exists()
    code, _, err = run_cli("import", "whowhen", str(folder / "13.json"), "-o", str(folder / "13.json"))
    assert code == 2 and (folder / "13.json").read_bytes() == before


@pytest.mark.parametrize("suffix", ["jsonl", "db"])
def test_import_replace_keeps_the_store_when_the_source_gives_nothing(tmp_path: Path, suffix: str) -> None:
    """``--replace`` swaps the store only for what was read: an unreadable source, one with no good row, or an empty
    folder leaves it as it was."""
    store = store_of(tmp_path / f"store.{suffix}", run("a"), run("b"))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    no_history = tmp_path / "rows.jsonl"
    no_history.write_text(json.dumps({k: v for k, v in ROW.items() if k != "history"}) + "\n")
    (tmp_path / "empty").mkdir()
    for command in (["tracertraj", str(broken)], ["tracertraj", str(no_history)], ["whowhen", str(tmp_path / "empty")]):
        code, _, err = run_cli("import", *command, "-o", str(store), "--replace")
        assert code == 2 and "Traceback" not in err, err
        assert sorted(t.id for t in open_store(store)) == ["a", "b"], command
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", ["jsonl", "db"])
def test_import_replace_swaps_in_what_was_read(tmp_path: Path, suffix: str) -> None:
    store = store_of(tmp_path / f"store.{suffix}", run("a"), run("b"))
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(ROW) + "\n" + "not json\n")
    code, _, err = run_cli("import", "tracertraj", str(rows), "-o", str(store), "--replace")
    assert code == 2 and "rows.jsonl:2" in err  # the bad row is reported; the good one replaces the store
    assert [t.id for t in open_store(store)] == ["q"]
    assert leftovers(tmp_path) == []


# ---- 3. an export replaces its output whole, and only when it wrote something ---------------------------

def test_export_tracertraj_with_nothing_to_write_leaves_the_output_alone(tmp_path: Path) -> None:
    source = store_of(tmp_path / "s.jsonl", run("plain", labelled=False))
    old = tmp_path / "rows.jsonl"
    old.write_text("old rows\n")
    code, _, err = run_cli("export", "tracertraj", str(source), "-o", str(old))
    assert code == 2 and "plain" in err and "nothing written" in err
    assert old.read_text() == "old rows\n"
    code, _, err = run_cli("export", "tracertraj", str(source), "-o", str(tmp_path / "new.parquet"))
    assert code == 2 and "nothing written" in err
    assert not (tmp_path / "new.parquet").exists() and leftovers(tmp_path) == []


def test_export_openinference_with_nothing_to_write_leaves_the_output_alone(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    old = tmp_path / "spans.json"
    old.write_text("{}")
    code, _, err = run_cli("export", "openinference", str(empty), "-o", str(old))
    assert code == 0 and "nothing written" in err
    assert old.read_text() == "{}"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_export_tracertraj_replaces_the_output_whole(tmp_path: Path, suffix: str) -> None:
    source = store_of(tmp_path / "s.jsonl", run("a"), run("b"))
    out = tmp_path / f"rows.{suffix}"
    out.write_text("old rows\n")
    code, _, err = run_cli("export", "tracertraj", str(source), "-o", str(out))
    assert code == 0, err
    assert [t.id for t in read_tracertraj(out)] == ["a", "b"]
    assert leftovers(tmp_path) == []


def test_an_export_failing_midway_keeps_the_old_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agentracer.formats.tracertraj as tracertraj

    source = store_of(tmp_path / "s.jsonl", run("a"), run("b"))
    out = tmp_path / "rows.jsonl"
    out.write_text("old rows\n")
    real = tracertraj.to_row
    calls = []

    def failing(trajectory: Trajectory, **options: object) -> dict:
        calls.append(trajectory.id)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(trajectory, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(tracertraj, "to_row", failing)
    code, _, err = run_cli("export", "tracertraj", str(source), "-o", str(out))
    assert code == 2 and "disk full" in one_error(err)
    assert out.read_text() == "old rows\n" and leftovers(tmp_path) == []


# ---- 4. eval appends only to a results file of the same method and model ---------------------------------

@pytest.fixture()
def whowhen(tmp_path: Path) -> Path:
    folder = tmp_path / "ww" / "Hand-Crafted"
    folder.mkdir(parents=True)
    for name in ("13.json", "23.json"):
        shutil.copy(DATA / "Hand-Crafted" / name, folder / name)
    return folder.parent


def test_eval_refuses_to_append_to_a_trajectory_store(tmp_path: Path, whowhen: Path) -> None:
    store = store_of(tmp_path / "runs.jsonl", run("a"))
    before = store.read_bytes()
    code, _, err = run_cli("eval", "whowhen", "--data", str(whowhen), "--method", "random", "-o", str(store))
    line = one_error(err)
    assert code == 2 and str(store) in line and "not a results file" in line
    assert store.read_bytes() == before


def test_eval_resumes_a_results_file_with_a_torn_last_line(tmp_path: Path, whowhen: Path) -> None:
    out = tmp_path / "results.jsonl"
    args = ["eval", "whowhen", "--data", str(whowhen), "--method", "random", "-o", str(out)]
    assert run_cli(*args)[0] == 0
    first, second = out.read_text().splitlines()
    out.write_text(first + "\n" + second[:15])
    code, _, err = run_cli(*args)
    assert code == 0 and "1 to evaluate, 1 already" in err


def test_eval_refuses_results_of_another_model(tmp_path: Path, whowhen: Path) -> None:
    out = tmp_path / "results.jsonl"
    row = {"id": "Hand-Crafted/13.json", "subset": "Hand-Crafted", "with_gt": True, "method": "agentracer",
           "model": "openai:http://127.0.0.1:9/v1@other", "predicted_agent": "A", "predicted_step": 1,
           "mistake_agent": "A", "mistake_step": 1, "error": None, "error_kind": None, "latency_s": 0.1}
    out.write_text(json.dumps(row) + "\n")
    before = out.read_bytes()
    code, _, err = run_cli("eval", "whowhen", "--data", str(whowhen), "--model",
                           "scripted:<think>t</think><answer>Orchestrator|2</answer>", "-o", str(out))
    assert code == 2 and "holds results of model 'openai:http://127.0.0.1:9/v1@other'" in one_error(err)
    assert out.read_bytes() == before


def test_eval_accepts_results_of_the_same_model_at_another_address(tmp_path: Path, whowhen: Path) -> None:
    """A model is the same model whichever server answered (results rows name ``openai:URL@MODEL``)."""
    from agentracer.cli.evaluate import check_same_model

    out = tmp_path / "results.jsonl"
    out.write_text(json.dumps({"id": "x", "with_gt": True, "method": "agentracer", "model": "openai:http://a/v1@m"})
                   + "\n" + json.dumps({"id": "y", "with_gt": True, "method": "lite", "model": None}) + "\n")
    check_same_model(str(out), "agentracer", "openai:http://b:8000/v1@m")
    check_same_model(str(out), "lite", None)


def test_export_whowhen_with_nothing_to_write_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = run_cli("export", "whowhen", str(empty), "-o", str(tmp_path / "ww"))
    assert code == 0 and "no trajectories to export" in err and "nothing written" in err
    assert not (tmp_path / "ww").exists()


@pytest.mark.parametrize("name", ["store.db", "spans.txt", "rows.parquet"])
def test_export_openinference_writes_only_json_names(tmp_path: Path, name: str) -> None:
    source = store_of(tmp_path / "s.jsonl", run("a"))
    other = store_of(tmp_path / name, run("b")) if name == "store.db" else tmp_path / name
    before = other.read_bytes() if other.exists() else None
    code, _, err = run_cli("export", "openinference", str(source), "-o", str(other))
    assert code == 2 and ".json or .jsonl" in err
    assert (other.read_bytes() if other.exists() else None) == before


def _commands(group, path=()):
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def test_every_command_that_writes_somewhere_takes_o_and_both_long_spellings() -> None:
    """`-o` is the output on every command (`demo --out` and `train run --output` had no `-o`), and `--out` and
    `--output` name the same option wherever one does."""
    from agentracer.cli import cli

    seen = []
    for name, command in _commands(cli):
        for option in command.params:
            if {"--out", "--output"} & set(option.opts):
                seen.append(name)
                assert "-o" in option.opts, f"{name}: {option.opts}"
                assert {"--out", "--output"} <= set(option.opts) or "--out" not in option.opts, f"{name}"
    assert {"demo", "annotate", "refine", "replay", "train run"} <= set(seen)
