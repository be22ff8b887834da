"""The one strict answer format, shared by the trainer's reward (its format gate) and a verdict's ``strict`` flag.

An answer is in format when the whole text is one ``<think>…</think>`` followed by one ``<answer>agent|step</answer>``
(whitespace around them allowed, nothing else), the step is a step index (ASCII digits, no sign) and the agent is one
of the trajectory's agents (compared as ``name_key`` compares them). Pure Python: the reward runs inside verl's
workers without torch or the rest of the library's imports.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_SHAPE = re.compile(r"\A\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*\Z", re.DOTALL)
MAX_STEP_DIGITS = 9  # a step number, not thousands of digits int() refuses to read


def strict_answer(text: object) -> tuple[str, int] | None:
    """``(agent, step)`` when ``text`` has the strict shape, else ``None`` (the agent is not checked here)."""
    if not isinstance(text, str):
        return None
    for tag in TAGS:
        if text.count(tag) != 1:
            return None
    shape = _SHAPE.match(text)
    if shape is None:
        return None
    return agent_and_step(shape.group("answer"))


def agent_and_step(answer: str) -> tuple[str, int] | None:
    """The agent (all before the last ``|``: a name may hold ``|``, ``<``, ``>``; one line) and the step (ASCII
    digits) of an answer block, spaces around each aside. String work, not a regular expression: a pattern's
    optional spaces around the bar backtracked for seconds to hours over a long run of spaces."""
    head, bar, tail = answer.rpartition("|")
    agent, step = head.strip(), tail.strip()
    if not bar or not agent or "\n" in agent or not (step.isascii() and step.isdigit()) or len(step) > MAX_STEP_DIGITS:
        return None
    return agent, int(step)


def name_key(name: str) -> str:
    """An agent name as compared: case-insensitive, one Unicode form (a name typed decomposed is the same), without
    the spaces around it (a label written ``"Expert "``), and each run of spaces and line breaks inside it one space
    (an answer is one line: a name written over two lines is answered on one)."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def template_answer_start(tokenizer: Any) -> str:
    """What a chat template writes of the answer into the generation prompt, from ``<think>`` on: ``<think>\n`` for
    one that opens the reasoning for the model (DeepSeek-R1's distills), ``<think>\n\n</think>\n\n`` for one that
    closes an empty one; '' for a template that leaves the answer to the model (or that cannot be rendered). The
    model's text starts after it: an answer is whole (and in format) with it put back in front."""
    if not getattr(tokenizer, "chat_template", None):
        return ""
    asked = [{"role": "user", "content": "Which agent made the mistake?"}]
    try:
        without = tokenizer.apply_chat_template(asked, tokenize=False, add_generation_prompt=False)
        with_prompt = tokenizer.apply_chat_template(asked, tokenize=False, add_generation_prompt=True)
    except Exception:  # (a template that needs other arguments: nothing to find)
        return ""
    if not (isinstance(without, str) and isinstance(with_prompt, str) and with_prompt.startswith(without)):
        return ""
    generation = with_prompt[len(without):]
    start = generation.find(TAGS[0])
    return generation[start:] if start >= 0 else ""


def in_format(text: object, agents: Iterable[str]) -> bool:
    """Whether ``text`` passes the format gate against the trajectory's ``agents`` (none given: any well-formed
    name passes): the reward of an answer that does not is 0 whatever it names."""
    parsed = strict_answer(text)
    if parsed is None:
        return False
    names = {name_key(name) for name in agents}
    return not names or name_key(parsed[0]) in names
