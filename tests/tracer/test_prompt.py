"""The tracer prompt: numbered steps with agents, task, optional G; long runs fitted without renumbering."""

from __future__ import annotations

import re

from agentracer.models.base import estimate_tokens
from agentracer.schema import Step, Trajectory
from agentracer.tracer import build_messages
from agentracer.tracer.prompt import MIN_STEP_CHARS, clip_text, render_steps
from tracer_helpers import make_trajectory


def _user(messages: list[dict]) -> str:
    assert [m["role"] for m in messages] == ["system", "user"]
    return messages[1]["content"]


def test_prompt_has_numbered_steps_agents_task_and_format() -> None:
    trajectory = make_trajectory(["Planner", "Coder", "Planner"])
    text = _user(build_messages(trajectory, with_ground_truth=False))
    assert "Step 0 - Planner: Planner said something at step 0" in text
    assert "Step 2 - Planner:" in text
    assert "- Planner\n- Coder" in text
    assert "What is 2 + 2?" in text
    assert "<think>" in text and "<answer>agent_name|step_number</answer>" in text
    assert "ground truth" not in text.lower()


def test_ground_truth_only_when_asked() -> None:
    trajectory = make_trajectory(["Planner"], ground_truth="forty-two")
    assert "forty-two" in _user(build_messages(trajectory, with_ground_truth=True))
    assert "forty-two" not in _user(build_messages(trajectory, with_ground_truth=False))


def test_environment_feedback_is_shown() -> None:
    trajectory = make_trajectory(["Planner"])
    trajectory.outcome.feedback = "test_add failed: expected 4, got 5"
    assert "expected 4, got 5" in _user(build_messages(trajectory, with_ground_truth=False))


def _long_run(steps: int = 60, chars: int = 5000) -> Trajectory:
    agents = ["Orchestrator", "WebSurfer", "Coder"]
    return Trajectory(id="long", task="task", steps=[
        Step(index=i, agent=agents[i % 3], content=f"BEGIN{i} " + "x" * chars + f" END{i}") for i in range(steps)])


def test_a_300k_character_run_fits_the_budget_with_numbering_intact() -> None:
    trajectory = _long_run()  # 60 steps x 5k chars = 300k characters
    messages = build_messages(trajectory, with_ground_truth=False, max_tokens=16000)
    total = sum(estimate_tokens(m["content"]) for m in messages)
    assert total <= 16000
    text = messages[1]["content"]
    numbers = [int(n) for n in re.findall(r"^Step (\d+) - ", text, re.M)]
    assert numbers == list(range(60))  # every step keeps its header and original number
    assert all(f"BEGIN{i}" in text and f"END{i}" in text for i in range(60))  # head and tail of each step kept
    assert "characters omitted" in text and "Step numbers are the original ones" in text


def test_every_dev_run_fits_the_smallest_budget_the_cli_takes_with_its_task_and_ground_truth() -> None:
    """The task, G and feedback share about a third of a small budget (each was cut at 400 characters, so the
    fixed parts alone were over budgets the CLI took)."""
    from pathlib import Path

    from agentracer.formats.whowhen import iter_whowhen_dir
    from agentracer.tracer.prompt import MIN_PROMPT_TOKENS

    runs = [t for _, t in iter_whowhen_dir(Path(__file__).resolve().parents[2] / "data" / "whowhen")]
    for budget in (MIN_PROMPT_TOKENS, 800):
        for run in runs:
            for with_ground_truth in (True, False):  # (without G the task alone had the task's share: 32 over)
                messages = build_messages(run, with_ground_truth=with_ground_truth, max_tokens=budget)
                assert sum(estimate_tokens(m["content"]) for m in messages) <= budget, (run.id, budget)
                assert "## Task" in messages[1]["content"]
                assert ("## Correct answer" in messages[1]["content"]) is with_ground_truth


def test_short_steps_stay_whole_when_long_ones_are_clipped() -> None:
    steps = [Step(index=0, agent="A", content="short and important"),
             Step(index=1, agent="B", content="y" * 50000), Step(index=2, agent="A", content="also short")]
    rendered = render_steps(steps, budget=2000)
    assert rendered.clipped_steps == [1] and rendered.omitted_steps == []
    assert "short and important" in rendered.text and "also short" in rendered.text
    assert rendered.tokens <= 2000


def test_too_many_steps_omit_the_middle_and_say_so() -> None:
    rendered = render_steps(_long_run(steps=400, chars=400).steps, budget=3000)
    assert rendered.tokens <= 3000
    assert rendered.omitted_steps and 0 not in rendered.omitted_steps and 399 not in rendered.omitted_steps
    first, last = rendered.omitted_steps[0], rendered.omitted_steps[-1]
    assert f"[... steps {first}-{last} omitted to fit the context budget ...]" in rendered.text
    assert "Step 399 - " in rendered.text


def test_a_tokenizer_counts_when_given() -> None:
    calls: list[str] = []

    def words(text: str) -> int:
        calls.append(text)
        return len(text.split())

    messages = build_messages(_long_run(steps=10, chars=3000), with_ground_truth=False, max_tokens=900,
                              tokenizer=words)
    assert calls  # the given counter measured the prompt
    assert sum(words(m["content"]) for m in messages) <= 900


def test_clip_text_keeps_head_and_tail() -> None:
    clipped = clip_text("H" * 100 + "T" * 100, 30)
    assert clipped.startswith("H" * 20) and clipped.endswith("T" * 10) and "170 characters omitted" in clipped
    assert clip_text("short", MIN_STEP_CHARS) == "short"


def test_a_blank_ground_truth_makes_no_correct_answer_section() -> None:
    """Who&When rows hold `ground_truth: ""`: the prompt must not show an empty "correct answer" section."""
    from agentracer.tracer.llm_methods import _BaselineMethod

    for blank in ("", "  \n"):
        trajectory = make_trajectory(["a", "b"], ground_truth=blank)
        user = build_messages(trajectory, with_ground_truth=True)[-1]["content"]
        assert "Correct answer" not in user
        assert "correct answer" not in _BaselineMethod._header(None, trajectory, True)  # type: ignore[arg-type]
    user = build_messages(make_trajectory(["a", "b"], ground_truth="4"), with_ground_truth=True)[-1]["content"]
    assert "## Correct answer (ground truth)\n4" in user


def test_leaving_out_the_middle_keeps_as_many_steps_as_fit() -> None:
    """Maximal: the kept steps fit the budget, and one more (by the same first-and-last rule) would not."""
    import random

    from agentracer.tracer.prompt import MIN_STEP_CHARS, _omit_middle, _render

    def count(text: str) -> int:
        return len(text) // 4 + 1

    rng = random.Random(7)
    for _ in range(150):
        steps = [Step(index=i, agent=rng.choice(["a", "planner"]), content=" ".join(
            rng.choice(["alpha", "x1", "gamma_delta", "z" * 30]) for _ in range(rng.choice([1, 5, 50, 400]))))
            for i in range(rng.randint(3, 60))]
        budget = rng.randint(60, 3000)
        rendered = _omit_middle(steps, budget, count)
        kept = len(steps) - len(rendered.omitted_steps)
        if kept == 1 or not rendered.omitted_steps:
            continue
        assert rendered.tokens <= budget and 0 not in rendered.omitted_steps
        more = kept + 1
        head = (more + 1) // 2
        keep = {s.index for s in steps[:head]} | {s.index for s in steps[len(steps) - (more - head):]}
        text, _, _ = _render(steps, MIN_STEP_CHARS, keep)
        assert count(text) > budget or more >= len(steps)


def test_the_token_estimate_is_generous_for_chinese_digits_and_emoji_too() -> None:
    """Three characters a token whatever the script: 1,650 Chinese characters (1,500 tokens in a byte-level BPE)
    were 551, 200 emoji (400) were 67; verl then dropped the prompts it found over its limit without a word."""
    assert estimate_tokens("中" * 1650) >= 1500 and estimate_tokens("😀" * 200) >= 400
    assert estimate_tokens("1234567890" * 10) >= 100  # (Qwen's tokenizer splits numbers into digits)
    english = "the agent opened the wrong file and reported it as done " * 20
    assert len(english) / 3 <= estimate_tokens(english) <= len(english) / 3 + 1


def test_a_budget_no_step_fits_keeps_the_last_step_and_marks_the_gap() -> None:
    """The last resort showed step 0 alone with no marker for the steps left out."""
    steps = _long_run(steps=5, chars=2000).steps
    for rendered in (render_steps(steps, budget=10), render_steps(steps, budget=90)):
        assert rendered.omitted_steps == [0, 1, 2, 3]
        assert rendered.text.startswith("[... steps 0-3 omitted to fit the context budget ...]\nStep 4 - ")
    two = render_steps(steps, budget=10, min_steps=2)
    assert two.omitted_steps == [1, 2, 3] and "Step 0 - " in two.text and "Step 4 - " in two.text
