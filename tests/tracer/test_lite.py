"""The CPU tracer at inference: shipped weights, every Who&When file, bad input, no numpy needed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from agentracer.errors import InputError
from agentracer.formats.whowhen import iter_whowhen_dir
from agentracer.schema import Step, Trajectory, Verdict
from agentracer.tracer.lite import LiteModel, LiteTracer, default_weights_path
from agentracer.tracer.lite_features import FEATURE_NAMES, FEATURE_PHRASES, trajectory_features

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"


@pytest.fixture(scope="module")
def whowhen() -> list[Trajectory]:
    items = [t for _, t in iter_whowhen_dir(DATA)]
    assert len(items) == 136 and all(isinstance(t, Trajectory) for t in items)
    return items  # type: ignore[return-value]


@pytest.fixture(scope="module")
def tracer() -> LiteTracer:
    return LiteTracer()


def test_shipped_weights_are_small_and_match_the_features() -> None:
    path = default_weights_path()
    assert path.is_file() and path.stat().st_size < 1_000_000
    document = json.loads(path.read_text())
    assert document["features"] == list(FEATURE_NAMES)
    model = LiteModel.load()
    assert any(abs(c) > 1e-3 for c in model.without_gt.coef)
    # the shipped cross-validation report covers the whole development split, per subset
    baselines = document["cv"]["baselines"]
    repeats = document["cv"]["repeats"]
    assert baselines["Algorithm-Generated"]["n"] == 126 * repeats
    assert baselines["Hand-Crafted"]["n"] == 10 * repeats


@pytest.mark.parametrize("with_gt", [False, True])
def test_predicts_a_valid_agent_and_step_for_every_file(whowhen, tracer, with_gt) -> None:
    for trajectory in whowhen:
        verdict = tracer.locate(trajectory, with_ground_truth=with_gt)
        assert isinstance(verdict, Verdict) and verdict.source == "tracer"
        assert 0 <= verdict.step < len(trajectory.steps)
        assert verdict.agent == trajectory.steps[verdict.step].agent
        assert 0.0 < verdict.confidence <= 1.0
        assert verdict.reason and f"step {verdict.step}" in verdict.reason
        assert verdict.metadata["method"] == "lite"
        for name, lift in verdict.metadata["drivers"]:
            assert FEATURE_PHRASES[name] in verdict.reason and lift > 0
        assert Verdict.model_validate_json(verdict.model_dump_json()) == verdict  # a stored verdict is the same


def test_shipped_model_beats_the_sanity_baselines_on_the_development_split(whowhen, tracer) -> None:
    # in-sample (the shipped model saw these files): a floor that catches a broken model, not its accuracy
    ag = [t for t in whowhen if t.metadata["subset"] == "Algorithm-Generated"]
    hits = sum(tracer.locate(t).step == t.human_label.step for t in ag)
    random_step = sum(1 / len(t.steps) for t in ag)
    assert hits > 2 * random_step


def test_alocate_matches_locate(whowhen, tracer) -> None:
    trajectory = whowhen[0]
    assert asyncio.run(tracer.alocate(trajectory)) == tracer.locate(trajectory)


def test_ground_truth_changes_only_the_ground_truth_features(whowhen) -> None:
    trajectory = next(t for t in whowhen if t.ground_truth)
    without = trajectory_features(trajectory, with_ground_truth=False)
    with_gt = trajectory_features(trajectory, with_ground_truth=True)
    gt_columns = [i for i, name in enumerate(FEATURE_NAMES) if name.startswith(("gt_", "final_misses"))]
    assert all(row[i] == 0 for row in without for i in gt_columns)
    other = [i for i in range(len(FEATURE_NAMES)) if i not in gt_columns]
    assert [[r[i] for i in other] for r in without] == [[r[i] for i in other] for r in with_gt]


def test_error_features_follow_the_text() -> None:
    steps = [Step(index=0, agent="Coder", content="```python\nprint(1)\n```"),
             Step(index=1, agent="Computer_terminal", content="exitcode: 1 (execution failed)\nTraceback ..."),
             Step(index=2, agent="Orchestrator", content="FINAL ANSWER: 42")]
    rows = trajectory_features(Trajectory(steps=steps))
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    assert rows[0][col["has_code"]] == 1 and rows[0][col["next_fails"]] == 1
    assert rows[1][col["kw_exit_fail"]] == 1 and rows[1][col["agent_tool_runner"]] == 1
    assert rows[2][col["agent_orchestrator"]] == 1 and rows[2][col["first_final_answer"]] == 1
    assert rows[0][col["first_worker_step"]] == 1 and rows[0][col["is_first"]] == 1


def test_bad_input_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(InputError, match="no steps"):
        LiteTracer().locate(Trajectory())
    with pytest.raises(TypeError, match="unknown options"):
        LiteTracer(temperture=0.1)
    with pytest.raises(TypeError, match="uses no model"):
        LiteTracer(model="openai:http://x/v1@m")
    with pytest.raises(ValueError, match="decode"):
        LiteTracer(decode="best")
    bad = tmp_path / "w.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(InputError, match="weights"):
        LiteTracer(weights=bad)
    bad.write_text("not json")
    with pytest.raises(InputError, match="cannot read"):
        LiteTracer(weights=bad)
    LiteTracer(concurrency=8, model=None)  # generic runner options are accepted and ignored


@pytest.mark.parametrize("change", ["scale0", "nan", "dict", "text", "features-null", "features-int", "deep"])
def test_weights_that_cannot_score_are_refused_naming_the_file(tmp_path, change) -> None:
    data = json.loads(default_weights_path().read_text())
    scorer = data["models"]["without_gt"]
    if change == "scale0":
        scorer["scale"][0] = 0
    elif change == "nan":
        scorer["coef"][3] = float("nan")
    elif change == "dict":
        scorer["coef"] = {str(i): v for i, v in enumerate(scorer["coef"])}
    elif change == "text":
        scorer["coef"] = "0" * len(scorer["coef"])
    elif change == "features-null":
        data["features"] = None
    elif change == "features-int":
        data["features"] = 7
    weights = tmp_path / "w.json"
    weights.write_text("[" * 100_000 + "]" * 100_000 if change == "deep" else json.dumps(data))
    with pytest.raises(InputError, match="w.json"):
        LiteTracer(weights=weights)


def test_a_short_step_lifted_by_its_shortness_is_not_called_the_longest(tracer) -> None:
    run = Trajectory(task="q", steps=[Step(index=0, agent="a", content="x"), Step(index=1, agent="b", content="error")])
    verdict = tracer.locate(run)
    assert verdict.step == 0 and "an error in the next step" in verdict.reason  # (the shorter step is chosen)
    assert "longest content" not in verdict.reason


def test_a_blank_ground_truth_is_no_ground_truth(tracer) -> None:
    run = Trajectory(task="q", ground_truth="   ", steps=[Step(index=0, agent="a", content="x"),
                                                           Step(index=1, agent="b", content="y")])
    verdict = tracer.locate(run, with_ground_truth=True)
    assert verdict.metadata["with_ground_truth"] is False
    assert verdict == tracer.locate(run.model_copy(update={"ground_truth": None}), with_ground_truth=True)


def test_decode_step_takes_the_single_likeliest_step(whowhen) -> None:
    trajectory = whowhen[-1]
    verdict = LiteTracer(decode="step").locate(trajectory)
    best = verdict.metadata["top_steps"][0]
    assert verdict.step == best[0] and verdict.confidence == best[1]


def test_inference_needs_neither_numpy_nor_sklearn() -> None:
    code = (
        "import sys\n"
        "from agentracer.formats.whowhen import iter_whowhen_dir\n"
        "from agentracer.tracer.lite import LiteTracer\n"
        f"rel, t = next(iter_whowhen_dir({str(DATA / 'Hand-Crafted')!r}))\n"
        "v = LiteTracer().locate(t, with_ground_truth=True)\n"
        "bad = [m for m in ('numpy', 'scipy', 'sklearn') if m in sys.modules]\n"
        "print(v.agent, v.step, bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_reason_names_only_features_the_step_has(tracer) -> None:
    """A short run opening with the user's task: the absence of 'taken by the human/user' lifted the chosen step
    against the average, and the reason said the step was taken by the human/user."""
    from agentracer.schema import Step, Trajectory

    run = Trajectory(id="r", task="plan a trip", steps=[Step(index=0, agent="user", role="user", content="plan a trip"),
                                                         Step(index=1, agent="alice", content="Trip planned.")])
    verdict = tracer.locate(run)
    assert verdict.agent == "alice" and verdict.step == 1
    assert "human/user" not in verdict.reason
    assert all(name != "agent_human" for name, _ in verdict.metadata["drivers"])
