"""The AgenTracer prompt: the numbered trajectory with agent names, the task, optionally the ground truth G,
asking for reasoning in ``<think>`` and the verdict as ``<answer>agent|step</answer>``.

The trainer builds its training prompts with ``build_messages``, so training and inference see one prompt.

Long trajectories (Who&When reaches 300k characters) are fitted to a token budget without ever renumbering:

1. If the whole trajectory fits, it is shown as is.
2. Otherwise every step keeps its header (``Step i - agent:``) and long step texts are clipped to a common
   cap (water-filling: short steps stay whole, only the longest are cut). A clipped text keeps its head
   (two thirds) and tail (one third) around a marker ``[... N characters omitted ...]``, because a step's
   decision is usually stated at its start and its result at its end.
3. If even a cap of ``MIN_STEP_CHARS`` per step does not fit (very many steps), whole steps are left out
   from the middle of the run, the first and last steps kept, behind a marker naming the omitted range (room for
   one step only: the last, the step a step-by-step judge asks about).
4. Still over (a small budget), the task, its ground truth and feedback are cut further (``fit_prompt``).

Tokens are counted with the given tokenizer, else a cheap generous estimate (3 characters a token); the
fitting loop re-measures the rendered text with the same counter, so the budget holds for that counter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models.base import estimate_tokens
from ..schema import Step, Trajectory

TokenCounter = Callable[[str], int]

#: A clipped step keeps at least this many characters of its text.
MIN_STEP_CHARS = 160
#: Part of a clipped text kept from its start (the rest comes from its end).
HEAD_SHARE = 2 / 3

SYSTEM_PROMPT = (
    "You are AgenTracer, an expert in failure attribution for LLM multi-agent systems. You read the full log "
    "of a team of agents that failed a task and find the decisive error: the earliest action which, had it "
    "been done right, would have let the team succeed. You name the agent that took that action and the "
    "number of the step where it happened."
)

ANSWER_INSTRUCTIONS = (
    "First reason step by step inside <think></think>. Then give your verdict inside <answer></answer> as "
    "the agent's name exactly as written in the log, a vertical bar, and the step number, with nothing "
    "else:\n<think>your reasoning</think>\n<answer>agent_name|step_number</answer>"
)


MIN_PROMPT_TOKENS = 600
"""The smallest prompt budget the CLI takes: the system prompt, instructions and roster take about 300 tokens, and
the task, its ground truth and the steps need room beside them (a smaller budget gave prompts over it)."""

def counter_from(tokenizer: Any) -> TokenCounter:
    """A token counter from a callable (text → count), a tokenizer with ``encode``, or ``None`` (estimate)."""
    if tokenizer is None:
        return estimate_tokens
    encode = getattr(tokenizer, "encode", None)
    if encode is not None:
        def count(text: str) -> int:
            ids = encode(text)
            return len(getattr(ids, "ids", ids))  # `tokenizers.Encoding` has .ids; HF tokenizers give lists
        return count
    if callable(tokenizer):
        return tokenizer
    raise TypeError(f"cannot count tokens with {type(tokenizer).__name__}; pass a callable or a tokenizer")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def ground_truth_text(trajectory: Trajectory) -> str:
    """The run's ground truth as prompt text; "" when it has none, or one that is only blanks (Who&When rows hold
    ``""``): a prompt then has no empty "correct answer" section."""
    text = _as_text(trajectory.ground_truth)
    return text if text.strip() else ""


def step_header(step: Step) -> str:
    """``Step 3 - WebSurfer:`` (with the framework's role when it adds something, e.g. ``(thought)``)."""
    role = step.role or ""
    detail = f" [{role}]" if role.startswith(step.agent) and role != step.agent else ""
    return f"Step {step.index} - {step.agent}{detail}:"


def clip_text(text: str, cap: int) -> str:
    """``text`` cut to about ``cap`` characters: head and tail around a marker naming what was cut."""
    if len(text) <= cap:
        return text
    head = int(cap * HEAD_SHARE)
    tail = max(0, cap - head)
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[... {omitted} characters omitted ...]\n{text[len(text) - tail:] if tail else ''}"


@dataclass
class RenderedTrajectory:
    """The trajectory as prompt text, with what the budget made us cut."""

    text: str
    tokens: int
    clipped_steps: list[int] = field(default_factory=list)
    omitted_steps: list[int] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return bool(self.clipped_steps or self.omitted_steps)


def _render(steps: Sequence[Step], cap: int | None, keep: set[int] | None = None) -> tuple[str, list[int], list[int]]:
    lines: list[str] = []
    clipped: list[int] = []
    omitted: list[int] = []
    gap: list[int] = []

    def flush_gap() -> None:
        if gap:
            lines.append(f"[... steps {gap[0]}-{gap[-1]} omitted to fit the context budget ...]")
            gap.clear()

    for step in steps:
        if keep is not None and step.index not in keep:
            omitted.append(step.index)
            gap.append(step.index)
            continue
        flush_gap()
        text = _as_text(step.content)
        if cap is not None and len(text) > cap:
            text = clip_text(text, cap)
            clipped.append(step.index)
        lines.append(f"{step_header(step)} {text}")
    flush_gap()
    return "\n".join(lines), clipped, omitted


def render_steps(
    steps: Sequence[Step], *, budget: int | None = None, count_tokens: TokenCounter = estimate_tokens,
    min_steps: int = 1,
) -> RenderedTrajectory:
    """The steps as numbered lines, fitted to ``budget`` tokens (see the module docstring for how). Leaving steps out
    keeps at least ``min_steps`` (the first and last; one alone is the last: the step a step-by-step judge asks
    about), over the budget if need be: the caller then cuts its other parts (``fit_prompt``)."""
    full, _, _ = _render(steps, None)
    full_tokens = count_tokens(full)
    if budget is None or full_tokens <= budget:
        return RenderedTrajectory(full, full_tokens)
    budget = max(1, budget)
    longest = max((len(_as_text(s.content)) for s in steps), default=0)
    chars_per_token = max(1.0, len(full) / max(1, full_tokens))
    char_budget = budget * chars_per_token
    for _ in range(8):  # shrink the character budget until the counted tokens fit
        cap = _largest_cap(steps, char_budget, longest)
        if cap is None:
            break
        text, clipped, omitted = _render(steps, cap)
        tokens = count_tokens(text)
        if tokens <= budget:
            return RenderedTrajectory(text, tokens, clipped, omitted)
        char_budget *= 0.9 * budget / tokens
    return _omit_middle(steps, budget, count_tokens, chars_per_token, min_steps=min_steps)


def _largest_cap(steps: Sequence[Step], char_budget: float, longest: int) -> int | None:
    """The largest per-step cap (≥ MIN_STEP_CHARS) whose rendering fits ``char_budget`` characters."""
    fixed = sum(len(step_header(s)) + 2 for s in steps)
    lengths = [len(_as_text(s.content)) for s in steps]
    marker = 48

    def size(cap: int) -> int:
        return fixed + sum(n if n <= cap else cap + marker for n in lengths)

    if size(MIN_STEP_CHARS) > char_budget:
        return None
    low, high = MIN_STEP_CHARS, max(MIN_STEP_CHARS, longest)
    while low < high:
        mid = (low + high + 1) // 2
        if size(mid) <= char_budget:
            low = mid
        else:
            high = mid - 1
    return low


def _omit_middle(steps: Sequence[Step], budget: int, count_tokens: TokenCounter,
                 chars_per_token: float | None = None, *, min_steps: int = 1) -> RenderedTrajectory:
    """Keep the first and last steps (clipped to ``MIN_STEP_CHARS``), leaving out the middle: as many as the budget
    takes, estimated from the steps' clipped lengths (one rendering, not one per try from all of them down: the
    step-by-step method asks this for every prefix of a long run), then fewer while the counted tokens do not fit."""
    clipped_lengths = [len(step_header(s)) + 2 + min(len(_as_text(s.content)), MIN_STEP_CHARS + 48) for s in steps]
    if chars_per_token is None:  # (render_steps passes the ratio its full rendering measured)
        all_text, _, _ = _render(steps, MIN_STEP_CHARS)
        chars_per_token = max(1.0, len(all_text) / max(1, count_tokens(all_text)))
    room = budget * chars_per_token - 80  # (the omission marker's line)
    kept, used = 0, 0
    for head_position in range(len(steps)):  # alternate first and last steps, as the rendering keeps them
        position = head_position // 2 if head_position % 2 == 0 else len(steps) - 1 - head_position // 2
        used += clipped_lengths[position]
        if used > room:
            break
        kept += 1
    least = max(1, min(min_steps, len(steps)))
    kept = max(least, min(len(steps) - 1, kept))  # (all of them clipped did not fit: render_steps tried that)

    def keeping(count: int) -> RenderedTrajectory:
        head = (count + 1) // 2 if count > 1 else 0  # (one alone: the last, the step a judge is asked about)
        keep = {s.index for s in steps[:head]} | {s.index for s in steps[len(steps) - (count - head):]}
        text, clipped, omitted = _render(steps, MIN_STEP_CHARS, keep)
        return RenderedTrajectory(text, count_tokens(text), clipped, omitted)

    best: RenderedTrajectory | None = None
    tried = keeping(kept)
    if tried.tokens <= budget:  # the estimate fits: take more while they fit (the estimate is from lengths)
        while tried.tokens <= budget and kept < len(steps) - 1:
            best, kept = tried, min(len(steps) - 1, max(kept + 1, int(kept * 1.03)))
            tried = keeping(kept)
        return best if best is not None and tried.tokens > budget else tried
    while kept > least:  # it does not: take fewer, in small steps near the estimate
        kept = max(least, min(kept - 1, int(kept * max(0.97, budget / tried.tokens))))
        tried = keeping(kept)
        if tried.tokens <= budget:
            return tried
    return tried  # (the fewest steps, their gap marked, over the budget: the caller cuts its other parts)


def agent_list(trajectory: Trajectory) -> list[str]:
    """The agents a verdict may name: those that took a step, in order of first appearance."""
    names: list[str] = []
    for step in trajectory.steps:
        if step.agent not in names:
            names.append(step.agent)
    return names or trajectory.agent_names


def _task_block(trajectory: Trajectory, with_ground_truth: bool, char_budget: int | None) -> str:
    """The task, its ground truth and the environment's feedback, sharing ``char_budget`` characters (each at least
    100; ``None``: whole)."""
    ground_truth = ground_truth_text(trajectory) if with_ground_truth else ""
    feedback = trajectory.outcome.feedback or trajectory.outcome.error
    parts = [("## Task", _as_text(trajectory.task) or "(not recorded)"),
             ("## Correct answer (ground truth)", ground_truth), ("## Feedback from the environment", _as_text(feedback))]
    shown = [(title, text) for title, text in parts if text]
    cap = None if char_budget is None else max(100, char_budget // len(shown))
    return "\n\n".join(f"{title}\n{clip_text(text, cap) if cap else text}" for title, text in shown)


def fit_prompt(
    steps: Sequence[Step],
    compose: Callable[[str, RenderedTrajectory], str],
    task_text: Callable[[int | None], str],
    *,
    max_tokens: int | None,
    count: TokenCounter,
    fixed_tokens: int = 0,
    min_steps: int = 1,
) -> tuple[str, RenderedTrajectory]:
    """The prompt ``compose(task, rendered steps)`` makes, fitted to ``max_tokens`` with ``fixed_tokens`` beside it
    (the system prompt). The task block (``task_text(characters)``: the task, G, feedback) gets up to a third of the
    budget and what the rest leaves, the steps what it leaves; still over, the steps are cut down, then the task
    block to its floor. Only parts never cut (instructions, the roster) over the budget leave the prompt over it."""
    if max_tokens is None:
        rendered = render_steps(steps, count_tokens=count)
        return compose(task_text(None), rendered), rendered
    none = RenderedTrajectory("", 0)
    core = fixed_tokens + count(compose("", none)) + 16
    task_chars = 3 * max(75, min(max_tokens // 3, max_tokens - core - 64))  # (at most 3 characters a token)
    task = task_text(task_chars)
    budget = max(64, max_tokens - fixed_tokens - count(compose(task, none)) - 16)
    shortest: int | None = None
    for _ in range(12):
        rendered = render_steps(steps, budget=budget, count_tokens=count, min_steps=min_steps)
        body = compose(task, rendered)
        over = fixed_tokens + count(body) + 8 - max_tokens  # (token merges across the joins)
        if over <= 0:
            break
        if budget > 64 and (shortest is None or rendered.tokens < shortest):
            budget = max(64, budget - over)
        elif task_chars > 0:  # the steps are as short as they go: the task block gives way
            task_chars = max(0, task_chars - 3 * over)
            task = task_text(task_chars)
        else:
            break
        shortest = rendered.tokens if shortest is None else min(shortest, rendered.tokens)
    return body, rendered


def build_user_prompt(
    trajectory: Trajectory,
    *,
    with_ground_truth: bool,
    max_tokens: int | None = None,
    tokenizer: Any = None,
) -> tuple[str, RenderedTrajectory]:
    """The user message of the tracer prompt and how its trajectory was rendered."""
    count = counter_from(tokenizer)
    agents = agent_list(trajectory)
    intro = ("The multi-agent system below failed the task. Find the decisive error: the earliest step whose "
             "action, if corrected, would have let the system succeed.")
    roster = "## Agents\n" + "\n".join(f"- {' '.join(name.split())}" for name in agents)  # (each on one line)
    instructions = "## Your answer\n" + ANSWER_INSTRUCTIONS
    header = f"## Trajectory ({len(trajectory.steps)} steps, numbered from 0)"
    note = ("\n(Long step texts were shortened to fit; markers show where. Step numbers are the "
            "original ones.)")

    def compose(task: str, rendered: RenderedTrajectory) -> str:
        shown = header + (note if rendered.truncated or not rendered.text else "") + "\n" + rendered.text
        return "\n\n".join([intro, task, roster, shown, instructions])

    return fit_prompt(trajectory.steps, compose, lambda chars: _task_block(trajectory, with_ground_truth, chars),
                      max_tokens=max_tokens, count=count, fixed_tokens=count(SYSTEM_PROMPT))


def build_messages(
    trajectory: Trajectory,
    *,
    with_ground_truth: bool,
    max_tokens: int | None = None,
    tokenizer: Any = None,
) -> list[dict]:
    """The paper's tracer prompt as chat messages (system + user).

    ``max_tokens`` is the prompt's token budget (``None``: no limit); ``tokenizer`` (a callable text → count,
    or an object with ``encode``) counts tokens, else a cheap estimate does.
    """
    user, _ = build_user_prompt(trajectory, with_ground_truth=with_ground_truth, max_tokens=max_tokens,
                                tokenizer=tokenizer)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
