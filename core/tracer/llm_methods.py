"""Attribution methods that ask a chat model.

* ``agentracer``: the paper's tracer prompt (``prompt.build_messages``), one request, parsed strictly and
  forgivingly (``parse.parse_answer``).
* The Who&When baselines (Zhang et al., ICML 2025), in our own wording: ``all-at-once`` (the whole log,
  one request, answer as ``Agent Name:`` / ``Step Number:``), ``step-by-step`` (the log up to step i,
  "is step i an error?", stop at the first yes; the last step when none is), and ``binary-search``
  (halve the step range by asking which half holds the decisive error; an unclear answer picks a half at
  random, seeded by the trajectory id, and is flagged).

Every prompt fits the model's budget with the same windowing as the tracer prompt (step numbers intact).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from ..models.base import Completion
from ..schema import Trajectory, Usage, Verdict
from .base import AnswerError, ModelMethod, require_steps
from .parse import parse_answer, without_reasoning
from .prompt import (
    _as_text,
    agent_list,
    build_messages,
    clip_text,
    counter_from,
    fit_prompt,
    ground_truth_text,
)


class _Ledger:
    """Requests, tokens and cache hits of one attribution."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.requests = 0
        self.cached = 0

    def add(self, completion: Completion) -> Completion:
        self.usage = self.usage + completion.usage
        self.requests += 1
        self.cached += int(completion.cached)
        return completion

    def as_metadata(self) -> dict[str, Any]:
        return {"usage": self.usage.model_dump(), "requests": self.requests, "cached_requests": self.cached}


class AgenTracerMethod(ModelMethod):
    """The paper's tracer: numbered trajectory + task (+ G) → ``<think>…</think><answer>agent|step</answer>``."""

    name = "agentracer"

    async def alocate(self, trajectory: Trajectory, *, with_ground_truth: bool = False) -> Verdict:
        require_steps(trajectory)
        messages = build_messages(trajectory, with_ground_truth=with_ground_truth,
                                  max_tokens=self.max_prompt_tokens, tokenizer=self.tokenizer)
        ledger = _Ledger()
        completion = ledger.add(await self.model.acomplete(messages, **self.params))
        parsed = parse_answer(completion.text, agent_list(trajectory), n_steps=len(trajectory.steps))
        if not parsed.ok or parsed.agent is None or parsed.step is None:
            raise AnswerError(f"unparsable answer: {parsed.error}", raw=completion.text, flags=parsed.flags)
        return self.verdict(parsed.agent, parsed.step, raw=completion.text, reason=parsed.reason,
                            flags=parsed.flags, strict=parsed.strict, **ledger.as_metadata())


class _BaselineMethod(ModelMethod):
    """Shared helpers of the Who&When baselines."""

    system_prompt = "You are a careful analyst of conversations between AI agents."

    def _header(self, trajectory: Trajectory, with_ground_truth: bool, char_budget: int | None = None) -> str:
        """The problem and (``with_ground_truth``) its answer G, sharing ``char_budget`` characters (each at least
        100; ``None``: whole)."""
        ground_truth = ground_truth_text(trajectory) if with_ground_truth else ""
        parts = [_as_text(trajectory.task) or "(not recorded)", *([ground_truth] if ground_truth else [])]
        cap = None if char_budget is None else max(100, char_budget // len(parts))
        task, *answer = [clip_text(text, cap) if cap else text for text in parts]
        lines = [f"The problem the agents worked on: {task}"]
        if answer:
            lines.append(f"The correct answer to the problem is: {answer[0]}")
        return "\n".join(lines)

    def _prompt(self, trajectory: Trajectory, steps: list, with_ground_truth: bool,
                compose: Callable[[str, str], str], *, min_steps: int = 1) -> str:
        """The user prompt ``compose(header, log)`` makes of the header (problem, G) and ``steps``, fitted to the
        budget as the tracer prompt is (``prompt.fit_prompt``: the header is cut too when the steps alone cannot
        make room)."""
        count = counter_from(self.tokenizer)
        prompt, _ = fit_prompt(steps, lambda header, rendered: compose(header, rendered.text),
                               lambda chars: self._header(trajectory, with_ground_truth, chars),
                               max_tokens=self.max_prompt_tokens, count=count,
                               fixed_tokens=count(self.system_prompt), min_steps=min_steps)
        return prompt

    async def _ask(self, ledger: _Ledger, prompt: str) -> str:
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": prompt}]
        return ledger.add(await self.model.acomplete(messages, **self.params)).text


class AllAtOnceMethod(_BaselineMethod):
    """Who&When's all-at-once: the whole log in one request."""

    name = "all-at-once"

    async def alocate(self, trajectory: Trajectory, *, with_ground_truth: bool = False) -> Verdict:
        require_steps(trajectory)
        intro = ("A team of AI agents tried to solve a real-world problem and failed. Find which agent made "
                 "the mistake that is directly responsible for the wrong solution, and at which step.\n")
        outro = ("Based on this conversation, give: 1. the name of the agent whose mistake is directly "
                 "responsible for the failure, written exactly as in the conversation (if no mistake is "
                 "obvious, choose the single most likely agent); 2. the number of the step where that agent "
                 "first made the mistake (steps are numbered from 0 as shown); 3. the reason.\n"
                 "Answer in this format:\nAgent Name: <name>\nStep Number: <number>\nReason for Mistake: <reason>")
        prompt = self._prompt(trajectory, list(trajectory.steps), with_ground_truth, lambda header, log: (
            f"{intro}{header}\n\nThe conversation, one step per entry:\n{log}\n\n{outro}"))
        ledger = _Ledger()
        text = await self._ask(ledger, prompt)
        parsed = parse_answer(text, agent_list(trajectory), n_steps=len(trajectory.steps))
        if not parsed.ok or parsed.agent is None or parsed.step is None:
            raise AnswerError(f"unparsable answer: {parsed.error}", raw=text, flags=parsed.flags)
        return self.verdict(parsed.agent, parsed.step, raw=text, reason=parsed.reason, flags=parsed.flags,
                            strict=parsed.strict, **ledger.as_metadata())


# (after the item number, labels: the template's "Yes/No" echoed, "Answer:"; a yes or no followed by "/no" is one)
_YES_NO = re.compile(r"^\W*(?:1\W*)?(?:(?:yes\s*/\s*no|answer|judgement|judgment|verdict)\b\W*)*"
                     r"(yes|no)\b(?!\s*/\s*(?:yes|no)\b)", re.I)


def read_yes_no(text: str) -> bool | None:
    """``True`` for an answer starting with yes (``1. Yes.``, ``Answer: Yes``, ``1. Yes/No: Yes``), ``False`` for no,
    ``None`` when unclear (the template's ``1. Yes/No.`` alone); a reasoning model's ``<think>`` block before it is
    not the answer."""
    match = _YES_NO.match(without_reasoning(text or ""))
    return None if match is None else match.group(1).lower() == "yes"


class StepByStepMethod(_BaselineMethod):
    """Who&When's step-by-step: judge each step with the log up to it; the first error found wins."""

    name = "step-by-step"

    async def alocate(self, trajectory: Trajectory, *, with_ground_truth: bool = False) -> Verdict:
        require_steps(trajectory)
        ledger = _Ledger()
        flags: list[str] = []
        raw: list[str] = []
        steps = list(trajectory.steps)
        for i, step in enumerate(steps):
            intro = ("You judge, one step at a time, a conversation in which AI agents try to solve a "
                     "real-world problem.\n")
            question = (f"The most recent step is step {i}, taken by {step.agent}. Does this step contain an "
                        "error that could derail the solving of the problem or lead to a wrong solution? Do not "
                        "be overly critical: flag only errors that clearly derail the process.\n"
                        "Answer exactly in this format:\n1. Yes/No.\n2. Reason: <your explanation>")
            prompt = self._prompt(trajectory, steps[: i + 1], with_ground_truth, lambda header, log: (
                f"{intro}{header}\n\nThe conversation up to step {i}:\n{log}\n\n{question}"))  # noqa: B023
            text = await self._ask(ledger, prompt)
            raw.append(f"[step {i}] {text}")
            judged = read_yes_no(text)
            if judged is None and "unclear_judgement" not in flags:
                flags.append("unclear_judgement")
            if judged:
                answer = without_reasoning(text)
                reason = answer.split("Reason:", 1)[-1].strip() if "Reason:" in answer else answer.strip()
                return self.verdict(step.agent, i, raw="\n".join(raw), reason=reason, flags=flags,
                                    **ledger.as_metadata())
        flags.append("no_error_found")
        last = steps[-1]
        return self.verdict(last.agent, last.index, raw="\n".join(raw), reason="no step was judged an error; "
                            "the last step is blamed", flags=flags, **ledger.as_metadata())


def _half_named(answer: str) -> tuple[int, int]:
    """Where a lower-cased answer names the upper and the lower half (-1: not at all): "upper half"/"lower half"
    where it says so, else the bare words."""
    upper, lower = answer.find("upper half"), answer.find("lower half")
    if upper < 0 and lower < 0:
        upper, lower = answer.find("upper"), answer.find("lower")
    return upper, lower


class BinarySearchMethod(_BaselineMethod):
    """Who&When's binary search: keep the half of the step range said to hold the decisive error."""

    name = "binary-search"

    def __init__(self, model: Any = None, *, seed: int = 0, **options: Any) -> None:
        super().__init__(model, **options)
        self.seed = seed

    async def alocate(self, trajectory: Trajectory, *, with_ground_truth: bool = False) -> Verdict:
        require_steps(trajectory)
        rng = random.Random(f"{self.seed}:{trajectory.id}")
        ledger = _Ledger()
        flags: list[str] = []
        raw: list[str] = []
        steps = list(trajectory.steps)
        start, end = 0, len(steps) - 1
        while start < end:
            mid = (start + end) // 2
            intro = ("AI agents collaborated on a problem and failed. Below is a segment of their conversation. "
                     "Decide which half of the segment holds the most critical mistake, the one that led to the "
                     "failure.\n")
            question = (f"Is the most critical mistake in the upper half (steps {start} to {mid}) or the lower "
                        f"half (steps {mid + 1} to {end})? If no single mistake is clear, pick the half with the "
                        "step most responsible for the failure. Reply with ONLY 'upper half' or 'lower half'.")
            segment = f"Steps {start} to {end}"  # (a window shows a step of each half, however small the budget)
            prompt = self._prompt(trajectory, steps[start: end + 1], with_ground_truth, lambda header, log: (
                f"{intro}{header}\n\n{segment}:\n{log}\n\n{question}"), min_steps=2)  # noqa: B023
            text = await self._ask(ledger, prompt)
            raw.append(f"[steps {start}-{end}] {text}")
            upper, lower = _half_named(without_reasoning(text).lower())
            if upper >= 0 and (lower < 0 or upper < lower):
                end = mid
            elif lower >= 0:
                start = mid + 1
            else:
                if "ambiguous_half" not in flags:
                    flags.append("ambiguous_half")
                if rng.random() < 0.5:
                    end = mid
                else:
                    start = mid + 1
        step = steps[start]
        return self.verdict(step.agent, step.index, raw="\n".join(raw), reason=f"binary search narrowed the "
                            f"error to step {step.index}", flags=flags, **ledger.as_metadata())
