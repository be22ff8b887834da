"""Guards on generated steps: a correction must not paste the answer; an injected mistake must not say so."""

from __future__ import annotations

import difflib
import re
from typing import Any

from ..evaluate.outcome import answer_of
from ..schema import Trajectory


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def leaks_answer(proposal: str, ground_truth: Any, *, original: str = "") -> bool:
    """True when ``proposal`` contains the ground-truth answer verbatim (whitespace and case aside).

    Short answers (under 4 characters, e.g. ``42``) count only as a whole token. A proposal that repeats
    an answer the original step already contained leaks nothing new, so it passes.
    """
    answer = answer_of(ground_truth)
    if answer is None:
        return False
    truth = _squash(str(answer))
    if not truth:
        return False
    text, before = _squash(proposal), _squash(original)

    def contains(haystack: str) -> bool:
        if len(truth) < 4:
            return re.search(rf"(?<![\w.]){re.escape(truth)}(?![\w])", haystack) is not None
        return truth in haystack

    return contains(text) and not contains(before)


MINIMAL_EDIT = 0.75
"""How alike (difflib's ratio, whitespace and case aside) a correction and its step must be for the correction to be
a minimal edit of it."""


EDIT_SLACK = 12
"""How many characters beyond the answer's own a minimal edit may change (a sign, a unit, a word around a value)."""


def minimal_edit(original: str, proposal: str, answer: Any = None) -> bool:
    """Whether ``proposal`` changes ``original`` only a little (``17*23 = 401`` to ``17*23 = 391``): a repair of the
    step, not a step rewritten to announce an answer. Alike as a whole (``MINIMAL_EDIT``), and what it inserts or
    replaces no longer than the answer and ``EDIT_SLACK`` characters ("The answer is 391." added to a long step is
    not an edit of it)."""
    before, after = _squash(original), _squash(proposal)
    if len(before) < 8:  # (a step too short to tell an edit from a new text)
        return False
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    if matcher.ratio() < MINIMAL_EDIT:
        return False
    changed = sum(j2 - j1 for tag, _i1, _i2, j1, j2 in matcher.get_opcodes() if tag in ("replace", "insert"))
    truth = answer_of(answer) if answer is not None else None
    return changed <= len(_squash(str(truth)) if truth is not None else "") + EDIT_SLACK


MARKERS = re.compile(
    r"\b(?:attack(?:ed|s|ing)?|inject(?:ed|ion|ions|ing)?|perturb(?:ed|ation|ations|ing)?|sabotag\w*|"
    r"deliberate(?:ly)?|intentional(?:ly)?|on purpose|adversarial\w*|"
    r"(?:introduc|insert|add)(?:e|ed|es|ing) (?:an? |the )?(?:subtle )?(?:error|mistake|bug|fault)s?|"
    r"fault[- ]?inject\w*|rewritten step|modified step|planted (?:an? |the )?(?:error|mistake|bug)s?|tampered)\b",
    re.IGNORECASE,
)


SELF_REPORT = re.compile(
    r"\b(?:I|we) (?:have |just )?(?:introduc|insert|add|plant|chang|modifi|alter)(?:e|ed|ing) |"
    r"\b(?:this|here) is (?:an? |the )?(?:subtle |deliberate |intentional |planted )?(?:error|mistake|bug)\b|"
    r"\b(?:the )?original (?:value )?(?:was|said|read)\b|\bchanged this\b|\bNOTE: (?:modified|changed|altered)\b|"
    r"\((?:altered|modified|changed|tampered|corrupted|planted error|subtle error here|this is a mistake)\)",
    re.IGNORECASE,
)
"""How a rewritten step gives itself away in its own words ("(I introduced an off-by-one bug)", "(altered)",
"original was 4"): looked for in the rewrite only, where the run's later agents may say such things of a mistake."""


def rewrite_reports_itself(rewrite: str, original: str) -> list[str]:
    """What in ``rewrite`` (one injected step) says it was rewritten, beyond what the step said before."""
    before = {m.group(0).lower() for m in SELF_REPORT.finditer(original)}
    return [m.group(0) for m in SELF_REPORT.finditer(rewrite) if m.group(0).lower() not in before]


def _texts(trajectory: Trajectory) -> list[str]:
    """Every text of the run a tracer or trainer will see (labels and metadata excluded)."""
    out = [str(trajectory.task or "")]
    for step in trajectory.steps:
        out.append(step.text)
        out += [f"{c.name} {c.arguments}" for c in step.tool_calls]
        out += [str(r.content) for r in step.tool_results]
        out += [f"{c.request} {c.response}" for c in step.model_calls]
    out += [f"{c.request} {c.response}" for c in trajectory.unattached_calls]
    out += [str(trajectory.outcome.answer or ""), str(trajectory.outcome.feedback or "")]
    if trajectory.replay is not None:
        out.append(str(trajectory.replay.action))
    return out


def markers_in(trajectory: Trajectory) -> list[str]:
    """Words in the run that would announce an injected mistake ("injected", "attacked", ...)."""
    return [m.group(0) for text in _texts(trajectory) for m in MARKERS.finditer(text)]


def announces_itself(kept: Trajectory, parent: Trajectory | None = None) -> list[str]:
    """Markers in ``kept`` beyond those its parent run already had (an honest task may say 'injection')."""
    found = markers_in(kept)
    if parent is None:
        return found
    baseline = {m.lower() for m in markers_in(parent)}
    return [m for m in found if m.lower() not in baseline]
