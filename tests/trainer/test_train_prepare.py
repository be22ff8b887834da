"""`agentracer train prepare`: verl RL Parquet from Who&When, TracerTraj and our store; splits by task;
prompts identical to the tracer's; the token budget's report; bad input stops before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from agentracer.cli import main
from agentracer.errors import InputError
from agentracer.formats.whowhen import iter_whowhen_dir
from agentracer.tracer.prompt import build_messages
from agentracer.trainer.data import assign_splits, builder_budget, prepare

ROOT = Path(__file__).resolve().parents[2]
WHOWHEN = ROOT / "data" / "whowhen"
COLUMNS = {"data_source", "prompt", "ability", "reward_model", "extra_info"}


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    main(["train", "prepare", str(WHOWHEN), "-o", str(out), "--max-prompt-tokens", "8000"])
    return out


@pytest.fixture(scope="module")
def whowhen() -> dict:
    return {t.id: t for _, t in iter_whowhen_dir(WHOWHEN)}


def test_no_task_in_both_splits_and_verl_columns(prepared: Path) -> None:
    train, val = rows(prepared / "train.parquet"), rows(prepared / "val.parquet")
    assert COLUMNS <= set(train[0]) and COLUMNS <= set(val[0])
    assert len(train) > 5 * len(val) > 0
    train_tasks = {r["extra_info"]["question_ID"] for r in train}
    val_tasks = {r["extra_info"]["question_ID"] for r in val}
    assert not train_tasks & val_tasks
    report = json.loads((prepared / "report.json").read_text())
    assert report["train"] == len(train) and report["val"] == len(val)
    assert report["read"] == 136 == len(train) + len(val) + len(report["dropped"])


def test_tasks_shared_by_both_subsets_stay_together(prepared: Path) -> None:
    split_of: dict[str, set[str]] = {}
    for name in ("train", "val"):
        for r in rows(prepared / f"{name}.parquet"):
            split_of.setdefault(r["extra_info"]["question_ID"], set()).add(name)
    shared = [t for t, s in split_of.items() if len(s) > 1]
    assert shared == []
    # Who&When has questions that appear in both subsets: they count once as tasks
    assert len(split_of) < sum(1 for _ in iter_whowhen_dir(WHOWHEN))


def test_prompts_are_the_tracers_and_labels_are_whowhens(prepared: Path, whowhen: dict) -> None:
    for r in rows(prepared / "train.parquet")[:40] + rows(prepared / "val.parquet"):
        trajectory = whowhen[r["extra_info"]["id"]]
        expected = build_messages(trajectory, with_ground_truth=True, max_tokens=r["extra_info"]["prompt_budget"])
        assert r["prompt"] == expected
        truth = r["reward_model"]["ground_truth"]
        assert r["reward_model"]["style"] == "rule"
        assert (truth["agent"], truth["step"]) == (trajectory.human_label.agent, trajectory.human_label.step)
        assert truth["agent"] in json.loads(truth["agents"])
        assert r["extra_info"]["length"] == len(trajectory.steps)
        assert r["extra_info"]["prompt_tokens"] <= 8000


def test_budget_shortens_long_prompts_and_reports_drops(tmp_path: Path) -> None:
    report = prepare(WHOWHEN, tmp_path, max_prompt_tokens=1500)
    assert report.truncated > 20
    assert report.reasons() == {"labelled step left out of the prompt by the token budget": len(report.dropped)}
    assert len(report.dropped) > 0
    kept = rows(tmp_path / "train.parquet") + rows(tmp_path / "val.parquet")
    assert all(r["extra_info"]["prompt_tokens"] <= 1500 for r in kept)
    assert any(r["extra_info"]["truncated"] for r in kept)
    dropped_ids = {d.id for d in report.dropped}
    assert not dropped_ids & {r["extra_info"]["id"] for r in kept}
    saved = json.loads((tmp_path / "report.json").read_text())
    assert {d["id"] for d in saved["dropped"]} == dropped_ids


def test_without_ground_truth_prompt_and_determinism(tmp_path: Path, whowhen: dict) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    prepare(WHOWHEN, a, with_ground_truth=False, max_prompt_tokens=4000)
    prepare(WHOWHEN, b, with_ground_truth=False, max_prompt_tokens=4000)
    assert (a / "train.parquet").read_bytes() == (b / "train.parquet").read_bytes()
    first = rows(a / "train.parquet")[0]
    trajectory = whowhen[first["extra_info"]["id"]]
    assert first["prompt"] == build_messages(trajectory, with_ground_truth=False, max_tokens=builder_budget(4000))
    assert "Correct answer" not in first["prompt"][1]["content"]


def test_split_assignment_is_stable_as_data_grows() -> None:
    tasks = [f"q{i}" for i in range(200)]
    small = assign_splits(tasks[:100], 0.2)
    large = assign_splits(tasks, 0.2)
    assert all(large[t] == small[t] for t in tasks[:100])
    assert 20 <= sum(1 for s in large.values() if s == "val") <= 60
    assert set(assign_splits(["only", "two"], 0.01).values()) == {"train", "val"}


def test_tracertraj_parquet_and_store_inputs(tmp_path: Path, whowhen: dict) -> None:
    from agentracer.formats.tracertraj import write_tracertraj
    from agentracer.store import JsonlStore

    sample = [whowhen[k] for k in sorted(whowhen)[:12]]
    parquet = tmp_path / "tt.parquet"
    write_tracertraj(sample, parquet)
    report = prepare(parquet, tmp_path / "from_parquet", max_prompt_tokens=6000)
    assert report.read == 12 and report.train + report.val + len(report.dropped) == 12
    got = rows(tmp_path / "from_parquet" / "train.parquet")
    assert got[0]["data_source"] == "agentracer/tracertraj"

    store = JsonlStore(tmp_path / "store.jsonl")
    store.extend(sample)
    report = prepare(tmp_path / "store.jsonl", tmp_path / "from_store", max_prompt_tokens=6000)
    assert report.read == 12
    stored = rows(tmp_path / "from_store" / "train.parquet")
    assert {r["extra_info"]["id"] for r in stored} <= {t.id for t in sample}


def test_no_usable_rows_is_one_clear_error_and_writes_nothing(tmp_path: Path, whowhen: dict) -> None:
    from agentracer.store import JsonlStore

    unlabelled = [t.model_copy(update={"labels": []}) for t in list(whowhen.values())[:3]]
    JsonlStore(tmp_path / "s.jsonl").extend(unlabelled)
    with pytest.raises(InputError, match="no usable rows.*3 no label"):
        prepare(tmp_path / "s.jsonl", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no usable rows"):
        prepare(empty, tmp_path / "out2")


def test_label_outside_trajectory_stops_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "ww"
    shutil.copytree(WHOWHEN / "Hand-Crafted", data / "Hand-Crafted")
    victim = sorted((data / "Hand-Crafted").glob("*.json"))[0]
    record = json.loads(victim.read_text())
    record["mistake_step"] = str(len(record["history"]) + 5)
    victim.write_text(json.dumps(record))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "prepare", str(data), "-o", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "1 bad rows" in err and victim.name in err and "outside" in err and "--skip-invalid" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
    report = prepare(data, out, skip_invalid=True)
    assert len(report.invalid) == 1 and report.train + report.val == report.read - len(report.dropped)


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="val-fraction"):
        prepare(WHOWHEN, tmp_path, val_fraction=1.0)
    with pytest.raises(InputError, match="no such file"):
        prepare(tmp_path / "missing", tmp_path / "o")
    from agentracer.cli import cli
    from click.testing import CliRunner

    said = CliRunner().invoke(cli, ["train", "prepare", str(WHOWHEN), "-o", str(tmp_path / "c"),
                                    "--max-prompt-tokens", "300"])  # (the prompt's own parts: every row dropped)
    assert said.exit_code != 0 and "--max-prompt-tokens must be at least 600" in str(said.exception or said.output)


def test_a_run_given_twice_is_one_row(tmp_path: Path) -> None:
    from agentracer.schema import Step, Trajectory, Verdict

    runs = [Trajectory(id=f"run-{i}", task=f"task {i}", steps=[Step(index=0, agent="a", content="x"),
                                                               Step(index=1, agent="b", content="y")],
                       labels=[Verdict(agent="b", step=1, source="human")]).model_dump(mode="json") for i in (0, 1)]
    (tmp_path / "runs.json").write_text(json.dumps([runs[0], runs[1], runs[0]]))
    report = prepare(tmp_path / "runs.json", tmp_path / "out", val_fraction=0.0)
    assert report.train == 2 and [(d.id, d.reason) for d in report.dropped] == [
        ("run-0", "the same run again (its id repeats an earlier one)")]


def test_budget_counted_with_a_real_tokenizer(tmp_path: Path, whowhen: dict) -> None:
    import tokenizers
    vocab = {"[UNK]": 0, "Step": 1, "-": 2, ":": 3}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    out = tmp_path / "out"
    main(["train", "prepare", str(WHOWHEN), "-o", str(out), "--max-prompt-tokens", "3000", "--tokenizer",
          str(tmp_path)])
    kept = rows(out / "train.parquet")
    for r in kept[:20]:
        counted = sum(len(tok.encode(m["content"]).ids) for m in r["prompt"])
        assert counted == r["extra_info"]["prompt_tokens"] <= 3000
        trajectory = whowhen[r["extra_info"]["id"]]
        assert r["prompt"] == build_messages(trajectory, with_ground_truth=True, max_tokens=builder_budget(3000),
                                             tokenizer=tok)


def test_a_tokenizer_file_the_library_cannot_read_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text("def not_json(): pass\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "prepare", str(WHOWHEN), "-o", str(tmp_path / "out"), "--tokenizer", str(bad)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "not a tokenizer.json the tokenizers library reads" in err
    assert len(err.strip().splitlines()) == 1


def test_one_task_is_for_training_whatever_its_hash(tmp_path: Path) -> None:
    """A single labelled task (annotate --training-rows on one task) goes to train: its hash put it in val, and
    prepare then failed with advice annotate has no option for."""
    from agentracer.schema import Step, Trajectory, Verdict
    from agentracer.store import open_store
    from agentracer.trainer.data import split_position

    task = next(f"task {i}" for i in range(1000) if split_position(f"id:run-{i}") < 0.5)
    run_id = f"run-{task.split()[1]}"
    store = open_store(tmp_path / "one.jsonl")
    store.append(Trajectory(id=run_id, steps=[Step(index=0, agent="a", content="x"), Step(index=1, agent="b",
                                                                                         content="y")],
                            labels=[Verdict(agent="b", step=1, source="human")]))
    report = prepare(store.path, tmp_path / "out", val_fraction=0.5)
    assert (report.train, report.val) == (1, 0) and rows(tmp_path / "out" / "val.parquet") == []
    from agentracer.cli import cli
    from click.testing import CliRunner

    said = CliRunner().invoke(cli, ["train", "prepare", str(store.path), "-o", str(tmp_path / "cli")])
    assert said.exit_code == 0 and "warning: val.parquet has no rows" in said.output  # train run would refuse it


def _labelled_store(path: Path, agent: str = "b") -> Path:
    from agentracer.schema import Step, Trajectory, Verdict
    from agentracer.store import open_store

    store = open_store(path)
    for i in range(4):
        store.append(Trajectory(id=f"run-{i}", steps=[Step(index=0, agent="a", content="x"),
                                                       Step(index=1, agent="b", content="y")],
                                labels=[Verdict(agent=agent if i == 0 else "b", step=1, source="human")]))
    return path


def test_a_store_edited_by_hand_gives_training_rows_without_its_keys(tmp_path: Path) -> None:
    from agentracer.schema import Step, Trajectory, Verdict

    key = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0k1L2"
    lines = [Trajectory(id=f"run-{i}", steps=[Step(index=0, agent="a", content=f"use {key} now"),
                                               Step(index=1, agent="b", content="y")],
                        labels=[Verdict(agent="b", step=1, source="human")]).model_dump_json() for i in range(2)]
    (tmp_path / "hand.jsonl").write_text("\n".join(lines) + "\n")  # (written by hand: never redacted)
    (tmp_path / "hand.json").write_text("[" + ",".join(lines) + "]")  # (a trajectory file, as replay -o writes)
    for source in ("hand.jsonl", "hand.json"):
        report = prepare(tmp_path / source, tmp_path / f"out-{source}", val_fraction=0.0)
        written = json.dumps(rows(tmp_path / f"out-{source}" / "train.parquet"))
        assert report.train == 2 and "use [REDACTED] now" in written and key not in written, source


def test_a_label_naming_no_agent_of_its_run_is_dropped_and_named(tmp_path: Path) -> None:
    report = prepare(_labelled_store(tmp_path / "s.jsonl", agent="Nobody"), tmp_path / "out", val_fraction=0.0)
    assert report.train == 3 and [(d.id, d.reason) for d in report.dropped] == [
        ("run-0", "label agent 'Nobody' is not an agent of the trajectory")]


def test_a_failed_write_leaves_the_earlier_output_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, out = _labelled_store(tmp_path / "s.jsonl"), tmp_path / "out"
    prepare(store, out, val_fraction=0.5, seed=0)
    before = {name: (out / name).read_bytes() for name in ("train.parquet", "val.parquet", "report.json")}
    real = pq.write_table

    def full_disk(table, where, *args, **kwargs):
        if "val" in Path(where).name:
            raise OSError(28, "No space left on device")
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", full_disk)
    with pytest.raises(OSError, match="No space left"):
        prepare(store, out, val_fraction=0.5, seed=7)
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temporary file left


def test_a_prepare_killed_between_its_files_is_refused_by_train_run_and_its_leftovers_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between moving train.parquet and val.parquet in, prepare left a new train split beside an old val split
    (a task on both sides) that train run took, and its staged files stayed for good."""
    import os
    import time

    from agentracer.trainer.data import prepared_by
    from agentracer.trainer.launch import RunSpec, check_inputs, load_config

    store, out = _labelled_store(tmp_path / "s.jsonl"), tmp_path / "out"
    prepare(store, out, val_fraction=0.5, seed=0)
    assert prepared_by(out / "train.parquet") == prepared_by(out / "val.parquet") is not None
    real = os.replace

    def killed_after_train(source, target):
        if Path(target).name == "val.parquet":
            raise KeyboardInterrupt  # (the process stopped here)
        return real(source, target)

    monkeypatch.setattr(os, "replace", killed_after_train)
    with pytest.raises(KeyboardInterrupt):
        prepare(store, out, val_fraction=0.5, seed=7)
    monkeypatch.setattr(os, "replace", real)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    config = load_config()
    config["data"]["train_batch_size"] = 1
    with pytest.raises(InputError, match="written by different runs of `agentracer train prepare`"):
        check_inputs(RunSpec(model=model, output=tmp_path / "run", data=out), config)

    stale, live = out / ".train.parquet.99999999.tmp", out / f".val.parquet.{os.getppid()}.tmp"
    for path in (stale, live):
        path.write_bytes(b"partial")
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    prepare(store, out, val_fraction=0.5, seed=0)
    assert not stale.exists() and live.exists()  # (a live process's: a writer still at work)
    check_inputs(RunSpec(model=model, output=tmp_path / "run", data=out), config)
    # a validation set of its own, named apart from --data's train split, is the user's choice
    held_out = tmp_path / "held-out"
    prepare(store, held_out, val_fraction=0.5, seed=3)
    check_inputs(RunSpec(model=model, output=tmp_path / "run", data=out,
                         extra=[f"data.val_files={held_out / 'val.parquet'}"]), config)


def test_a_folder_where_an_output_file_goes_is_refused_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "val.parquet").mkdir(parents=True)
    with pytest.raises(InputError, match="val.parquet is a folder there"):
        prepare(_labelled_store(tmp_path / "s.jsonl"), out)
    assert not (out / "train.parquet").exists()


def test_an_output_that_would_overwrite_or_feed_the_dataset_is_refused(tmp_path: Path, whowhen: dict) -> None:
    from agentracer.formats.tracertraj import write_tracertraj

    data = tmp_path / "data"
    data.mkdir()
    split = data / "train.parquet"  # a downloaded TracerTraj split, named as prepare names its output
    write_tracertraj([whowhen[k] for k in sorted(whowhen)[:4]], split)
    before = split.read_bytes()
    with pytest.raises(InputError, match="write over the dataset"):
        prepare(split, data)
    with pytest.raises(InputError, match="must be a folder"):
        prepare(split, split)
    assert split.read_bytes() == before
    folder = tmp_path / "ww"
    shutil.copytree(WHOWHEN, folder)
    for inside in (folder, folder / "prepared"):
        with pytest.raises(InputError, match="outside the dataset folder"):
            prepare(folder, inside)


def test_runs_of_one_task_stay_on_one_side_of_the_split_whatever_the_format(tmp_path: Path) -> None:
    """Several labelled runs per task, prepared from our store and from its TracerTraj export: the same split, and
    no task on both sides (TracerTraj once named each row by its run, splitting a task's runs)."""
    from agentracer.formats.tracertraj import write_tracertraj
    from agentracer.schema import Step, Trajectory, Verdict
    from agentracer.store import open_store

    runs = [Trajectory(task=f"task number {task}", steps=[Step(index=0, agent="a", content=f"try {attempt}"),
                                                          Step(index=1, agent="b", content="done")],
                       labels=[Verdict(agent="b", step=1, source="counterfactual")])
            for task in range(8) for attempt in range(3)]
    open_store(tmp_path / "runs.jsonl").extend(runs)
    write_tracertraj(runs, tmp_path / "runs.parquet")
    splits = []
    for source in ("runs.jsonl", "runs.parquet"):
        out = tmp_path / f"prepared-{source}"
        main(["train", "prepare", str(tmp_path / source), "-o", str(out), "--val-fraction", "0.4"])
        split_of: dict[str, set[str]] = {}
        for name in ("train", "val"):
            for row in rows(out / f"{name}.parquet"):
                split_of.setdefault(row["extra_info"]["question_ID"], set()).add(name)
        assert len(split_of) == 8 and all(len(sides) == 1 for sides in split_of.values()), split_of
        splits.append(split_of)
    assert splits[0] == splits[1]


def test_an_older_export_naming_each_row_by_its_run_still_keeps_a_task_on_one_side(tmp_path: Path) -> None:
    """TracerTraj files written before question_ID named the task hold one id per run: runs sharing a task text are
    grouped all the same, and the report says how many ids were folded."""
    from agentracer.formats.tracertraj import to_row
    from agentracer.schema import Step, Trajectory, Verdict

    lines = []
    for task in range(8):
        for attempt in range(3):
            run = Trajectory(id=f"run-{task}-{attempt}", task=f"task number {task}",
                             steps=[Step(index=0, agent="a", content=f"try {attempt}"),
                                    Step(index=1, agent="b", content="done")],
                             labels=[Verdict(agent="b", step=1, source="counterfactual")])
            row = to_row(run)
            row["question_ID"] = run.id  # as older versions wrote it
            row.pop("trajectory_id", None)
            lines.append(json.dumps(row))
    (tmp_path / "old.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "prepared"
    main(["train", "prepare", str(tmp_path / "old.jsonl"), "-o", str(out), "--val-fraction", "0.4"])
    side_of_text: dict[str, set[str]] = {}
    for name in ("train", "val"):
        for row in rows(out / f"{name}.parquet"):
            side_of_text.setdefault(row["prompt"][1]["content"].split("## Task\n")[1].split("\n")[0], set()).add(name)
    assert len(side_of_text) == 8 and all(len(sides) == 1 for sides in side_of_text.values()), side_of_text
    assert json.loads((out / "report.json").read_text())["grouped_ids"] == 16


def test_templated_tasks_with_other_answers_stay_tasks_of_their_own(tmp_path: Path) -> None:
    """One task text, many ground truths (a templated instruction over many repositories): not one task."""
    from agentracer.formats.tracertraj import to_row
    from agentracer.schema import Step, Trajectory, Verdict

    lines = []
    for n in range(40):
        run = Trajectory(id=f"r{n}", task="Fix the failing test in the attached repository.", ground_truth=f"patch {n}",
                         steps=[Step(index=0, agent="a", content="look"), Step(index=1, agent="b", content="done")],
                         labels=[Verdict(agent="b", step=1, source="human")], metadata={"question_id": f"repo-{n}"})
        lines.append(json.dumps(to_row(run)))
    (tmp_path / "repos.jsonl").write_text("\n".join(lines) + "\n")
    main(["train", "prepare", str(tmp_path / "repos.jsonl"), "-o", str(tmp_path / "out"), "--val-fraction", "0.2"])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["grouped_ids"] == 0 and report["train_tasks"] + report["val_tasks"] == 40 and report["val"] > 0


def test_flagged_labels_are_counted_kept_and_left_out_on_request(tmp_path: Path) -> None:
    """Annotation's caveats reach the training data: counted in the report, in each row's extra_info, and left
    out with --exclude-flag."""
    from agentracer.schema import Step, Trajectory, Verdict
    from agentracer.store import open_store

    store = open_store(tmp_path / "s.jsonl")
    flags = [["answer_in_correction"], ["earlier_steps_untried"], [], []]
    for i, flagged in enumerate(flags):
        store.append(Trajectory(id=f"run-{i}", task=f"task {i}", steps=[
            Step(index=0, agent="a", content="x"), Step(index=1, agent="b", content="y")],
            labels=[Verdict(agent="b", step=1, source="counterfactual", flags=flagged)]))
    report = prepare(store.path, tmp_path / "all", val_fraction=0.0)
    assert report.train == 4 and report.flagged == {"answer_in_correction": 1, "earlier_steps_untried": 1}
    assert "labels kept with a flag: answer_in_correction 1, earlier_steps_untried 1" in report.summary()
    kept = {r["extra_info"]["id"]: list(r["extra_info"]["label_flags"]) for r in rows(tmp_path / "all" / "train.parquet")}
    assert kept == {f"run-{i}": f for i, f in enumerate(flags)}
    assert json.loads((tmp_path / "all" / "report.json").read_text())["flagged"]["answer_in_correction"] == 1
    code = 0
    try:
        main(["train", "prepare", str(store.path), "-o", str(tmp_path / "clean"), "--val-fraction", "0",
              "--exclude-flag", "answer_in_correction"])
    except SystemExit as exc:
        code = exc.code
    assert code == 0
    report = json.loads((tmp_path / "clean" / "report.json").read_text())
    assert report["train"] == 3 and report["dropped"] == [
        {"id": "run-0", "reason": "label flagged answer_in_correction (--exclude-flag)"}]


def test_flags_only_on_validation_rows_are_written_and_a_misspelt_flag_is_refused(tmp_path: Path) -> None:
    """The column's type came from the train rows alone: no flag there made it a list of nulls, and a val row's flag
    could not be written ('Invalid null value'). --exclude-flag earlier_step_untried kept every label, silently."""
    import pyarrow as pa
    from agentracer.schema import Step, Trajectory, Verdict
    from agentracer.store import open_store
    from agentracer.trainer.data import assign_splits, task_id

    store = open_store(tmp_path / "s.jsonl")
    runs = [Trajectory(id=f"run-{i}", task=f"task {i}", steps=[
        Step(index=0, agent="a", content="x"), Step(index=1, agent="b", content="y")],
        labels=[Verdict(agent="b", step=1, source="counterfactual")]) for i in range(6)]
    splits = assign_splits([task_id(t) for t in runs], 0.3, seed=0)
    for run in runs:
        if splits[task_id(run)] == "val":
            run.labels[0].flags = ["earlier_steps_untried"]
    store.extend(runs)
    report = prepare(store.path, tmp_path / "out", val_fraction=0.3)
    assert report.val >= 1 and report.flagged == {"earlier_steps_untried": report.val}
    for split in ("train", "val"):
        info = pq.read_schema(tmp_path / "out" / f"{split}.parquet").field("extra_info").type
        assert info.field("label_flags").type == pa.list_(pa.string())
    with pytest.raises(InputError, match="did you mean 'earlier_steps_untried'"):
        prepare(store.path, tmp_path / "typo", val_fraction=0.3, exclude_flags=["earlier_step_untried"])
    assert not (tmp_path / "typo").exists()


def test_an_annotate_output_folder_and_one_trajectory_file_are_read_as_ours(tmp_path: Path) -> None:
    """The folder annotate writes was read as Who&When (every file 'missing field history'), and so was one
    trajectory .json that show and locate read."""
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "ledger.jsonl").write_text("")
    with pytest.raises(InputError, match="without labelled.jsonl yet"):
        prepare(folder, tmp_path / "o0")
    shutil.copy(_labelled_store(tmp_path / "s.jsonl"), folder / "labelled.jsonl")
    (folder / "export.json").write_text(json.dumps({"labelled": 4}))
    assert prepare(folder, tmp_path / "o1", val_fraction=0.0).train == 4
    from agentracer.store import open_store

    one = tmp_path / "one.json"
    one.write_text(next(iter(open_store(tmp_path / "s.jsonl"))).to_json())
    assert prepare(one, tmp_path / "o2", val_fraction=0.0).train == 1
    several = tmp_path / "several.json"
    several.write_text("[" + ",".join(t.to_json() for t in open_store(tmp_path / "s.jsonl")) + "]")
    assert prepare(several, tmp_path / "o3", val_fraction=0.0).train == 4
