"""parse_answer: the exact format scores, near misses are recovered and flagged, garbage never raises."""

from __future__ import annotations

import time

import pytest
from agentracer.tracer.parse import match_agent, parse_answer, without_reasoning
from agentracer.trainer.reward import compute_score
from hypothesis import given, settings
from hypothesis import strategies as st

AGENTS = ["Orchestrator", "WebSurfer", "FileSurfer", "Computer_terminal"]


def test_exact_format_is_strict() -> None:
    parsed = parse_answer("<think>the surfer clicked the wrong link</think><answer>WebSurfer|3</answer>", AGENTS)
    assert (parsed.agent, parsed.step, parsed.strict, parsed.flags, parsed.error) == ("WebSurfer", 3, True, [], None)
    assert parsed.reason == "the surfer clicked the wrong link"


def test_whitespace_between_blocks_is_still_strict() -> None:
    parsed = parse_answer("<think>\nhmm\n</think>\n\n<answer>WebSurfer | 12</answer>\n", AGENTS)
    assert parsed.strict and parsed.step == 12


def test_agent_names_match_case_insensitively() -> None:
    parsed = parse_answer("<think>x</think><answer>websurfer|3</answer>", AGENTS)
    assert parsed.agent == "WebSurfer" and parsed.strict


@pytest.mark.parametrize("answer", [
    "<think>x</think><answer>\"WebSurfer\"|8</answer>",  # quotes around the name: not a name of the run
    "<think>x</think><answer>Orchestrator (thought)|8</answer>",  # a role suffix
    "<think>x</think><answer>Orchestrator|8</answer><think>again</think>",  # a second reasoning block
    "<think>x</think><answer>Orchestrator|٣</answer>",  # a non-ASCII digit
])
def test_strict_is_the_trainers_format_gate(answer: str) -> None:
    """A verdict is strict exactly when the trainer's reward does not gate it to 0 (one definition for both)."""
    parsed = parse_answer(answer, AGENTS)
    gate = compute_score("who_when", answer, {"agent": "Orchestrator", "step": 8, "agents": AGENTS})["format"]
    assert parsed.strict is (gate == 1.0) is False


def test_strict_answers_pass_the_trainers_format_gate() -> None:
    for answer in ("<think>a|b</think>\n<answer>\nWebSurfer | 8\n</answer>\n", "<think></think><answer>websurfer|0</answer>"):
        gate = compute_score("who_when", answer, {"agent": "Orchestrator", "step": 8, "agents": AGENTS})["format"]
        assert parse_answer(answer, AGENTS).strict is (gate == 1.0) is True


def test_labelled_fields_are_recovered_and_flagged() -> None:
    parsed = parse_answer("Agent Name: **Orchestrator (thought)**\nStep Number: 12\nReason for Mistake: looped",
                          AGENTS)
    assert (parsed.agent, parsed.step, parsed.strict) == ("Orchestrator", 12, False)
    assert {"missing_think", "labelled_fields", "agent_normalised"} <= set(parsed.flags)
    assert parsed.reason == "looped"


def test_extra_text_and_missing_think_are_flagged() -> None:
    parsed = parse_answer("I think it is this one. <answer>FileSurfer|7</answer> Hope that helps!", AGENTS)
    assert (parsed.agent, parsed.step, parsed.strict) == ("FileSurfer", 7, False)
    assert {"missing_think", "extra_text"} <= set(parsed.flags)


def test_bare_pair_and_unclosed_answer() -> None:
    bare = parse_answer("<think>x</think>\nWebSurfer|4", AGENTS)
    assert (bare.agent, bare.step) == ("WebSurfer", 4) and "missing_answer_tags" in bare.flags
    unclosed = parse_answer("<think>x</think><answer>Computer_terminal|2", AGENTS)
    assert (unclosed.agent, unclosed.step) == ("Computer_terminal", 2) and "unclosed_answer" in unclosed.flags


def test_multiple_answers_take_the_last() -> None:
    parsed = parse_answer("<think>a</think><answer>WebSurfer|1</answer><answer>FileSurfer|2</answer>", AGENTS)
    assert (parsed.agent, parsed.step) == ("FileSurfer", 2) and "multiple_answers" in parsed.flags


def test_an_answer_the_reasoning_weighs_is_not_the_answer() -> None:
    weighed = "<think>maybe <answer>WebSurfer|1</answer>? no: FileSurfer broke it</think><answer>FileSurfer|3</answer>"
    parsed = parse_answer(weighed, AGENTS)
    assert (parsed.agent, parsed.step) == ("FileSurfer", 3) and "multiple_answers" not in parsed.flags
    only = parse_answer("<think>maybe <answer>WebSurfer|1</answer> no, FileSurfer at 3</think>", AGENTS)
    assert (only.agent, only.step) == ("WebSurfer", 1) and "answer_in_think" in only.flags  # (taken, and flagged)


def test_a_labelled_step_field_wins_over_a_step_mentioned_in_the_reason() -> None:
    parsed = parse_answer("<think>x</think>Agent Name: WebSurfer\nReason: at step 7 it broke\nStep Number: 3", AGENTS)
    assert (parsed.agent, parsed.step) == ("WebSurfer", 3)


def test_fields_inside_the_answer_block() -> None:
    parsed = parse_answer("<think>a</think><answer>Agent: web surfer, Step: 9</answer>", AGENTS)
    assert (parsed.agent, parsed.step) == ("WebSurfer", 9) and "labelled_fields" in parsed.flags


def test_unknown_agent_is_kept_and_flagged() -> None:
    parsed = parse_answer("<think>x</think><answer>Planner|1</answer>", AGENTS)
    assert parsed.agent == "Planner" and "unknown_agent" in parsed.flags and parsed.ok


def test_step_out_of_range_is_flagged() -> None:
    parsed = parse_answer("<think>x</think><answer>WebSurfer|40</answer>", AGENTS, n_steps=10)
    assert parsed.step == 40 and "step_out_of_range" in parsed.flags


def test_garbage_and_empty_are_errors_not_exceptions() -> None:
    for text in ("", None, "   ", "I cannot tell.", "<answer></answer>", "<think>only thinking"):
        parsed = parse_answer(text, AGENTS)
        assert not parsed.ok and parsed.agent is None and parsed.step is None and parsed.error


def test_match_agent_prefers_the_longest_known_name() -> None:
    assert match_agent("the Computer_terminal agent", AGENTS) == ("Computer_terminal", "agent_fuzzy")
    assert match_agent("'WebSurfer'", AGENTS) == ("WebSurfer", None)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/|:answerthinkAgentStep 0123456789WebSurfer\n*")), max_size=80))
def test_parse_never_raises(text: str) -> None:
    parsed = parse_answer(text, AGENTS)
    assert parsed.ok == (parsed.agent is not None and parsed.step is not None)


def test_a_step_of_thousands_of_digits_or_other_scripts_digits_is_unparsable_not_a_crash() -> None:
    agents = ["WebSurfer", "Orchestrator"]
    huge = parse_answer("<think>x</think><answer>WebSurfer|" + "9" * 5000 + "</answer>", agents)
    assert not huge.ok and huge.step is None and "not a step number" in (huge.error or "")
    arabic = parse_answer("<think>x</think><answer>WebSurfer|٣</answer>", agents)
    assert not arabic.ok
    assert parse_answer("<think>x</think><answer>WebSurfer|3</answer>", agents).step == 3


def test_a_negative_step_is_named_as_such() -> None:
    for text in ("<think>x</think><answer>Computer_terminal|-1</answer>", "Computer_terminal | -3",
                 "<answer>Computer_terminal|step -2</answer>"):
        parsed = parse_answer(text, ["Computer_terminal"])
        assert parsed.step is None and parsed.error is not None and "is not a step number" in parsed.error, text
        assert parsed.error.startswith("step -")
    assert parse_answer("<answer>nothing</answer>", ["A"]).error == "no agent and step found in the answer"
    assert parse_answer("<answer>A|2</answer> -1", ["A"]).step == 2


def test_a_long_run_of_spaces_is_read_in_one_pass_not_backtracked_over() -> None:
    """Stacked optional spaces around the bar and the field labels backtracked over a run of spaces: 200 took 12 s,
    500 never ended (a degenerate rollout, or an indented answer, stalled eval and locate)."""
    run = " " * 5000
    for text in (f"<think>x</think>foo\n{run}\nbar", f"<think>x</think><answer>{run}</answer>",
                 f"<think>x</think>Step{run}x", f"<think>x</think>Agent{run}x", f"<think>x</think>Reason{run}x",
                 f"<think>x</think><answer>a|{run}x -1</answer>", f"<think>x</think><answer>{run}|{run}</answer>",
                 "<think>x</think>Step" + "* " * 2500 + "x"):
        parsed = parse_answer(text, AGENTS)
        assert not parsed.ok and parsed.agent is None
    padded = parse_answer(f"<think>x</think><answer>{run}WebSurfer{run}|{run}3{run}</answer>", AGENTS)
    assert (parsed.ok, padded.agent, padded.step) == (False, "WebSurfer", 3)


def test_an_agent_name_written_over_two_lines_is_answered_on_one_and_listed_so() -> None:
    from agentracer.schema import Step, Trajectory
    from agentracer.tracer.prompt import build_user_prompt

    agents = ["Data\nAnalyst", "Other"]
    parsed = parse_answer("<think>x</think><answer>data  analyst|1</answer>", agents)
    assert (parsed.agent, parsed.strict, parsed.flags) == ("Data\nAnalyst", True, [])
    run = Trajectory(task="t", steps=[Step(index=i, agent=name, content="c") for i, name in enumerate(agents)])
    assert "\n- Data Analyst\n" in build_user_prompt(run, with_ground_truth=False)[0]


@pytest.mark.parametrize(("text", "concluded"), [
    ("<think>hmm</think>\n1. No.", "\n1. No."),
    ("Yes, I should check... the step looks fine.\n</think>\n\n1. No.", "\n\n1. No."),  # (the template opened it)
    ("upper half? </think> lower half <think>or not", " lower half "),
    ("1. Yes. <think>never closed", "1. Yes. "),
])
def test_reasoning_a_chat_template_opened_is_not_the_conclusion(text: str, concluded: str) -> None:
    assert without_reasoning(text) == concluded


def test_an_agent_name_holding_a_bar_is_read_as_the_format_gate_reads_it() -> None:
    """The gate splits at the last ``|`` and passed ``Team|Lead|3``; the parser refused a second bar."""
    text = "<think>x</think><answer>Team|Lead|3</answer>"
    parsed = parse_answer(text, ["Team|Lead", "Coder"], n_steps=5)
    assert (parsed.agent, parsed.step, parsed.strict, parsed.error) == ("Team|Lead", 3, True, None)
    truth = {"agent": "Team|Lead", "step": 3, "agents": ["Team|Lead", "Coder"]}
    assert compute_score("who_when", text, truth)["format"] == 1
    assert parse_answer("Team|Lead | step 3", ["Team|Lead"]).agent == "Team|Lead"  # (a bare line too)


@pytest.mark.parametrize("pair", ["WebSurfer|12.", "WebSurfer | step: 12", "WebSurfer, 12", "WebSurfer (step 12)",
                                  "**WebSurfer**, step 12"])
def test_a_loosely_written_pair_in_the_answer_block_is_recovered_and_flagged(pair: str) -> None:
    parsed = parse_answer(f"<think>x</think><answer>{pair}</answer>", AGENTS, n_steps=20)
    assert (parsed.agent, parsed.step, parsed.strict, parsed.error) == ("WebSurfer", 12, False, None)
    assert parsed.flags == ["loose_pair"]


def test_a_loose_pair_is_read_only_in_an_answer_block_and_in_one_pass() -> None:
    assert not parse_answer("<think>x</think>\nThe steps to compare are 3, 12", AGENTS).ok  # (prose, no answer)
    started = time.perf_counter()
    assert not parse_answer("<answer>WebSurfer," + " " * 200_000 + "x</answer>", AGENTS).ok
    assert time.perf_counter() - started < 2
