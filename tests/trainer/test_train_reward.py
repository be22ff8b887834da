"""The paper's reward on a table of answers: exact hits, near misses, malformed formats, unknown agents."""

from __future__ import annotations

import json
import math
import re

import pytest
from agentracer.trainer.reward import compute_score, known_agents, parse_answer

GT = {"agent": "WebSurfer", "step": 12, "agents": ["Orchestrator", "WebSurfer", "Assistant"]}


def paper(agent_ok: float, distance: int, lam: float = 0.5, sigma: float = 1.0) -> float:
    return lam * agent_ok + (1 - lam) * math.exp(-(distance**2) / (2 * sigma**2))


CASES = [
    # exact hits
    ("<think>the search query was wrong</think><answer>WebSurfer|12</answer>", 1.0, 1.0),
    ("  <think>\nmulti\nline\n</think>\n<answer> WebSurfer | 12 </answer>\n", 1.0, 1.0),
    ("<think>x</think><answer>websurfer|12</answer>", 1.0, 1.0),
    ("<think>x</think><answer>WEBSURFER|12</answer>", 1.0, 1.0),
    # near misses
    ("<think>x</think><answer>WebSurfer|13</answer>", paper(1, 1), 1.0),
    ("<think>x</think><answer>WebSurfer|10</answer>", paper(1, 2), 1.0),
    ("<think>x</think><answer>Orchestrator|12</answer>", paper(0, 0), 1.0),
    ("<think>x</think><answer>Orchestrator|10</answer>", paper(0, 2), 1.0),
    ("<think>x</think><answer>assistant|40</answer>", paper(0, 28), 1.0),
    # malformed
    ("", 0.0, 0.0),
    ("<answer>WebSurfer|12</answer>", 0.0, 0.0),
    ("<think>x</think>", 0.0, 0.0),
    ("<think>x</think><answer>WebSurfer 12</answer>", 0.0, 0.0),
    ("<think>x</think><answer>WebSurfer|twelve</answer>", 0.0, 0.0),
    ("<think>x</think><answer>WebSurfer|12.0</answer>", 0.0, 0.0),
    ("<think>x</think><answer>WebSurfer|12|3</answer>", 0.0, 0.0),
    ("<answer>WebSurfer|12</answer><think>x</think>", 0.0, 0.0),
    ("<think>x</think><think>y</think><answer>WebSurfer|12</answer>", 0.0, 0.0),
    ("<think>x</think><answer>WebSurfer|12</answer><answer>WebSurfer|12</answer>", 0.0, 0.0),
    ("<think>x</think>extra<answer>WebSurfer|12</answer>", 0.0, 0.0),
    ("<think>x</think><answer>WebSurfer|12</answer> trailing", 0.0, 0.0),
    ("<think>x<answer>WebSurfer|12</answer></think>", 0.0, 0.0),
    ("<think>x</think><answer>|12</answer>", 0.0, 0.0),
    ("<think>x</think><answer>WebSurfer|-1</answer>", 0.0, 0.0),  # not a step index (the tracer's parser agrees)
    ("<think>x</think><answer>WebSurfer|+12</answer>", 0.0, 0.0),
    ("<think>x</think><answer>WebSurfer|１２</answer>", 0.0, 0.0),  # full-width digits
    ("<think>x</think><answer>WebSurfer|" + "9" * 5000 + "</answer>", 0.0, 0.0),  # int() refuses 4,300+ digits
    # unknown agents
    ("<think>x</think><answer>Nobody|12</answer>", 0.0, 0.0),
    ("<think>x</think><answer>Web Surfer|12</answer>", 0.0, 0.0),
]


@pytest.mark.parametrize(("text", "expected", "fmt"), CASES)
@pytest.mark.parametrize("as_json", [False, True])
def test_reward_table(text: str, expected: float, fmt: float, as_json: bool) -> None:
    truth = json.dumps(GT) if as_json else GT
    result = compute_score("agentracer/whowhen", text, truth)
    assert result["score"] == pytest.approx(expected, abs=1e-9)
    assert result["format"] == fmt
    assert result["score"] == pytest.approx(0.5 * result["agent"] + 0.5 * result["step"], abs=1e-9) or fmt == 0


def test_agents_as_dict_and_as_json_string_inside_ground_truth() -> None:
    as_dict = {**GT, "agents": {"Orchestrator": "plans", "WebSurfer": "browses"}}
    as_text = {**GT, "agents": json.dumps(GT["agents"])}
    for truth in (as_dict, as_text):
        assert compute_score("x", "<think>x</think><answer>Orchestrator|12</answer>", truth)["score"] == 0.5
        assert compute_score("x", "<think>x</think><answer>Nobody|12</answer>", truth)["score"] == 0.0


def test_label_agent_counts_as_known_even_with_an_agent_list_that_lacks_it() -> None:
    truth = {"agent": "Coder", "step": 2, "agents": ["Planner"]}
    assert compute_score("x", "<think>x</think><answer>coder|2</answer>", truth)["score"] == 1.0
    assert compute_score("x", "<think>x</think><answer>Critic|2</answer>", truth)["format"] == 0.0


def test_lam_and_sigma_come_from_reward_kwargs() -> None:
    text = "<think>x</think><answer>Orchestrator|14</answer>"
    got = compute_score("x", text, GT, None, lam=0.3, sigma=2.0)["score"]
    assert got == pytest.approx(0.3 * 0 + 0.7 * math.exp(-4 / 8))
    assert compute_score("x", text, GT, {"id": "a"}, some_verl_kwarg=1)["score"] == pytest.approx(paper(0, 2))


@pytest.mark.parametrize("typo", ["lamda", "lambda", "Lam_", "sigm", "sigmas"])
def test_a_misspelt_reward_setting_is_refused_not_trained_with_the_default(typo: str) -> None:
    text = "<think>x</think><answer>Orchestrator|14</answer>"
    with pytest.raises(TypeError, match=f"{typo!r}: did you mean"):
        compute_score("x", text, GT, None, **{typo: 0.9})
    # verl's own keyword arguments still pass through
    kwargs = {"sandbox_fusion_url": None, "concurrent_semaphore": None, "memory_limit_mb": 1024, "return_dict": True}
    assert compute_score("x", text, GT, None, **kwargs)["score"] == pytest.approx(paper(0, 2))


def test_an_agent_name_in_another_unicode_form_is_the_same_agent() -> None:
    import unicodedata

    truth = {"agent": "Rédacteur", "step": 1, "agents": ["Rédacteur", "Critic"]}
    typed = unicodedata.normalize("NFD", "Rédacteur")
    assert typed != "Rédacteur"
    assert compute_score("x", f"<think>x</think><answer>{typed}|1</answer>", truth)["score"] == 1.0


def test_lam_and_sigma_outside_their_ranges_are_refused() -> None:
    text = "<think>x</think><answer>WebSurfer|12</answer>"
    for bad in ({"sigma": 0.0}, {"sigma": -1.0}, {"lam": 2.0}, {"lam": -0.1}):
        with pytest.raises(ValueError, match="0 <= lam <= 1 and sigma > 0"):
            compute_score("x", text, GT, **bad)


def test_parse_and_agent_helpers() -> None:
    assert parse_answer("<think>a</think><answer>Coder|3</answer>") == ("Coder", 3)
    assert parse_answer("<think>a</think><answer>Coder|-1</answer>") is None
    assert parse_answer(None) is None  # type: ignore[arg-type]
    assert known_agents({"agents": "Solo"}) == ["Solo"]
    assert known_agents({}) == []


@pytest.mark.parametrize("name", ["A|B", "Orchestrator (-> WebSurfer)", "<Planner>"])
def test_an_agent_name_with_bars_or_angle_brackets_can_be_answered(name: str) -> None:
    truth = {"agent": name, "step": 3, "agents": [name, "Other"]}
    assert compute_score("x", f"<think>t</think><answer>{name}|3</answer>", truth)["score"] == 1.0
    assert compute_score("x", "<think>t</think><answer>Other|3</answer>", truth)["format"] == 1.0


def test_a_label_agent_with_spaces_around_it_is_still_hit() -> None:
    truth = {"agent": " Excel_Expert ", "step": 2, "agents": [" Excel_Expert ", "Checker"]}
    assert compute_score("x", "<think>t</think><answer>Excel_Expert|2</answer>", truth)["agent"] == 1.0


def test_a_tiny_sigma_gives_a_sharp_step_reward_not_an_error() -> None:
    assert compute_score("x", "<think>t</think><answer>WebSurfer|13</answer>", GT, sigma=1e-200)["step"] == 0.0
    assert compute_score("x", "<think>t</think><answer>WebSurfer|12</answer>", GT, sigma=1e-200)["step"] == 1.0


@pytest.mark.parametrize(("truth", "named"), [({}, "ground_truth['agent']"), ({"agent": "A", "step": None}, "['step']"),
                                              ({"agent": "A", "step": "three"}, "['step']"), ("{not json", "not JSON"),
                                              ({"agent": "A", "step": "²"}, "['step']"),
                                              ({"agent": "A", "step": "٣"}, "['step']"),
                                              ({"agent": "A", "step": -1}, "['step']"),
                                              ({"agent": "A", "step": True}, "['step']")])
def test_a_bad_ground_truth_names_what_is_wrong(truth: object, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        compute_score("x", "<think>t</think><answer>A|1</answer>", truth)


def test_numpy_steps_are_steps_and_settings_that_are_not_numbers_are_named() -> None:
    import numpy as np

    truth = {"agent": "A", "step": np.int64(2), "agents": ["A", "B"]}
    assert compute_score("x", "<think>t</think><answer>A|2</answer>", truth)["score"] == 1.0
    assert compute_score("x", "<think>t</think><answer>A|2</answer>", {**truth, "step": "2"})["score"] == 1.0
    assert compute_score("x", "<think>t</think><answer>B|2</answer>", truth, lam="0.3")["score"] == 0.7  # (hydra)
    for name, value in (("lam", None), ("lam", True), ("sigma", "one"), ("sigma", [1.0]), ("lam", "nan"),
                        ("sigma", float("inf"))):
        with pytest.raises(ValueError, match=f"the reward's {name} must be a number"):
            compute_score("x", "<think>t</think><answer>A|2</answer>", truth, **{name: value})
    assert compute_score("x", "<think>t</think><answer>B|2</answer>", truth, lam=np.float64(1.0))["score"] == 0.0


def test_without_an_agents_list_any_well_formed_name_passes_the_format_gate() -> None:
    """A row that does not list the team's agents cannot tell an unknown name from a wrong one: a wrong agent is
    scored as one (format 1, agent 0, the step's credit), not as a malformed answer."""
    truth = {"agent": "WebSurfer", "step": 12}
    wrong = compute_score("agentracer/whowhen", "<think>x</think><answer>Orchestrator|11</answer>", truth)
    assert (wrong["format"], wrong["agent"]) == (1.0, 0.0) and wrong["score"] == pytest.approx(paper(0, 1))
    assert compute_score("agentracer/whowhen", "<think>x</think><answer>WebSurfer|12</answer>", truth)["score"] == 1.0
    assert compute_score("agentracer/whowhen", "<answer>WebSurfer|12</answer>", truth)["format"] == 0.0


def test_a_rollout_with_a_long_run_of_spaces_scores_at_once() -> None:
    """A pattern's optional spaces around the bar backtracked cubically: 4,000 spaces in an answer took 38 s, and a
    degenerate rollout held up the reward worker and the whole step."""
    truth = {"agent": "a", "step": 1, "agents": '["a"]'}
    run = " " * 20000
    for body in (run, run + "|x", run + "|", "\t" * 20000 + "|"):
        assert compute_score("s", f"<think>x</think><answer>{body}</answer>", truth)["score"] == 0.0
    assert compute_score("s", f"<think>x</think><answer>{run}a{run}|{run}1{run}</answer>", truth)["score"] == 1.0
    assert parse_answer("<think>x</think><answer> \t|3</answer>") is None  # (a blank name is none)


def test_an_agents_list_written_as_one_json_name_is_that_name_not_its_letters() -> None:
    assert known_agents({"agents": '"Expert"'}) == ["Expert"]
    assert compute_score("s", "<think>x</think><answer>E|3</answer>", {"agent": "Expert", "step": 3,
                                                                        "agents": '"Expert"'})["format"] == 0


def test_an_agent_name_written_over_two_lines_is_answered_on_one() -> None:
    truth = {"agent": "Data\nAnalyst", "step": 3, "agents": ["Data\nAnalyst", "Other"]}
    scored = compute_score("x", "<think>t</think><answer>Data Analyst|3</answer>", truth)
    assert scored["format"] == 1.0 and scored["score"] == 1.0
