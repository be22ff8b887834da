"""Training the CPU tracer: it learns, its cross-validation is computed, its weights load."""

from __future__ import annotations

import contextlib
import random
import shutil
from pathlib import Path

import pytest
from agentracer.schema import ReplayInfo, Step, Trajectory, Verdict
from agentracer.store import JsonlStore
from agentracer.tracer.lite import LiteTracer
from agentracer.tracer.lite_train import cross_validate, fit_model, load_examples, main, make_example

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"
AGENTS = ["Planner_Expert", "Coder_Expert", "Computer_terminal", "Checker_Expert"]


def synthetic(count: int, seed: int, *, source: str = "human") -> list[Trajectory]:
    """Runs whose decisive step is the one that makes up its data; everything else is ordinary."""
    rng = random.Random(seed)
    runs = []
    for k in range(count):
        n = rng.randint(6, 10)
        bad = rng.randrange(1, n - 1)
        steps = []
        for i in range(n):
            agent = AGENTS[i % len(AGENTS)]
            text = f"Working on part {i} of the task, looking at the records."
            if i == bad:
                text = "I will assume hypothetical placeholder values for the missing records."
            steps.append(Step(index=i, agent=agent, content=text))
        label = Verdict(agent=steps[bad].agent, step=bad, source=source)  # type: ignore[arg-type]
        runs.append(Trajectory(id=f"syn-{seed}-{k}", steps=steps, labels=[label]))
    return runs


def examples_of(runs: list[Trajectory]):
    return [make_example(t, group=t.id, subset="synthetic") for t in runs]


def test_training_learns_a_signal_and_the_report_is_computed() -> None:
    examples = examples_of(synthetic(40, seed=1))
    report = cross_validate(examples, folds=4, repeats=1, l2=0.1)
    row = report["results"]["without_gt/agent"]["synthetic"]
    assert row["n"] == 40
    assert row["step"] >= 90 and row["agent"] >= 90
    assert report["baselines"]["synthetic"]["random_step"] < 20

    # move every label off the decisive step: the same code must now report a much lower accuracy
    shuffled = synthetic(40, seed=1)
    for run in shuffled:
        wrong = (run.labels[0].step + 1) % len(run.steps)
        run.labels[0] = Verdict(agent=run.steps[wrong].agent, step=wrong, source="human")
    worse = cross_validate(examples_of(shuffled), folds=4, repeats=1, l2=0.1)
    assert worse["results"]["without_gt/agent"]["synthetic"]["step"] < row["step"] - 30


def test_a_model_trained_on_a_small_whowhen_subset_beats_random() -> None:
    examples = load_examples(DATA / "Algorithm-Generated")[:40]
    assert len(examples) == 40
    report = cross_validate(examples, folds=4, repeats=1, l2=0.5)
    row = report["results"]["without_gt/agent"]["Algorithm-Generated"]
    baseline = report["baselines"]["Algorithm-Generated"]
    assert row["n"] == baseline["n"] == 40
    assert row["step"] > baseline["random_step"] + 5


def test_main_writes_weights_the_tracer_loads(tmp_path, capsys) -> None:
    data = tmp_path / "ww" / "Algorithm-Generated"
    data.mkdir(parents=True)
    for name in [f"{i}.json" for i in range(1, 13)]:
        shutil.copy(DATA / "Algorithm-Generated" / name, data / name)
    out = tmp_path / "weights.json"
    assert main(["--data", str(tmp_path / "ww"), "--out", str(out), "--folds", "3", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "cross-validation" in printed and "Algorithm-Generated" in printed
    tracer = LiteTracer(weights=out)
    assert tracer.model.metadata["cv"]["baselines"]["Algorithm-Generated"]["n"] == 12
    run = synthetic(1, seed=5)[0]
    verdict = tracer.locate(run)
    assert 0 <= verdict.step < len(run.steps)


def test_main_reports_missing_data(tmp_path, capsys) -> None:
    assert main(["--data", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_main_refuses_bad_arguments_before_training(tmp_path, capsys) -> None:
    data = tmp_path / "ww" / "Algorithm-Generated"
    data.mkdir(parents=True)
    shutil.copy(DATA / "Algorithm-Generated" / "1.json", data / "1.json")
    labels = tmp_path / "labels.jsonl"
    JsonlStore(labels).extend(synthetic(2, seed=1, source="counterfactual"))
    before = labels.read_bytes()
    for args, said in (([], "no such store"), (["--folds", "1"], "--folds must be at least 2"),
                       (["--repeats", "0"], "--repeats must be at least 1")):
        extra = ["--extra", str(tmp_path / "typo.jsonl")] if not args else []
        with pytest.raises(SystemExit) if args else contextlib.nullcontext():
            code = main(["--data", str(tmp_path / "ww"), *extra, *args, "--out", str(tmp_path / "w.json")])
            assert code == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "typo.jsonl").exists()  # (no empty store made by looking for it)
    code = main(["--data", str(tmp_path / "ww"), "--extra", str(labels), "--out", str(labels), "--no-cv"])
    assert code == 2 and "is training data" in capsys.readouterr().err and labels.read_bytes() == before
    (tmp_path / "folder.json").mkdir()
    assert main(["--data", str(tmp_path / "ww"), "--out", str(tmp_path / "folder.json"), "--no-cv"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_extra_labelled_jsonl_is_used_and_grouped_by_run(tmp_path) -> None:
    runs = synthetic(6, seed=2, source="counterfactual")
    for run in runs[3:]:  # replays of the first run belong to its group
        run.replay = ReplayInfo(parent_id=runs[0].id, step=1)
    runs.append(Trajectory(id="unlabelled", steps=[Step(index=0, agent="A", content="x")]))
    store = JsonlStore(tmp_path / "labelled.jsonl")
    store.extend(runs)
    examples = load_examples(None, [tmp_path / "labelled.jsonl"])
    assert len(examples) == 6
    assert len({e.group for e in examples}) == 3
    model = fit_model(examples, l2=0.1)
    assert model.metadata["l2"] == {"without_gt": 0.1, "with_gt": 0.1}


def test_too_few_trajectories_for_the_folds_is_an_error() -> None:
    from agentracer.errors import InputError

    with pytest.raises(InputError, match="too few"):
        cross_validate(examples_of(synthetic(3, seed=3)), folds=5)


def test_the_penalty_is_chosen_with_each_subset_weighing_the_same(monkeypatch):
    """A penalty better on 100 runs of one subset and far worse on the 6 runs of another is not chosen for its
    pooled hits (so the shipped weights answered the orchestrator on most Hand-Crafted runs)."""
    from agentracer.tracer import lite_train

    examples = [lite_train.Example(None, None, f"big{i}", "big", {}) for i in range(100)]
    examples += [lite_train.Example(None, None, f"small{i}", "small", {}) for i in range(6)]
    position = {id(e): i for i, e in enumerate(examples)}

    def hits(l2, example, setting):  # 2.0: all 100 big runs and 1 small one; 0.5: 90 big runs and all 6 small ones
        i = position[id(example)]
        if l2 == 2.0:
            return float(i <= 100)
        return float(l2 == 0.5 and (i >= 10))

    monkeypatch.setattr(lite_train, "fit", lambda train, setting, l2: l2)
    monkeypatch.setattr(lite_train, "_fast_hits", hits)
    pooled = {l2: sum(hits(l2, e, "with_gt") for e in examples) for l2 in lite_train.L2_GRID}
    assert max(pooled, key=pooled.get) == 2.0  # 101 hits against 96
    assert lite_train.select_l2(examples, "with_gt") == 0.5
