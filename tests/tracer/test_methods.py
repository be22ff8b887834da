"""Attribution methods end to end: each asks a real loopback server (or none) and returns a Verdict."""

from __future__ import annotations

import re

import pytest
from agentracer.errors import InputError
from agentracer.schema import Trajectory
from agentracer.testing.openai_server import OpenAIServer
from agentracer.tracer import AnswerError, get_method, locate
from agentracer.tracer.llm_methods import read_yes_no
from tracer_helpers import make_trajectory

AGENTS = ["Planner", "Coder", "Tester", "Coder", "Tester", "Planner", "Coder", "Tester"]


def _model(server: OpenAIServer) -> str:
    return f"openai:{server.base_url}@tracer"


def test_agentracer_method_parses_the_models_answer() -> None:
    with OpenAIServer("<think>the coder used the wrong formula</think><answer>coder|3</answer>") as server:
        method = get_method("agentracer", _model(server))
        verdict = method.locate(make_trajectory(AGENTS), with_ground_truth=True)
        prompt = server.requests[0]["messages"][1]["content"]
    assert (verdict.agent, verdict.step, verdict.source) == ("Coder", 3, "tracer")
    assert verdict.reason == "the coder used the wrong formula" and verdict.metadata["strict"] is True
    assert verdict.raw.startswith("<think>") and verdict.metadata["usage"]["prompt_tokens"] > 0
    assert "Step 7 - Tester:" in prompt and "## Correct answer" in prompt


def test_agentracer_garbage_answer_is_an_answer_error_with_raw() -> None:
    with OpenAIServer("I am not sure, sorry.") as server:
        with pytest.raises(AnswerError) as caught:
            get_method("agentracer", _model(server)).locate(make_trajectory(AGENTS))
    assert caught.value.raw == "I am not sure, sorry."


def test_all_at_once_reads_the_who_and_when_format() -> None:
    with OpenAIServer("Agent Name: Tester\nStep Number: 4\nReason for Mistake: skipped the test") as server:
        verdict = get_method("all-at-once", _model(server)).locate(make_trajectory(AGENTS))
        prompt = server.requests[0]["messages"][1]["content"]
    assert (verdict.agent, verdict.step, verdict.reason) == ("Tester", 4, "skipped the test")
    assert "Agent Name: <name>" in prompt and "The correct answer" not in prompt


def test_step_by_step_stops_at_the_first_yes() -> None:
    def judge(request: dict) -> str:
        asked = int(re.search(r"most recent step is step (\d+)", request["messages"][1]["content"]).group(1))
        return "1. Yes.\n2. Reason: wrong formula" if asked == 3 else "1. No.\n2. Reason: fine"

    with OpenAIServer(judge) as server:
        verdict = get_method("step-by-step", _model(server)).locate(make_trajectory(AGENTS))
        assert len(server.requests) == 4  # steps 0..3, then it stops
        assert "Step 3 - Coder" in server.requests[3]["messages"][1]["content"]
        assert "Step 4 - " not in server.requests[3]["messages"][1]["content"]
    assert (verdict.agent, verdict.step, verdict.reason) == ("Coder", 3, "wrong formula")


@pytest.mark.parametrize("opened", ["<think>", ""])  # (""): an R1 distill's template opens <think> in the prompt
@pytest.mark.parametrize("method", ["step-by-step", "binary-search"])
def test_the_baselines_read_a_reasoning_models_answer_after_its_reasoning(method: str, opened: str) -> None:
    """Qwen3/R1 (or vLLM's reasoning_content, put back as <think>) think first: the verdict is what they conclude."""
    thinking = f"{opened}Yes, a step could be wrong; compare the upper half and the lower half.\n</think>\n\n"

    def answer(request: dict) -> str:
        text = request["messages"][1]["content"]
        asked = re.search(r"most recent step is step (\d+)", text)
        if asked:
            return thinking + ("1. Yes.\n2. Reason: wrong formula" if asked.group(1) == "3" else "1. No.\n2. Reason: ok")
        mid = int(re.search(r"upper half \(steps \d+ to (\d+)\)", text).group(1))
        return thinking + ("upper half" if 3 <= mid else "lower half")

    with OpenAIServer(answer) as server:
        verdict = get_method(method, _model(server)).locate(make_trajectory(AGENTS))
    assert (verdict.agent, verdict.step) == ("Coder", 3) and verdict.flags == []


@pytest.mark.parametrize(("answer", "judged"), [
    ("1. Yes.\n2. Reason: wrong", True), ("1. No.\n2. Reason: fine", False), ("no", False), ("Maybe", None),
    ("1. Yes/No: No", False), ("1. Yes/No: Yes", True),  # (the template's line echoed, then the answer)
    ("Answer: Yes", True), ("1. Answer: Yes", True), ("**Answer:** No", False),
    ("1. Yes/No.\n2. Reason: unsure", None), ("Yesterday", None),  # (the echo alone answers nothing)
])
def test_step_by_step_reads_the_judgement_after_a_label_or_the_templates_echo(answer: str, judged: bool | None) -> None:
    assert read_yes_no(answer) is judged


def test_step_by_step_blames_the_last_step_when_nothing_is_wrong() -> None:
    with OpenAIServer("1. No.\n2. Reason: fine") as server:
        verdict = get_method("step-by-step", _model(server)).locate(make_trajectory(AGENTS))
    assert (verdict.agent, verdict.step) == ("Tester", 7) and "no_error_found" in verdict.flags


def test_binary_search_follows_the_halves() -> None:
    target = 5

    def halves(request: dict) -> str:
        text = request["messages"][1]["content"]
        start, mid = (int(x) for x in re.search(r"upper half \(steps (\d+) to (\d+)\)", text).groups())
        return "upper half" if target <= mid else "lower half"

    with OpenAIServer(halves) as server:
        verdict = get_method("binary-search", _model(server)).locate(make_trajectory(AGENTS))
        assert len(server.requests) == 3  # log2(8)
    assert (verdict.agent, verdict.step) == ("Planner", 5) and verdict.flags == []


def test_binary_search_unclear_answers_are_seeded_and_flagged() -> None:
    with OpenAIServer("no idea") as server:
        first = get_method("binary-search", _model(server), seed=1).locate(make_trajectory(AGENTS))
        second = get_method("binary-search", _model(server), seed=1).locate(make_trajectory(AGENTS))
    assert first.step == second.step and "ambiguous_half" in first.flags


def test_random_is_reproducible_and_consistent() -> None:
    trajectory = make_trajectory(AGENTS)
    verdicts = {get_method("random", seed=s).locate(trajectory).step for s in range(30)}
    assert len(verdicts) > 3  # it does vary with the seed
    one = get_method("random", seed=7).locate(trajectory)
    assert one == get_method("random", seed=7).locate(trajectory)
    assert trajectory.steps[one.step].agent == one.agent


def test_majority_by_step_counts_skips_the_human() -> None:
    trajectory = make_trajectory(["human", "human", "human", "Coder", "Planner", "Coder"])
    verdict = locate(trajectory, method="majority")
    assert (verdict.agent, verdict.step) == ("Coder", 3) and verdict.metadata["by"] == "step counts"


def test_majority_by_reference_labels() -> None:
    references = [make_trajectory(["Planner", "Tester"], id=f"r{i}", label=("Tester", 1)) for i in range(3)]
    references.append(make_trajectory(["Coder"], id="r9", label=("Coder", 0)))
    verdict = get_method("majority", references=references).locate(make_trajectory(AGENTS))
    assert (verdict.agent, verdict.step) == ("Tester", 2) and verdict.metadata["by"] == "label counts"


def test_names_models_and_empty_trajectories() -> None:
    with pytest.raises(InputError, match="unknown attribution method"):
        get_method("oracle")
    with pytest.raises(InputError, match="needs a model"):
        get_method("agentracer")
    assert type(get_method("All_At_Once", "scripted:x")).__name__ == "AllAtOnceMethod"
    with pytest.raises(InputError, match="no steps"):
        locate(Trajectory(id="empty"), method="random")


def test_scripted_model_spec_works_with_the_tracer() -> None:
    verdict = locate(make_trajectory(AGENTS), method="agentracer",
                     model="scripted:<think>t</think><answer>Planner|0</answer>")
    assert (verdict.agent, verdict.step) == ("Planner", 0)


def _long_run() -> Trajectory:
    """12 steps of 3,000 characters, a long task and a long ground truth: a 600-token prompt holds a step or two."""
    trajectory = make_trajectory(["Planner", "Coder", "Tester"] * 4, text="x" * 3000, task="solve " * 600,
                                 ground_truth="42 " * 600)
    return trajectory


@pytest.mark.parametrize("method", ["all-at-once", "step-by-step", "binary-search"])
def test_the_baselines_prompts_fit_the_smallest_budget_and_show_the_steps_they_ask_about(method: str) -> None:
    """The problem and G were never cut (all-at-once went over budget); one step fitting kept the window's first,
    so step-by-step asked about step i showing step 0, and binary search showed no step of one half."""
    from agentracer.models import ScriptedModel
    from agentracer.models.base import estimate_tokens
    from agentracer.tracer.prompt import MIN_PROMPT_TOKENS

    asked: list[str] = []

    def answer(messages: list[dict]) -> str:
        assert sum(estimate_tokens(m["content"]) for m in messages) <= MIN_PROMPT_TOKENS
        text = messages[-1]["content"]
        asked.append(text)
        shown = [int(n) for n in re.findall(r"^Step (\d+) - ", text, re.M)]
        judged = re.search(r"most recent step is step (\d+)", text)
        if judged:
            assert int(judged.group(1)) in shown
            return "1. No."
        halves = re.search(r"upper half \(steps (\d+) to (\d+)\) or the lower half \(steps (\d+) to (\d+)\)", text)
        if halves:
            a, b, c, d = (int(n) for n in halves.groups())
            assert any(a <= n <= b for n in shown) and any(c <= n <= d for n in shown), (shown, a, d)
            return "upper half"
        return "Agent Name: Coder\nStep Number: 4"

    verdict = get_method(method, ScriptedModel(answer), max_prompt_tokens=MIN_PROMPT_TOKENS).locate(
        _long_run(), with_ground_truth=True)
    assert verdict.agent and asked and all("The correct answer to the problem is: 42" in text for text in asked)
