"""Prompts for the analyzer (minimal corrections) and the perturber (plausible mistakes), and their parsers.

Both models answer inside one tag (``<correction>`` / ``<rewrite>``) so whatever they say around it never
reaches a replay. A tool-call step is shown and answered as JSON ``{"tool_calls": [{"name", "arguments"}]}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..schema import Step, Trajectory, tool_calls_content
from ..tracer.parse import without_reasoning

UNCHANGED = "UNCHANGED"
_MAX_STEP_CHARS = 4000


def _clip(text: str, limit: int = _MAX_STEP_CHARS) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n[...]\n" + text[-limit // 2:]


def step_action(step: Step) -> str:
    """A step's action as the analyzer/perturber sees it (tool calls as JSON)."""
    if step.tool_calls:
        return json.dumps({"tool_calls": tool_calls_content(step.tool_calls)}, ensure_ascii=False)
    return step.text


def render_history(trajectory: Trajectory, upto: int | None = None, *, limit: int = 60_000) -> str:
    """Numbered steps ``0..upto-1`` ("Step i - agent (role): content"), oldest clipped first past ``limit``."""
    steps = trajectory.steps if upto is None else trajectory.steps[:upto]
    lines = [f"Step {s.index} - {s.agent} ({s.role}): {_clip(step_action(s))}" for s in steps]
    text = "\n".join(lines)
    if len(text) > limit:
        text = "[earlier steps omitted]\n" + text[-limit:]
    return text or "(no earlier steps)"


def _ground_truth_text(ground_truth: Any) -> str:
    if ground_truth is None:
        return "(not given)"
    return ground_truth if isinstance(ground_truth, str) else json.dumps(ground_truth, ensure_ascii=False)


ANALYZER_SYSTEM = (
    "You analyse a failed run of a multi-agent system. You are shown one step of the run, everything said "
    "before it, the environment's feedback on the final result and the ground truth. Propose a minimal "
    "correction of that single step: fix only the local error in what this agent did at this step, keep its "
    "role, voice and format, and never paste the final answer or the ground truth into it. If the step has "
    f"no error, answer <correction>{UNCHANGED}</correction>. Otherwise answer with the corrected step, and "
    "nothing else, inside <correction>...</correction>."
)


def analyzer_messages(trajectory: Trajectory, step: int) -> list[dict[str, str]]:
    """The chat messages asking for a minimal correction of ``step``."""
    target = trajectory.steps[step]
    shape = ("This step is a tool call: answer with the same JSON shape "
             '{"tool_calls": [{"name": ..., "arguments": {...}}]}.') if target.tool_calls else ""
    user = (
        f"Task:\n{trajectory.task}\n\n"
        f"Ground truth:\n{_ground_truth_text(trajectory.ground_truth)}\n\n"
        f"Environment feedback on the final result:\n{trajectory.outcome.feedback or trajectory.outcome.error or '(none)'}\n\n"
        f"History before the step:\n{render_history(trajectory, step)}\n\n"
        f"Step {step} to correct - agent {target.agent} ({target.role}):\n{_clip(step_action(target))}\n\n{shape}"
    ).strip()
    return [{"role": "system", "content": ANALYZER_SYSTEM}, {"role": "user", "content": user}]


MISTAKE_TYPES: dict[str, str] = {
    "wrong_fact": "state one fact, number or intermediate result wrongly",
    "wrong_tool_argument": "call the tool with one wrong argument (a wrong value, name or path)",
    "off_by_one": "introduce an off-by-one error (a loop bound, an index, a range end, < instead of <=)",
    "dropped_requirement": "silently ignore one requirement or constraint of the task",
    "wrong_logic": "use a plausible but wrong condition, operator or formula",
    "premature_conclusion": "declare the work finished or correct when it is not",
}

PERTURBER_SYSTEM = (
    "You rewrite one step of a successful multi-agent run into a realistic, plausible mistake of the kind "
    "named below, as the same agent would really make it: same role, tone and format, no hint that anything "
    "was changed. Never mention mistakes, errors, changes, attacks, injections or tests in the rewrite. Answer "
    "with the rewritten step only, inside <rewrite>...</rewrite>."
)


def perturber_messages(trajectory: Trajectory, step: int, mistake_type: str) -> list[dict[str, str]]:
    """The chat messages asking to rewrite ``step`` with a mistake of ``mistake_type``."""
    target = trajectory.steps[step]
    shape = ('Keep the JSON shape {"tool_calls": [{"name": ..., "arguments": {...}}]}.'
             if target.tool_calls else "")
    user = (
        f"Task:\n{trajectory.task}\n\nHistory before the step:\n{render_history(trajectory, step)}\n\n"
        f"Step {step} - agent {target.agent} ({target.role}):\n{_clip(step_action(target))}\n\n"
        f"Kind of mistake: {mistake_type}: {MISTAKE_TYPES.get(mistake_type, mistake_type)}. {shape}"
    ).strip()
    return [{"role": "system", "content": PERTURBER_SYSTEM}, {"role": "user", "content": user}]


def _tagged(text: str, tag: str) -> str | None:
    """The last ``<tag>`` body of an answer: outside a reasoning model's ``<think>`` block where one stands there (the
    reasoning weighs drafts), else anywhere in it."""
    concluded = without_reasoning(text)
    return _last_tagged(concluded, tag) if concluded != text and f"<{tag}>" in concluded else _last_tagged(text, tag)


def _last_tagged(text: str, tag: str) -> str | None:
    matches = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
    if matches:
        return matches[-1].strip()
    opened = text.rfind(f"<{tag}>")  # an unclosed tag: take the rest
    if opened >= 0:
        return text[opened + len(tag) + 2:].strip() or None
    return None


def as_action(text: str, step: Step) -> Any:
    """The replay action for ``text``: a tool-call dict when the step was a tool call and the text is one."""
    if step.tool_calls:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(data, dict) and isinstance(data.get("tool_calls"), list) and data["tool_calls"]:
            return data
        if isinstance(data, dict) and "name" in data:
            return {"tool_calls": [data]}
    return text


class Untagged(ValueError):
    """The analyzer's answer holds no ``<correction>`` tag: it proposes nothing (its text is never replayed)."""


def parse_correction(text: str, step: Step) -> Any | None:
    """The analyzer's correction as a replay action, or None when it says the step is fine (``UNCHANGED``, or an
    empty tag); ``Untagged`` when the answer has no ``<correction>`` tag at all."""
    body = _tagged(text, "correction")
    if body is None:
        raise Untagged("the analyzer's answer has no <correction> tag")
    if not body or body.strip().upper() == UNCHANGED:
        return None
    return as_action(body, step)


def parse_rewrite(text: str, step: Step) -> Any | None:
    """The perturber's rewrite as a replay action, or None when it gave none."""
    body = _tagged(text, "rewrite")
    return as_action(body, step) if body else None


def action_text(action: Any) -> str:
    """An action as text (for comparisons, leakage and marker checks)."""
    return action if isinstance(action, str) else json.dumps(action, ensure_ascii=False, sort_keys=True)
