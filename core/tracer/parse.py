"""Reading a tracer's answer: strict about the format, forgiving about near misses, never raising.

The exact format is ``<think>reasoning</think><answer>agent|step</answer>`` with nothing around it and one of the
trajectory's agents named; such an answer has ``strict=True``, exactly when the trainer's reward would not gate it
to 0 (one definition for both: ``agentracer.tracer.answer_format``). Near misses are recovered and flagged:

* ``missing_think`` / ``unclosed_think``: no reasoning block, or one that is never closed;
* ``answer_in_think``: the only answer stands inside the reasoning (an answer outside it always wins);
* ``extra_text``: text before or after the blocks; ``multiple_answers``: the last answer is used;
* ``unclosed_answer``; ``missing_answer_tags``: a bare ``agent|step`` line;
* ``loose_pair``: an answer block's agent and step written otherwise (``X|12.``, ``X | step: 12``, ``X, 12``,
  ``X (step 12)``);
* ``labelled_fields``: ``Agent Name: X`` / ``Step Number: N`` (the Who&When baselines' format);
* ``agent_normalised`` (spacing, punctuation or a role suffix differ), ``agent_fuzzy`` (a known agent's
  name inside the answer), ``unknown_agent`` (no known agent matches; the name is kept as written);
* ``step_out_of_range`` when ``n_steps`` is given and the step is not a step of the trajectory.

Agent names match the trajectory's agents case-insensitively. An answer with no agent or no step gives
``error`` (and ``agent``/``step`` ``None``) instead of an exception.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .answer_format import in_format, name_key

_THINK = re.compile(r"<think>(.*?)</think>", re.S | re.I)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_OPENERS, _CLOSERS = "\"'`*[", "\"'`*]"  # what may wrap an agent or a step: quotes, bold, brackets
# (spaces and bold marks in one possessive run, "[\s*]*+": stacked optional "\s*\**\s*" backtracked for minutes on
# an answer holding a long run of spaces)
_AGENT_FIELD = re.compile(r"(?:agent(?:\s*+name)?|culprit|responsible\s++agent)[\s*]*+[:=][\s*]*+([^\n*]+)", re.I)
_STEP_FIELD = re.compile(r"step(?:\s*+(?:number|index|id))?[\s*]*+[:=#]?[\s*]*+(\d+)", re.I)
_STEP_LABEL = re.compile(r"step(?:\s*+(?:number|index|id))?[\s*]*+[:=#][\s*]*+(\d+)", re.I)  # (not "at step 7")
_NEGATIVE_STEP = re.compile(r"[^|\s]\s*+\|\s*+(?:step\s*+)?(-\s*+\d+)\s*+(?:</answer>|$)", re.I | re.M)
_MAX_STEP_DIGITS = 9  # a step number, not 4,300 digits int() refuses to read
# the step at the end of a loosely written pair: after a bar, comma or parenthesis, maybe "step:", maybe a closing
# parenthesis or a full stop (possessive runs: nothing to backtrack over)
_LOOSE_STEP = re.compile(r"[|,(]\s*+(?:step(?:\s*+(?:number|index))?\s*+[:#=]?\s*+)?(\d++)\s*+\)?\s*+[.!]?\s*+\Z",
                         re.I)
_REASON_FIELD = re.compile(r"reason(?:\s*+for\s*+mistake)?[\s*]*+[:=][\s*]*+(.+)", re.I | re.S)


@dataclass
class ParsedAnswer:
    """What a tracer answered: ``agent``/``step`` (``None`` when unparsable), format strictness, flags."""

    agent: str | None
    step: int | None
    strict: bool = False
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def match_agent(raw: str, agents: Sequence[str]) -> tuple[str, str | None]:
    """The known agent ``raw`` names, and a flag saying how loosely it matched (``None``: exactly)."""
    name = raw.strip().strip("\"'`*[]().:,; ").strip()
    if not agents:
        return name, None
    key, lowered = name_key(name), name.lower()
    for agent in agents:
        if name_key(agent) == key:  # (as the format gate compares names)
            return agent, None
    normalised = _norm(name)
    for agent in agents:
        if _norm(agent) == normalised and normalised:
            return agent, "agent_normalised"
    prefixed = [a for a in agents if lowered.startswith(a.lower()) and not lowered[len(a):len(a) + 1].isalnum()]
    if prefixed:
        return max(prefixed, key=len), "agent_normalised"
    inside = [a for a in agents if _norm(a) and _norm(a) in normalised]
    if inside:
        return max(inside, key=len), "agent_fuzzy"
    return name, "unknown_agent"


def without_reasoning(text: str) -> str:
    """An answer without its ``<think>`` blocks (a reasoning model's, or one a server split out and the client put
    back): what it concluded. A block never closed holds no conclusion: the text from it on goes too. A ``</think>``
    with no opening tag closes reasoning the chat template opened in the prompt (DeepSeek-R1's distills): the text
    before it goes."""
    text = _THINK.sub("", text)
    closers = list(re.finditer(r"</think>", text, re.I))  # (none left with an opening tag before it)
    if closers:
        text = text[closers[-1].end():]
    opened = re.search(r"<think>", text, re.I)
    return text[:opened.start()] if opened else text


def _pair(text: str) -> tuple[str, str] | None:
    """``(agent, step digits)`` of an ``agent|step`` answer (a line, or an answer block's content): the agent all
    before the last ``|`` (a name may hold one, as the format gate splits it: ``answer_format.agent_and_step``), the
    agent and the step each maybe quoted, bold or bracketed, the step maybe written ``step 3``; else None. Plain string
    work, not a regular expression: stacked optional spaces around the bar backtracked for minutes on an answer
    holding a long run of spaces."""
    left, bar, right = text.rpartition("|")
    if not bar:
        return None
    agent = left.strip().lstrip(_OPENERS).strip().rstrip(_CLOSERS).strip()
    if not agent or "\n" in agent:
        return None
    rest = right.strip().lstrip(_OPENERS).strip()
    if rest[:4].lower() == "step":
        rest = rest[4:].lstrip()
    end = next((i for i, ch in enumerate(rest) if not ch.isdecimal()), len(rest))  # (any script's: refused later)
    if not end or rest[end:].strip().strip(_CLOSERS).strip():
        return None
    return agent, rest[:end]


def _loose_pair(text: str) -> tuple[str, str] | None:
    """``(agent, step digits)`` of a one-line answer block written as ``agent|12.``, ``agent | step: 12``,
    ``agent, 12`` or ``agent (step 12)``; else None."""
    line = text.strip()
    step = _LOOSE_STEP.search(line) if "\n" not in line else None
    if step is None:
        return None
    agent = line[:step.start()].strip().lstrip(_OPENERS).strip().rstrip(_CLOSERS).strip()
    return (agent, step.group(1)) if agent else None


def _fields(text: str) -> tuple[str | None, str | None, str | None]:
    """The ``Agent Name:``, ``Step Number:`` and ``Reason:`` fields of a labelled answer; a step field with its
    separator wins over a step mentioned in passing ("Reason: at step 7 ... Step Number: 3")."""
    agent = _AGENT_FIELD.search(text)
    after = text[agent.end():] if agent else text
    step = (_STEP_LABEL.search(after) or _STEP_LABEL.search(text) or _STEP_FIELD.search(after)
            or _STEP_FIELD.search(text))
    reason = _REASON_FIELD.search(text)
    return (agent.group(1).strip() if agent else None, step.group(1) if step else None,
            reason.group(1).strip() if reason else None)


def parse_answer(text: str | None, agents: list[str], *, n_steps: int | None = None) -> ParsedAnswer:
    """Parse a tracer's answer against the trajectory's ``agents`` (see the module docstring)."""
    if text is None or not str(text).strip():
        return ParsedAnswer(None, None, error="empty answer")
    text = str(text)
    flags: list[str] = []
    think = _THINK.search(text)
    reason = think.group(1).strip() if think else None
    if think is None:
        flags.append("unclosed_think" if re.search(r"<think>", text, re.I) else "missing_think")

    raw_agent: str | None = None
    raw_step: str | None = None
    answers = _ANSWER.findall(_THINK.sub("", text))  # (an answer the reasoning weighs is no answer)
    if answers:
        if len(answers) > 1:
            flags.append("multiple_answers")
        content = answers[-1]
        pair = _pair(content)
        if pair:
            raw_agent, raw_step = pair
        else:
            raw_agent, raw_step, _ = _fields(content)
            loose = None if raw_agent else _loose_pair(content)  # (an agent field wins: "Agent: X, Step: 9")
            if loose:
                raw_agent, raw_step = loose
                flags.append("loose_pair")
            elif raw_agent or raw_step:
                flags.append("labelled_fields")
        outside = _ANSWER.sub("", _THINK.sub("", text)).strip()
        if outside:
            flags.append("extra_text")
    else:
        tail = text[think.end():] if think else text
        opened = re.search(r"<answer>(.*)$", tail, re.S | re.I)
        if opened:
            flags.append("unclosed_answer")
            tail = opened.group(1)
        pair = next((m for m in (_pair(line) for line in reversed(tail.strip().splitlines())) if m), None)
        if pair:
            raw_agent, raw_step = pair
            if not opened:
                flags.append("missing_answer_tags")
        else:
            raw_agent, raw_step, field_reason = _fields(tail)
            if raw_agent or raw_step:
                flags.append("labelled_fields")
                reason = reason or field_reason
    thought = _ANSWER.findall(think.group(1)) if think and (not raw_agent or raw_step is None) else []
    if thought:  # the only answer is inside the reasoning: taken, and flagged
        pair = _pair(thought[-1])
        raw_agent, raw_step = pair if pair else _fields(thought[-1])[:2]
        flags.append("answer_in_think")
    if not raw_agent or raw_step is None:
        negative = _NEGATIVE_STEP.search(answers[-1] if answers else text)
        if negative is not None:  # (an agent and a step below 0: say so, not that nothing was found)
            return ParsedAnswer(None, None, flags=flags, reason=reason,
                                error=f"step {negative.group(1).replace(' ', '')} is not a step number (steps count "
                                      "from 0)")
        missing = " and ".join(x for x, v in (("agent", raw_agent), ("step", raw_step)) if not v)
        return ParsedAnswer(None, None, flags=flags, reason=reason, error=f"no {missing} found in the answer")
    agent, agent_flag = match_agent(raw_agent, agents)
    if agent_flag:
        flags.append(agent_flag)
    if len(raw_step) > _MAX_STEP_DIGITS or not raw_step.isascii():
        return ParsedAnswer(None, None, flags=flags, reason=reason,
                            error=f"step {raw_step[:20]!r} is not a step number")
    step = int(raw_step)
    if n_steps is not None and not 0 <= step < n_steps:
        flags.append("step_out_of_range")
    return ParsedAnswer(agent, step, strict=in_format(text, agents), flags=flags, reason=reason)
