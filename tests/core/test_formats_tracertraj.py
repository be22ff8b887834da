"""TracerTraj rows ⇄ Trajectory, through Parquet and JSONL."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from agentracer.errors import InputError
from agentracer.formats.tracertraj import (
    COLUMNS,
    from_row,
    iter_tracertraj,
    read_tracertraj,
    to_row,
    write_tracertraj,
)
from agentracer.formats.whowhen import iter_whowhen_dir
from agentracer.schema import Step, Trajectory, Verdict

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"


def row(**overrides: object) -> dict:
    base = {
        "question_ID": "q1", "question": "What is 2+2?", "ground_truth": "4",
        "history": [
            {"content": "What is 2+2?", "name": "user", "role": "user", "step": 0},
            {"content": "5", "name": "Solver", "role": "assistant", "step": 1},
            {"content": "Looks right", "name": "Checker", "role": "assistant", "step": 2},
        ],
        "mistake_agent": "Solver", "mistake_step": 1, "mistake_reason": "2+2 is 4",
    }
    base.update(overrides)
    return base


@pytest.fixture(scope="module")
def whowhen() -> list[Trajectory]:
    items = [t for _, t in iter_whowhen_dir(DATA)]
    assert all(isinstance(t, Trajectory) for t in items)
    return items


def test_row_to_trajectory_keeps_steps_and_label() -> None:
    trajectory = from_row(row(), where="x", default_source="injection")
    assert trajectory.id == "q1" and trajectory.task == "What is 2+2?" and trajectory.ground_truth == "4"
    assert [(s.index, s.agent, s.role, s.content) for s in trajectory.steps] == [
        (0, "user", "user", "What is 2+2?"), (1, "Solver", "assistant", "5"), (2, "Checker", "assistant", "Looks right")]
    label = trajectory.labels[0]
    assert (label.agent, label.step, label.reason, label.source) == ("Solver", 1, "2+2 is 4", "injection")


def test_label_source_column_wins_over_the_default() -> None:
    trajectory = from_row(row(mistake_source="human"), where="x")
    assert trajectory.labels[0].source == "human"
    assert to_row(trajectory)["mistake_source"] == "human"


def test_one_based_step_numbers_map_to_positions_and_back() -> None:
    history = [dict(h, step=h["step"] + 1) for h in row()["history"]]
    trajectory = from_row(row(history=history, mistake_step="2"), where="x")
    assert trajectory.labels[0].step == 1 and trajectory.steps[1].agent == "Solver"
    back = to_row(trajectory)
    assert [h["step"] for h in back["history"]] == [1, 2, 3] and back["mistake_step"] == 2


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_whowhen_through_tracertraj_files_keeps_every_row(whowhen: list[Trajectory], tmp_path: Path,
                                                         suffix: str) -> None:
    path = tmp_path / f"rows.{suffix}"
    assert write_tracertraj(whowhen, path) == 136
    back = read_tracertraj(path, default_source="counterfactual")
    assert len(back) == 136
    for original, again in zip(whowhen, back, strict=True):
        assert to_row(again) == to_row(original)
        assert [s.agent for s in again.steps] == [s.agent for s in original.steps]
        assert again.labels[0].step == original.human_label.step
        assert again.labels[0].source == "human"  # the source column survived


def test_parquet_has_the_tracertraj_columns(whowhen: list[Trajectory], tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    write_tracertraj(whowhen[:5], path)
    table = pq.read_table(path)
    assert set(COLUMNS) <= set(table.column_names)
    first = table.slice(0, 1).to_pylist()[0]
    assert set(first["history"][0]) == {"content", "name", "role", "step"}
    assert isinstance(first["mistake_step"], int)


def test_tracertraj_file_round_trip_is_exact(tmp_path: Path) -> None:
    rows = [row(question_ID=f"q{i}", mistake_source="counterfactual") for i in range(700)]  # several batches
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trajectories = read_tracertraj(source)
    write_tracertraj(trajectories, tmp_path / "out.parquet")
    write_tracertraj(read_tracertraj(tmp_path / "out.parquet"), tmp_path / "out.jsonl")
    assert [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()] == rows


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
@pytest.mark.parametrize("truth", [{"answer": 4, "units": ["m"]}, [1, "2"], 4, 2.5, True, "4", "", None])
def test_ground_truth_keeps_its_type_through_files(tmp_path: Path, suffix: str, truth: object) -> None:
    path = tmp_path / f"x.{suffix}"
    write_tracertraj([from_row(row(ground_truth=truth), where="x")], path)
    (back,) = read_tracertraj(path)
    assert back.ground_truth == truth and type(back.ground_truth) is type(truth)


def test_ground_truth_json_that_is_not_json_names_the_row(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="ground_truth_json.*not JSON"):
        from_row(row(ground_truth_json="{oops"), where="rows.parquet: row 3")


def test_extra_jsonl_columns_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(row(level=3, history=[dict(h, tokens=7) for h in row()["history"]])) + "\n")
    (trajectory,) = read_tracertraj(path)
    out = to_row(trajectory)
    assert out["level"] == 3 and out["history"][0]["tokens"] == 7


def test_repeated_question_ids_get_distinct_trajectory_ids(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text((json.dumps(row()) + "\n") * 3)
    ids = [t.id for t in read_tracertraj(path)]
    assert ids == ["q1", "q1#2", "q1#3"]
    assert {to_row(t)["question_ID"] for t in read_tracertraj(path)} == {"q1"}


def test_export_any_labelled_trajectory() -> None:
    trajectory = Trajectory(id="run-1", task="t", steps=[Step(index=0, agent="a", content={"x": 1}),
                                                         Step(index=1, agent="b", content="ok")],
                            labels=[Verdict(agent="b", step=1, reason="r", source="counterfactual")])
    out = to_row(trajectory)
    assert out["question_ID"] == to_row(trajectory.model_copy(update={"id": "run-2"}))["question_ID"]  # the task's
    assert str(out["question_ID"]).startswith("task:") and out["mistake_agent"] == "b" and out["mistake_step"] == 1
    assert out["trajectory_id"] == "run-1"  # (the run's own id, which question_ID no longer gives back)
    assert out["history"][0]["content"] == '{"x": 1}'
    assert out["mistake_source"] == "counterfactual"
    traced = trajectory.model_copy(update={"metadata": {"question_id": "mbpp-12"}})  # (trace --tasks keeps row ids)
    assert to_row(traced)["question_ID"] == "mbpp-12"
    alone = to_row(trajectory.model_copy(update={"task": None}))  # no task: the run is its own task
    assert alone["question_ID"] == "run-1" and "trajectory_id" not in alone


def test_runs_of_one_task_come_back_with_their_own_ids(tmp_path: Path) -> None:
    runs = [Trajectory(id=f"run-{i}", task="the same task", steps=[Step(index=0, agent="a", content=f"try {i}")],
                       labels=[Verdict(agent="a", step=0, source="counterfactual")]) for i in range(3)]
    for suffix in ("parquet", "jsonl"):
        path = tmp_path / f"rows.{suffix}"
        write_tracertraj(runs, path)
        back = read_tracertraj(path)
        assert [t.id for t in back] == ["run-0", "run-1", "run-2"]
        assert len({t.metadata["question_id"] for t in back}) == 1
        write_tracertraj(back, tmp_path / f"again.{suffix}")  # (read rows give their ids back: written as read)
        assert [t.id for t in read_tracertraj(tmp_path / f"again.{suffix}")] == ["run-0", "run-1", "run-2"]


def test_a_repeated_questions_runs_keep_their_ids_in_any_order(tmp_path: Path) -> None:
    """``Q#2`` exported before ``Q`` came back as ``Q`` (the reader numbers a question's rows as it meets them)."""
    def run(run_id: str, text: str) -> Trajectory:
        return Trajectory(id=run_id, task="the task", metadata={"question_id": "Q"},
                          steps=[Step(index=0, agent="a", content=text)],
                          labels=[Verdict(agent="a", step=0, source="counterfactual")])

    for suffix in ("parquet", "jsonl"):
        path = tmp_path / f"rows.{suffix}"
        write_tracertraj([run("Q#2", "second run"), run("Q", "first run")], path)
        assert [(t.id, t.steps[0].content) for t in read_tracertraj(path)] == [("Q#2", "second run"), ("Q", "first run")]


def test_a_tracers_verdict_is_exported_as_the_truth_only_when_asked_for() -> None:
    """``agentracer locate -o`` keeps its verdict as a run's first label: exporting training data must not turn
    that guess into the mistake label over the human one (as ``train prepare`` never does)."""
    guess, truth = Verdict(agent="a", step=0, source="tracer"), Verdict(agent="b", step=1, source="human")
    trajectory = Trajectory(id="run-2", task="t", steps=[Step(index=0, agent="a", content="x"),
                                                         Step(index=1, agent="b", content="y")],
                            labels=[guess, truth])
    assert (to_row(trajectory)["mistake_agent"], to_row(trajectory)["mistake_source"]) == ("b", "human")
    assert to_row(trajectory, source="tracer")["mistake_agent"] == "a"
    guessed_only = trajectory.model_copy(update={"labels": [guess]})
    with pytest.raises(InputError, match="no label .*human, counterfactual or injection"):
        to_row(guessed_only)
    assert to_row(guessed_only, source="tracer")["mistake_source"] == "tracer"


def test_export_without_a_label_is_an_error_unless_allowed() -> None:
    trajectory = Trajectory(id="u", steps=[Step(index=0, agent="a", content="x")])
    with pytest.raises(InputError, match="trajectory u"):
        to_row(trajectory)
    with pytest.raises(InputError, match="human"):
        to_row(trajectory.model_copy(update={"labels": [Verdict(agent="a", step=0, source="tracer")]}),
               source="human")
    assert to_row(trajectory, require_label=False)["mistake_agent"] is None


@pytest.mark.parametrize(("bad", "field"), [
    ({"history": "nope"}, "history"),
    ({"history": [{"name": "a"}]}, "history[0]"),
    ({"history": [{"content": "x", "step": "one"}]}, "step"),
    ({"mistake_step": 9}, "mistake_step"),
    ({"mistake_step": "x"}, "mistake_step"),
    ({"mistake_agent": None}, "mistake_agent"),
    ({"mistake_source": "oracle"}, "mistake_source"),
])
def test_bad_rows_name_the_row_and_field(bad: dict, field: str) -> None:
    with pytest.raises(InputError) as info:
        from_row(row(**bad), where="f.parquet: row 4")
    assert str(info.value).startswith("f.parquet: row 4") and field in str(info.value)


def test_bad_rows_are_reported_and_the_rest_still_read(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(row()) + "\n{not json\n" + json.dumps(row(question_ID="q2", history=3)) + "\n"
                    + json.dumps(row(question_ID="q3")) + "\n")
    items = list(iter_tracertraj(path))
    good = [t.id for _, t in items if isinstance(t, Trajectory)]
    bad = [str(e) for _, e in items if isinstance(e, InputError)]
    assert good == ["q1", "q3"]
    assert bad[0].startswith(f"{path}:2") and bad[1].startswith(f"{path}:3") and "history" in bad[1]


def test_a_file_that_is_not_parquet_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1 garbage")
    with pytest.raises(InputError, match="x.parquet"):
        read_tracertraj(path)


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_rows_without_step_numbers_keep_their_label_through_files(tmp_path: Path, suffix: str) -> None:
    history = [{k: v for k, v in h.items() if k != "step"} for h in row()["history"]]
    first = from_row(row(history=history), where="x")
    path = tmp_path / f"x.{suffix}"
    write_tracertraj([first], path)
    (back,) = read_tracertraj(path)
    assert (back.labels[0].agent, back.labels[0].step) == ("Solver", 1)
    assert to_row(back)["mistake_step"] == 1


def test_a_label_on_no_step_is_not_exported_as_a_row_import_would_refuse() -> None:
    label = Verdict(agent="a", step=0, source="human")
    with pytest.raises(ValueError, match="labels.0..step 0 is outside the 0 steps"):
        Trajectory(id="e", steps=[], labels=[label])  # a run with no step has no step to blame
    empty = Trajectory.model_construct(id="e", steps=[], labels=[label], metadata={}, task=None, ground_truth=None)
    with pytest.raises(InputError, match="step 0, but the run has 0 step"):
        to_row(empty)


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_a_step_without_content_keeps_none(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"x.{suffix}"
    run = Trajectory(id="r", steps=[Step(index=0, agent="a", content=None), Step(index=1, agent="b", content="")],
                     labels=[Verdict(agent="b", step=1, source="counterfactual")])
    write_tracertraj([run], path)
    (back,) = read_tracertraj(path)
    assert [s.content for s in back.steps] == [None, ""]


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_whowhen_subsets_survive_tracertraj_files(whowhen: list[Trajectory], tmp_path: Path, suffix: str) -> None:
    from agentracer.tracer.evaluation import iter_items

    path = tmp_path / f"rows.{suffix}"
    write_tracertraj(whowhen, path)
    subsets = Counter(item.subset for item in iter_items(path))
    assert subsets == Counter(t.metadata["subset"] for t in whowhen)
    assert set(subsets) == {"Hand-Crafted", "Algorithm-Generated"}


def test_a_row_that_is_not_utf8_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(json.dumps(row()).encode() + b"\n" + b"\xff\xfe" + json.dumps(row())[2:].encode() + b"\n")
    (first, second) = list(iter_tracertraj(path))
    assert isinstance(first[1], Trajectory) and isinstance(second[1], InputError)
    assert "not valid UTF-8" in str(second[1]) and "rows.jsonl:2" in str(second[1])


def test_a_numeric_question_id_and_an_empty_name_are_written_back_as_they_were(tmp_path: Path) -> None:
    original = row(question_ID=17, mistake_source="human",
                   history=[dict(h, name="") if h["step"] == 0 else h for h in row()["history"]])
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(original) + "\n")
    write_tracertraj(read_tracertraj(path), tmp_path / "out.jsonl")
    assert json.loads((tmp_path / "out.jsonl").read_text()) == original


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_a_write_that_fails_leaves_the_file_as_it_was(tmp_path: Path, suffix: str) -> None:
    labelled = [Trajectory(id=f"r{i}", task="t", steps=[Step(index=0, agent="a", content="x")],
                           labels=[Verdict(agent="a", step=0, source="human")]) for i in range(2)]
    path = tmp_path / f"rows.{suffix}"
    assert write_tracertraj(labelled, path) == 2
    before = path.read_bytes()
    unlabelled = Trajectory(id="u", task="t", steps=[Step(index=0, agent="a", content="x")])
    with pytest.raises(InputError, match="label"):
        write_tracertraj([labelled[0], unlabelled], path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
    assert write_tracertraj([], path) == 0 and read_tracertraj(path) == []  # an empty export is a file still


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_a_runs_outcome_survives_the_rows(tmp_path: Path, suffix: str) -> None:
    """The tracer's prompt shows the environment's feedback: rows without the outcome gave `train prepare` other
    prompts from a TracerTraj export than from the store it came from."""
    from agentracer.schema import Outcome
    from agentracer.tracer import build_messages

    run = Trajectory(id="r", task="t", steps=[Step(index=0, agent="a", content="x")],
                     outcome=Outcome(success=False, feedback="answer '34' is wrong", answer="34"),
                     labels=[Verdict(agent="a", step=0, source="counterfactual")])
    path = tmp_path / f"rows.{suffix}"
    write_tracertraj([run], path)
    (back,) = read_tracertraj(path)
    assert back.outcome == run.outcome
    assert build_messages(back, with_ground_truth=False) == build_messages(run, with_ground_truth=False)
    bad = dict(to_row(run), outcome_json="{not json")
    with pytest.raises(InputError, match="outcome_json"):
        from_row(bad, where="x")


def test_an_output_with_a_long_name_is_written(tmp_path: Path) -> None:
    """The atomic writer's temporary name grew a thread id and no longer fit 255 bytes for names of ~224 and more."""
    run = Trajectory(id="r", task="t", steps=[Step(index=0, agent="a", content="x")],
                     labels=[Verdict(agent="a", step=0, source="human")])
    path = tmp_path / ("n" * 240 + ".jsonl")
    assert write_tracertraj([run], path) == 1 and len(read_tracertraj(path)) == 1


def test_secrets_a_tracertraj_row_holds_are_redacted_on_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentracer.formats.tracertraj import from_row

    monkeypatch.setenv("MY_SERVICE_TOKEN", "live-token-0123456789")
    row = {"question_ID": "q1", "question": "use live-token-0123456789", "ground_truth": "4",
           "history": [{"content": "Authorization: Bearer abcdefghijklmnop0123", "name": "a", "role": "assistant",
                        "step": 0}], "mistake_agent": "a", "mistake_step": 0, "mistake_reason": "leaked"}
    run = from_row(row, where="row 1")
    text = run.to_json()
    assert "live-token-0123456789" not in text and "abcdefghijklmnop0123" not in text
    assert run.task == "use [REDACTED]" and run.labels[0].agent == "a"
