"""Step features for the CPU tracer: pure Python, one row of floats per step of a trajectory.

Every feature is meant to carry over between teams: where a step sits in the run, what kind of agent
took it (orchestrator, human, tool runner, browsing agent, or a worker), what its text looks like (length,
error words, code, numbers, assumptions), how it relates to its neighbours (an error right after it,
repeated content) and to the task (the question, the run's final answer, and the ground truth when it is
given). ``FEATURES`` names them in row order, with the phrase a verdict's reason uses for each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..schema import Step, Trajectory

#: Characters of a step's text that the token-based features look at.
TOKEN_WINDOW = 6000
#: Characters the keyword features look at: the head and the tail of a long step (web pages run to 100k).
KEYWORD_HEAD, KEYWORD_TAIL = 16000, 4000
#: How many earlier steps the repeated-content feature compares a step with.
REPEAT_WINDOW = 32

FEATURES: tuple[tuple[str, str], ...] = (
    ("rel_pos", "late in the run"),
    ("log_pos", "far from the start"),
    ("is_first", "the first step"),
    ("is_second", "the second step"),
    ("is_last", "the last step"),
    ("agent_orchestrator", "taken by an orchestrator/manager"),
    ("agent_human", "taken by the human/user"),
    ("agent_tool_runner", "taken by a tool/code runner"),
    ("agent_browser", "taken by a browsing/file agent"),
    ("agent_worker", "taken by a worker agent"),
    ("agent_first_step", "this agent's first step"),
    ("agent_step_ordinal", "a later step of the same agent"),
    ("first_worker_step", "the first step of any worker"),
    ("first_browser_step", "the first step of a browsing agent"),
    ("agent_is_first_worker", "taken by the first worker to speak"),
    ("agent_share", "taken by an agent with many steps"),
    ("kind_instruction", "an instruction to another agent"),
    ("kind_thought", "a planning/ledger thought"),
    ("log_len", "long content"),
    ("rel_len", "the longest content of the run"),
    ("kw_error", "error words (error, exception, traceback)"),
    ("kw_not_found", "'not found'/'unable'/'cannot' words"),
    ("kw_exit_fail", "a failed execution (non-zero exit code)"),
    ("next_fails", "an error in the next step"),
    ("prev_fails", "an error in the previous step"),
    ("has_code", "a code block"),
    ("log_numbers", "many numbers"),
    ("new_numbers", "numbers not seen before"),
    ("kw_assume", "assumptions/placeholders/hypothetical data"),
    ("kw_verify", "claims of verification/correctness"),
    ("kw_terminate", "a TERMINATE"),
    ("kw_plan", "a plan"),
    ("kw_answer", "states an answer"),
    ("kw_browse", "web actions (search, click, URL)"),
    ("no_code_to_run", "'no code to execute' after it"),
    ("repeated", "content repeated from an earlier step"),
    ("has_final_answer", "contains the run's final answer"),
    ("first_final_answer", "the first appearance of the run's final answer"),
    ("question_overlap", "wording close to the question"),
    ("gt_in_step", "the ground truth appears in it"),
    ("gt_first", "the first appearance of the ground truth"),
    ("gt_overlap", "wording close to the ground truth"),
    ("final_misses_gt_late", "a final answer that misses the ground truth appears here"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in FEATURES)
FEATURE_PHRASES: dict[str, str] = dict(FEATURES)
GROUND_TRUTH_FEATURES = frozenset({"gt_in_step", "gt_first", "gt_overlap", "final_misses_gt_late"})

_ORCHESTRATOR = re.compile(r"orchestrat|manager|planner|coordinat|supervisor|admin|leader|router|selector", re.I)
_HUMAN = re.compile(r"^(human|user|user_proxy|userproxy|customer)$", re.I)
_TOOL_RUNNER = re.compile(r"terminal|executor|computer|tool|interpreter|shell|sandbox|runner", re.I)
_BROWSER = re.compile(r"surfer|browser|websearch|web_search|crawler|file_?reader|searcher", re.I)

# Keyword groups are plain substrings of the lower-cased text: ``in`` is many times faster than ``re``.
_ERROR = ("error", "exception", "traceback", "failed", "failure")
_NOT_FOUND = ("not found", "no results", "unable to", "cannot", "can't", "couldn't", "could not", "unavailable",
              "does not exist", "doesn't exist", "no information", "404")
_EXIT_FAIL = re.compile(r"exitcode:\s*[1-9]|execution failed|exit code [1-9]|non-zero exit")
_ASSUME = ("assum", "hypothetical", "placeholder", "simulat", "mock", "dummy", "sample data", "for example",
           "example data", "let's say", "estimate", "approximat")
_VERIFY = ("verif", "confirm", "correct", "accurate", "double-check")
_PLAN = ("plan", "step 1", "steps:", "first,", "next,")
_ANSWER = ("final answer", "the answer is", "answer:", "result is", "\\boxed", "**")
_BROWSE = ("http://", "https://", "clicked", "typed", "search", "web page", "webpage", "viewport", "scroll")
_NO_CODE = ("no code from the last", "no code to execute", "no code block")
_CODE = "```"
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")
_TERMINATE = re.compile(r"\bTERMINATE\b")
_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
_FINAL = re.compile(r"final answer\s*[:\-]\s*(.+)", re.I)
_BOXED = re.compile(r"\\boxed\{([^{}]{1,200})\}")
_BOLD = re.compile(r"\*\*([^*\n]{1,120})\*\*")
_STOP = frozenset("the a an of to and or in on for is are was were be by with as at it this that from".split())


@dataclass(frozen=True)
class _AgentKind:
    orchestrator: bool
    human: bool
    tool_runner: bool
    browser: bool

    @property
    def worker(self) -> bool:
        return not (self.orchestrator or self.human or self.tool_runner)


def agent_kind(name: str) -> _AgentKind:
    """Classify an agent by its name, in terms that generalise across teams."""
    name = name or ""
    human = bool(_HUMAN.match(name.strip()))
    orchestrator = not human and bool(_ORCHESTRATOR.search(name))
    tool_runner = not (human or orchestrator) and bool(_TOOL_RUNNER.search(name))
    browser = bool(_BROWSER.search(name)) and not (human or orchestrator or tool_runner)
    return _AgentKind(orchestrator, human, tool_runner, browser)


def step_text(step: Step) -> str:
    """The text a reader sees for a step: its content plus its tool calls and results."""
    parts = [step.text]
    parts += [f"{call.name}({_as_text(call.arguments)})" for call in step.tool_calls]
    parts += [_as_text(result.content) for result in step.tool_results]
    return "\n".join(p for p in parts if p)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _any(keywords: tuple[str, ...], text: str) -> bool:
    return any(k in text for k in keywords)


def _exit_failed(window: str) -> bool:
    return ("exit" in window or "execution failed" in window) and bool(_EXIT_FAIL.search(window))


def _keyword_window(text: str) -> str:
    if len(text) > KEYWORD_HEAD + KEYWORD_TAIL:
        text = text[:KEYWORD_HEAD] + "\n" + text[-KEYWORD_TAIL:]
    return text.lower()


def _tokens(text: str) -> set[str]:
    return {t for t in _WORD.findall(text[:TOKEN_WINDOW].lower()) if t not in _STOP and (len(t) > 2 or t.isdigit())}


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _coverage(needle: set[str], hay: set[str]) -> float:
    return len(needle & hay) / len(needle) if needle else 0.0


def _normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def final_answer(trajectory: Trajectory, texts: Sequence[str]) -> str | None:
    """The run's final answer: ``outcome.answer``, else what the last substantive steps state."""
    if trajectory.outcome.answer not in (None, ""):
        return _as_text(trajectory.outcome.answer)
    for text in reversed(texts):
        if not text.strip() or _TERMINATE.fullmatch(text.strip()):
            continue
        for pattern in (_FINAL, _BOXED):
            found = pattern.findall(text)
            if found:
                return found[-1].strip()
        bold = _BOLD.findall(text)
        if bold:
            return bold[-1].strip()
        if _any(_ANSWER, text.lower()):
            numbers = _NUMBER.findall(text[-400:])
            if numbers:
                return numbers[-1]
    return None


def has_ground_truth(value: Any) -> bool:
    """Whether a run's ground truth says anything the features can use (not None, nor blank)."""
    return _ground_truth_text(value) is not None


def _ground_truth_text(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return _as_text(value).strip() or None


def trajectory_features(trajectory: Trajectory, *, with_ground_truth: bool = False) -> list[list[float]]:
    """One row per step, in ``FEATURE_NAMES`` order. Ground-truth features are 0 unless asked for."""
    steps = trajectory.steps
    n = len(steps)
    if n == 0:
        return []
    texts = [step_text(s) for s in steps]
    kinds = {name: agent_kind(name) for name in {s.agent for s in steps}}
    token_sets = [_tokens(t) for t in texts]
    lengths = [len(t) for t in texts]
    max_len = max(lengths) or 1
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.agent] = counts.get(s.agent, 0) + 1
    windows = [_keyword_window(t) for t in texts]
    fails = [_any(_ERROR, w) or _exit_failed(w) for w in windows]
    no_code = [_any(_NO_CODE, w) for w in windows]

    question = _tokens(trajectory.task or "")
    answer = final_answer(trajectory, texts)
    answer_norm = _normalise(answer) if answer else ""
    answer_tokens = _tokens(answer) if answer else set()
    gt = _ground_truth_text(trajectory.ground_truth) if with_ground_truth else None
    gt_norm = _normalise(gt) if gt else ""
    gt_tokens = _tokens(gt) if gt else set()
    answer_misses_gt = bool(gt_norm and answer_norm and gt_norm not in answer_norm and answer_norm not in gt_norm)

    rows: list[list[float]] = []
    seen_agents: dict[str, int] = {}
    seen_numbers: set[str] = set()
    first_worker_seen = first_browser_seen = answer_seen = gt_seen = False
    first_worker: str | None = None
    for i, (step, text) in enumerate(zip(steps, texts, strict=True)):
        kind = kinds[step.agent]
        ordinal = seen_agents.get(step.agent, 0)
        seen_agents[step.agent] = ordinal + 1
        is_first_worker = kind.worker and not first_worker_seen
        if is_first_worker:
            first_worker_seen, first_worker = True, step.agent
        is_first_browser = kind.browser and not first_browser_seen
        first_browser_seen = first_browser_seen or kind.browser
        numbers = set(_NUMBER.findall(text[:TOKEN_WINDOW]))
        new_numbers = len(numbers - seen_numbers) / len(numbers) if numbers else 0.0
        seen_numbers |= numbers
        tokens = token_sets[i]
        repeated = max((_jaccard(tokens, token_sets[j]) for j in range(max(0, i - REPEAT_WINDOW), i)), default=0.0)
        window = windows[i]
        lowered = _normalise(window) if (answer_norm or gt_norm) else ""
        has_answer = bool(answer_norm) and (answer_norm in lowered or
                                            (len(answer_tokens) > 1 and _coverage(answer_tokens, tokens) >= 0.8))
        first_answer = has_answer and not answer_seen
        answer_seen = answer_seen or has_answer
        gt_here = bool(gt_norm) and gt_norm in lowered
        gt_first = gt_here and not gt_seen
        gt_seen = gt_seen or gt_here
        values = {
            "rel_pos": i / (n - 1) if n > 1 else 0.0,
            "log_pos": math.log1p(i),
            "is_first": float(i == 0),
            "is_second": float(i == 1),
            "is_last": float(i == n - 1),
            "agent_orchestrator": float(kind.orchestrator),
            "agent_human": float(kind.human),
            "agent_tool_runner": float(kind.tool_runner),
            "agent_browser": float(kind.browser),
            "agent_worker": float(kind.worker),
            "agent_first_step": float(ordinal == 0),
            "agent_step_ordinal": math.log1p(ordinal),
            "first_worker_step": float(is_first_worker),
            "first_browser_step": float(is_first_browser),
            "agent_is_first_worker": float(first_worker is not None and step.agent == first_worker),
            "agent_share": counts[step.agent] / n,
            "kind_instruction": float(step.kind in ("instruction", "handoff")),
            "kind_thought": float(step.kind in ("thought", "ledger")),
            "log_len": math.log1p(lengths[i]),
            "rel_len": lengths[i] / max_len,
            "kw_error": float(_any(_ERROR, window)),
            "kw_not_found": float(_any(_NOT_FOUND, window)),
            "kw_exit_fail": float(_exit_failed(window)),
            "next_fails": float(i + 1 < n and fails[i + 1]),
            "prev_fails": float(i > 0 and fails[i - 1]),
            "has_code": float(_CODE in window),
            "log_numbers": math.log1p(len(numbers)),
            "new_numbers": new_numbers,
            "kw_assume": float(_any(_ASSUME, window)),
            "kw_verify": float(_any(_VERIFY, window)),
            "kw_terminate": float(bool(_TERMINATE.search(text[:KEYWORD_HEAD]))),
            "kw_plan": float(_any(_PLAN, window)),
            "kw_answer": float(_any(_ANSWER, window)),
            "kw_browse": float(_any(_BROWSE, window)),
            "no_code_to_run": float(i + 1 < n and no_code[i + 1]),
            "repeated": repeated,
            "has_final_answer": float(has_answer),
            "first_final_answer": float(first_answer),
            "question_overlap": _coverage(question, tokens),
            "gt_in_step": float(gt_here),
            "gt_first": float(gt_first),
            "gt_overlap": _coverage(gt_tokens, tokens),
            "final_misses_gt_late": float(answer_misses_gt and first_answer),
        }
        rows.append([values[name] for name in FEATURE_NAMES])
    return rows
