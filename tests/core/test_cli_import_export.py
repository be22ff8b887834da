"""`agentracer import` / `export` in-process: Who&When round trip of all 136 files, TracerTraj, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agentracer.formats.tracertraj import read_tracertraj
from agentracer.schema import Step, Trajectory, Verdict
from agentracer.store import open_store
from cli_invoke import run_cli

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"


@pytest.mark.parametrize("suffix", ["jsonl", "db"])
def test_whowhen_round_trip_of_all_files_via_the_cli(tmp_path: Path, suffix: str) -> None:
    store = tmp_path / f"ww.{suffix}"
    code, _, err = run_cli("import", "whowhen", str(DATA), "-o", str(store))
    assert code == 0, err
    assert "imported 136 of 136" in err
    code, _, err = run_cli("export", "whowhen", str(store), "-o", str(tmp_path / "out"))
    assert code == 0, err
    files = sorted(DATA.rglob("*.json"))
    assert len(files) == 136
    for original in files:
        exported = tmp_path / "out" / original.relative_to(DATA)
        assert json.loads(exported.read_text()) == json.loads(original.read_text()), original
    assert len(list((tmp_path / "out").rglob("*.json"))) == 136


def test_import_appends_and_reports_duplicates(tmp_path: Path) -> None:
    store = tmp_path / "ww.jsonl"
    assert run_cli("import", "whowhen", str(DATA / "Hand-Crafted"), "-o", str(store))[0] == 0
    code, _, err = run_cli("import", "whowhen", str(DATA / "Hand-Crafted"), "-o", str(store))
    assert code == 2
    assert err.count("error:") == 4 and err.count("is already in") == 3 and "Traceback" not in err
    assert "7 more trajectory ids are already in it" in err and "10 problem(s)" not in err
    assert len(open_store(store)) == 10
    assert run_cli("import", "whowhen", str(DATA / "Hand-Crafted"), "-o", str(store), "--replace")[0] == 0
    assert len(open_store(store)) == 10


def test_bad_files_give_one_line_each_and_the_rest_is_imported(tmp_path: Path) -> None:
    folder = tmp_path / "mixed" / "Hand-Crafted"
    folder.mkdir(parents=True)
    for name in ("13.json", "23.json"):
        (folder / name).write_text((DATA / "Hand-Crafted" / name).read_text())
    (folder / "bad1.json").write_text('{"history": 5, "mistake_step": "x"}')
    (folder / "bad2.json").write_text('{"history": [')
    good = json.loads((DATA / "Hand-Crafted" / "26.json").read_text())
    good["mistake_step"] = str(len(good["history"]) + 5)
    (folder / "bad3.json").write_text(json.dumps(good))
    store = tmp_path / "out.jsonl"
    code, _, err = run_cli("import", "whowhen", str(tmp_path / "mixed"), "-o", str(store))
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and "Traceback" not in err
    assert any("bad1.json" in e and "history" in e for e in errors)
    assert any("bad2.json" in e and "JSON" in e for e in errors)
    assert any("bad3.json" in e and "mistake_step" in e for e in errors)
    assert sorted(t.id for t in open_store(store)) == ["Hand-Crafted/13", "Hand-Crafted/23"]


def test_half_an_emoji_is_mended_and_a_too_deep_file_costs_only_itself(tmp_path: Path) -> None:
    """A model cut mid-character writes a lone surrogate (valid JSON, no UTF-8): it stopped the whole import (and
    an export) with an error naming no file."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("1.json", "3.json"):
        (folder / name).write_text('{"history": [{"content": "ok", "name": "a"}], "question": "q"}')
    (folder / "2.json").write_text('{"history": [{"content": "half \\ud83d", "name": "a"}], "question": "q"}')
    deep: object = "x"
    for _ in range(300):
        deep = [deep]
    (folder / "4.json").write_text(json.dumps({"history": [{"content": "x", "name": "a"}], "question": {"q": deep}}))
    store = tmp_path / "o.jsonl"
    code, _, err = run_cli("import", "whowhen", str(folder), "-o", str(store))
    assert code == 2 and "4.json" in err and "cannot be written as JSON" in err and "Traceback" not in err
    runs = {t.id: t for t in open_store(store)}
    assert sorted(runs) == ["1", "2", "3"] and runs["2"].steps[0].content == "half \ufffd"
    assert runs["2"].metadata["repaired_text"].startswith("1 broken character")
    # a store record written by hand with one: exported mended, the others too
    mended = tmp_path / "hand.jsonl"
    lines = store.read_text().splitlines()
    mended.write_text("\n".join([lines[0], lines[1].replace("\ufffd", "\\ud83d"), lines[2]]) + "\n")
    assert "\\ud83d" in mended.read_text()
    code, _, err = run_cli("export", "whowhen", str(mended), "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.json", "2.json", "3.json"]


def test_import_of_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    code, _, err = run_cli("import", "whowhen", str(tmp_path), "-o", str(tmp_path / "x.jsonl"))
    assert code == 2 and "no *.json files" in err


def test_tracertraj_parquet_round_trip_via_the_cli(tmp_path: Path) -> None:
    store = tmp_path / "ww.jsonl"
    assert run_cli("import", "whowhen", str(DATA), "-o", str(store))[0] == 0
    code, _, err = run_cli("export", "tracertraj", str(store), "-o", str(tmp_path / "rows.parquet"))
    assert code == 0, err
    code, _, err = run_cli("import", "tracertraj", str(tmp_path / "rows.parquet"), "-o", str(tmp_path / "tt.db"))
    assert code == 0, err
    code, _, err = run_cli("export", "tracertraj", str(tmp_path / "tt.db"), "-o", str(tmp_path / "rows.jsonl"))
    assert code == 0, err
    again = read_tracertraj(tmp_path / "rows.jsonl")
    assert len(again) == 136
    for trajectory, original in zip(again, open_store(store), strict=True):  # the order is kept throughout
        assert trajectory.metadata["question_id"] == original.metadata.get("question_id", original.id)
        assert [s.text for s in trajectory.steps] == [s.text for s in original.steps]
        assert [s.agent for s in trajectory.steps] == [s.agent for s in original.steps]
        assert [s.kind for s in trajectory.steps] == [s.kind for s in original.steps]  # (thought, instruction: by role)
        label, human = trajectory.labels[0], original.human_label
        assert (label.agent, label.step, label.reason, label.source) == (human.agent, human.step, human.reason, "human")


@pytest.mark.parametrize("kind", ["tracertraj", "openinference"])
def test_a_damaged_first_line_does_not_make_a_file_read_as_a_store(tmp_path: Path, kind: str) -> None:
    """The kind of a .jsonl file was told by its first line alone: one bad line made every good row 'not a
    trajectory' for validate, show, locate and export."""
    store = tmp_path / "ww.jsonl"
    assert run_cli("import", "whowhen", str(DATA / "Hand-Crafted"), "-o", str(store))[0] == 0
    rows = tmp_path / "rows.jsonl"
    assert run_cli("export", kind, str(store), "-o", str(rows))[0] == 0
    good = rows.read_text().splitlines()
    rows.write_text("\n".join(['{"history": [{"content": "cut sho', *good]) + "\n")
    code, out, err = run_cli("validate", str(rows))
    assert code == 2 and f"validated {len(good) if kind == 'tracertraj' else 10} good record(s)" in out, (out, err)
    assert err.count("error:") == 1


def test_export_tracertraj_reports_unlabelled_trajectories(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.jsonl")
    store.append(Trajectory(id="labelled", steps=[Step(index=0, agent="a", content="x")],
                            labels=[Verdict(agent="a", step=0, source="counterfactual")]))
    store.append(Trajectory(id="plain", steps=[Step(index=0, agent="a", content="x")]))
    code, _, err = run_cli("export", "tracertraj", str(store.path), "-o", str(tmp_path / "r.jsonl"))
    assert code == 2 and "plain" in err and err.count("error:") == 1
    assert [t.id for t in read_tracertraj(tmp_path / "r.jsonl")] == ["labelled"]
    code, _, err = run_cli("export", "tracertraj", str(store.path), "-o", str(tmp_path / "r.jsonl"),
                           "--allow-unlabelled")
    assert code == 0, err
    assert [t.id for t in read_tracertraj(tmp_path / "r.jsonl")] == ["labelled", "plain"]


def test_import_tracertraj_bad_rows(tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    good = {"question_ID": "q", "question": "?", "ground_truth": "1", "mistake_agent": "a", "mistake_step": 0,
            "mistake_reason": "r", "history": [{"content": "c", "name": "a", "role": "assistant", "step": 0}]}
    source.write_text(json.dumps(good) + "\n" + '{"question_ID": "z", "history": [{"content": 1, "step": "x"}]}\n'
                      + "[1, 2]\n")
    code, _, err = run_cli("import", "tracertraj", str(source), "-o", str(tmp_path / "t.jsonl"),
                           "--label-source", "injection")
    assert code == 2
    assert f"{source}:2" in err and "step" in err and f"{source}:3" in err
    (trajectory,) = list(open_store(tmp_path / "t.jsonl"))
    assert trajectory.labels[0].source == "injection"


def test_export_whowhen_refuses_paths_outside_the_folder(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.jsonl")
    store.append(Trajectory(id="evil", steps=[Step(index=0, agent="a", content="x")],
                            metadata={"source_path": "../../escape.json"}))
    store.append(Trajectory(id="fine", steps=[Step(index=0, agent="a", content="x")]))
    code, _, err = run_cli("export", "whowhen", str(store.path), "-o", str(tmp_path / "out"))
    assert code == 2 and "would leave" in err
    assert not (tmp_path.parent / "escape.json").exists()
    assert json.loads((tmp_path / "out" / "fine.json").read_text())["history"][0]["content"] == "x"


@pytest.mark.parametrize("args", [
    [], ["import"], ["import", "whowhen"], ["import", "tracertraj"], ["export"], ["export", "whowhen"],
    ["export", "tracertraj"], ["export", "openinference"], ["show"], ["validate"],
])
def test_help_everywhere(args: list[str]) -> None:
    code, out, _ = run_cli(*args, "--help")
    assert code == 0 and "Usage:" in out


def test_version() -> None:
    code, out, _ = run_cli("--version")
    assert code == 0 and "agentracer" in out
    import subprocess
    import sys

    ran = subprocess.run([sys.executable, "-m", "agentracer", "--version"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout == out  # (python -m agentracer is the command too)


def test_an_id_with_slashes_exports_into_folders_and_imports_as_the_same_id(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.jsonl")
    ids = ["team/run-1", "team/sub/run-2", "plain", "../up", "/abs", "a//b"]
    for trajectory_id in ids:
        store.append(Trajectory(id=trajectory_id, steps=[Step(index=0, agent="a", content=trajectory_id)]))
    code, _, err = run_cli("export", "whowhen", str(store.path), "-o", str(tmp_path / "out"))
    assert code == 2 and all(f"the id {i!r} cannot be a Who&When file's path" in err for i in ids[3:]), err
    assert (tmp_path / "out" / "team" / "sub" / "run-2.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.jsonl"]  # nothing written outside the folder
    code, _, err = run_cli("import", "whowhen", str(tmp_path / "out"), "-o", str(tmp_path / "back.jsonl"))
    assert code == 0, err
    back = {t.steps[0].content: t.id for t in open_store(tmp_path / "back.jsonl")}
    assert back == {i: i for i in ids[:3]}  # (no file under another id: ".._up" would be another run's)


@pytest.mark.parametrize("trajectory_id", ["", "a\\b", ".run.13.4242.1.tmp", ".hidden/run", "a/", "."])
def test_an_id_no_file_imports_back_as_is_refused_by_name_and_the_rest_exported(tmp_path: Path,
                                                                                trajectory_id: str) -> None:
    store = open_store(tmp_path / "s.jsonl")
    for i in (trajectory_id, "kept", ".dot", "x.json", "a."):  # (the last three import back as themselves)
        store.append(Trajectory(id=i, steps=[Step(index=0, agent="a", content=i)]))
    code, _, err = run_cli("export", "whowhen", str(store.path), "-o", str(tmp_path / "out"))
    assert code == 2 and f"the id {trajectory_id!r} cannot be a Who&When file's path" in err, err
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")) == [
        ".dot.json", "a..json", "kept.json", "x.json.json"]
    code, _, err = run_cli("import", "whowhen", str(tmp_path / "out"), "-o", str(tmp_path / "back.jsonl"))
    assert code == 0, err
    assert {t.steps[0].content: t.id for t in open_store(tmp_path / "back.jsonl")} == {
        i: i for i in ("kept", ".dot", "x.json", "a.")}


def test_an_export_path_that_cannot_be_written_costs_that_run_only(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.jsonl")
    for trajectory_id in ("a", "a.json/b", "c"):  # a.json would be a file and a folder
        store.append(Trajectory(id=trajectory_id, steps=[Step(index=0, agent="a", content=trajectory_id)]))
    code, _, err = run_cli("export", "whowhen", str(store.path), "-o", str(tmp_path / "out"))
    assert code == 2 and "cannot write a.json/b.json" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json", "c.json"]
    store.append(Trajectory(id="n\x00ul", steps=[Step(index=0, agent="a", content="x")]))
    code, _, err = run_cli("export", "whowhen", str(store.path), "-o", str(tmp_path / "out2"))
    assert code == 2 and "holds a NUL character" in err and (tmp_path / "out2" / "c.json").is_file()  # (the rest go on)


@pytest.mark.parametrize("kind, out", [("tracertraj", "other.jsonl"), ("openinference", "other.jsonl")])
def test_an_export_refuses_to_replace_another_trajectory_store(tmp_path: Path, kind: str, out: str) -> None:
    source, other = open_store(tmp_path / "runs.jsonl"), open_store(tmp_path / out)
    source.append(Trajectory(id="a", steps=[Step(index=0, agent="a", content="x")],
                             labels=[Verdict(agent="a", step=0, source="human")]))
    other.append(Trajectory(id="kept", steps=[Step(index=0, agent="b", content="y")]))
    before = (tmp_path / out).read_bytes()
    code, _, err = run_cli("export", kind, str(source.path), "-o", str(tmp_path / out))
    assert code == 2 and "holds trajectories" in err and (tmp_path / out).read_bytes() == before


@pytest.mark.parametrize("kind, out", [("whowhen", "ww"), ("tracertraj", "rows.jsonl"), ("openinference", "spans.json")])
def test_a_repeated_id_in_stores_joined_by_hand_is_reported_and_exported_once(tmp_path: Path, kind: str, out: str) -> None:
    """Two runs of one id made one trace of both runs' spans, which imported as nothing."""
    label = [Verdict(agent="b", step=0, reason="r", source="human")]
    first, second, other = (Trajectory(id=i, task="t", labels=label, steps=[Step(index=0, agent="b", content=c)])
                            for i, c in (("r1", "first"), ("r1", "second"), ("r2", "other")))
    store = tmp_path / "joined.jsonl"
    store.write_text("".join(t.model_dump_json() + "\n" for t in (first, second, other)))
    code, _, err = run_cli("export", kind, str(store), "-o", str(tmp_path / out))
    assert code == 2 and f"{store}:2: trajectory id 'r1' repeats the run at {store}:1" in err, err
    written = "".join(p.read_text() for p in (tmp_path / out).rglob("*") if p.is_file()) \
        if (tmp_path / out).is_dir() else (tmp_path / out).read_text()
    assert "first" in written and "other" in written and "second" not in written


@pytest.mark.parametrize("kind, out", [("whowhen", "ww"), ("tracertraj", "rows.jsonl"), ("openinference", "spans.json")])
def test_an_export_of_a_store_edited_by_hand_holds_no_key(tmp_path: Path, kind: str, out: str) -> None:
    """A store written by hand (or by a version before imports were redacted) is redacted as it is exported."""
    key = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0k1L2"
    run = Trajectory(id="edited", task="use the service", ground_truth={"answer": "42", "env": f"KEY={key}"},
                     steps=[Step(index=0, agent="user", role="user", content="use the service"),
                            Step(index=1, agent="coder", content=f"calling it with {key}",
                                 metadata={"api_key": "plain-not-a-key-shape"})],
                     labels=[Verdict(agent="coder", step=1, reason="leaked", source="human")])
    store = tmp_path / "runs.jsonl"
    store.write_text(run.model_dump_json() + "\n")
    code, _, err = run_cli("export", kind, str(store), "-o", str(tmp_path / out))
    assert code == 0, err
    written = "".join(p.read_text() for p in (tmp_path / out).rglob("*") if p.is_file()) \
        if (tmp_path / out).is_dir() else (tmp_path / out).read_text()
    assert "calling it with" in written and key not in written and "plain-not-a-key-shape" not in written
    assert "42" in written  # (the ground truth goes out too, without its key)


def test_half_an_emoji_in_a_trajectory_file_is_mended_as_in_a_store(tmp_path: Path) -> None:
    data = json.loads(Trajectory(id="s1", steps=[Step(index=0, agent="a", content="ok")]).model_dump_json())
    data["steps"][0]["content"] = "half \ud83d emoji"
    single = tmp_path / "run.json"
    single.write_text(json.dumps(data))
    page = tmp_path / "page.html"
    code, _, err = run_cli("show", str(single), "--html", str(page))
    assert code == 0 and "half \ufffd emoji" in page.read_text(encoding="utf-8"), err


def test_a_page_or_a_located_copy_of_a_store_edited_by_hand_holds_no_key(tmp_path: Path) -> None:
    """What a command makes of a store's run (an HTML page, a copy with its verdict, a tracer's prompt) is redacted
    as a recording is, whichever way the run was picked."""
    key = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0k1L2"
    run = Trajectory(id="edited", task="use the service", outcome={"success": False},
                     steps=[Step(index=0, agent="user", role="user", content="use the service"),
                            Step(index=1, agent="coder", content=f"calling it with {key}")])
    store = tmp_path / "runs.jsonl"
    store.write_text(run.model_dump_json() + "\n")
    for pick in ([], ["--id", "edited"]):
        page = tmp_path / f"page{len(pick)}.html"
        assert run_cli("show", str(store), *pick, "--html", str(page))[0] == 0
        assert "calling it with" in page.read_text() and key not in page.read_text()
        code, out, err = run_cli("show", str(store), *pick)
        assert code == 0 and "calling it with" in out and key not in out
    for name, text in (("run.json", run.model_dump_json()), ("runs.json", f"[{run.model_dump_json()}]")):
        single = tmp_path / name  # (a trajectory file, as `replay -o` writes it and `diff` takes it)
        single.write_text(text)
        page = tmp_path / f"{name}.html"
        assert run_cli("show", str(single), "--html", str(page))[0] == 0
        assert "calling it with" in page.read_text() and key not in page.read_text()
        code, out, err = run_cli("diff", str(single), str(single), "--json")
        assert code == 0 and "calling it with" in out and key not in out, err
    located = tmp_path / "located.jsonl"
    code, _, err = run_cli("locate", str(store), "--method", "random", "-o", str(located))
    assert code == 0, err
    assert "calling it with" in located.read_text() and key not in located.read_text()


@pytest.mark.parametrize("suffix", ["jsonl", "db"])
def test_import_replace_keeps_the_later_runs_of_a_handle_open_on_the_store(tmp_path: Path, suffix: str) -> None:
    """A process recording into the store (a traced team) while ``import --replace`` ran: the import moved a new
    database in and deleted the live one's ``-wal``/``-shm``, and the handle's later runs went to the file replaced."""
    store = tmp_path / f"runs.{suffix}"
    live = open_store(store)
    live.append(Trajectory(id="run1", steps=[Step(index=0, agent="a", content="x")]))
    inode = store.stat().st_ino
    code, _, err = run_cli("import", "whowhen", str(DATA / "Hand-Crafted"), "-o", str(store), "--replace")
    assert code == 0, err
    if suffix == "db":  # (the database changes in one transaction: its file, and any handle's connection, stay)
        assert store.stat().st_ino == inode
    live.append(Trajectory(id="run2", steps=[Step(index=0, agent="a", content="y")]))
    ids = [t.id for t in open_store(store)]
    assert len(ids) == 11 and ids[-1] == "run2" and "run1" not in ids
    assert len(live) == 11 and "run1" not in live
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # (no temporary left behind)


def test_import_replace_clears_what_a_killed_import_left_and_keeps_a_running_ones(tmp_path: Path) -> None:
    """Each ``import --replace`` onto a .db stages a whole copy of the import in a folder beside the store: one killed
    mid-way left its folder for good."""
    import os
    import subprocess
    import sys
    import time

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(ended.stdout), os.getppid()
    hour_ago = time.time() - 2 * 3600
    left = {pid: tmp_path / f".agentracer-import.{pid}.abc" for pid in (dead, alive)}
    for folder in left.values():
        folder.mkdir()
        (folder / "new.db").write_bytes(b"x" * 100)
        os.utime(folder, (hour_ago, hour_ago))
    code, _, err = run_cli("import", "whowhen", str(DATA / "Hand-Crafted"), "-o", str(tmp_path / "runs.db"), "--replace")
    assert code == 0, err
    assert not left[dead].exists() and left[alive].exists()
