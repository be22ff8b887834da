"""Outcome checks Ω: did a run succeed? Code tests, math answers, exact match, or any callable.

Every evaluator is a callable ``Trajectory -> Outcome`` (so ``agentracer.trace(..., evaluator=...)`` and
``apply_evaluation`` take them as they are); ``get_evaluator(name)`` builds one by name for the CLI:
``mbpp`` (alias ``code``, ``humaneval``), ``math``, ``exact`` (alias ``gaia``), or ``module:function``.

Where a task's checks live: ``trajectory.ground_truth`` is either the answer itself or a dict with
``answer`` and, for code, ``tests`` (or MBPP's ``test_list``) and ``setup`` (``test_setup_code``);
``trajectory.metadata["tests"]`` also works.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InputError
from ..schema import Outcome, Trajectory
from .exactmatch import exact_match, final_answer_text
from .mathnorm import extract_answer, math_equal
from .sandbox import TestRun, run_python_tests

Evaluator = Callable[[Trajectory], Any]

_FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def answer_of(ground_truth: Any) -> Any:
    """The answer part of a ground truth (the value itself, or ``answer``/``code`` of a dict)."""
    if isinstance(ground_truth, dict):
        for key in ("answer", "final_answer", "solution", "code", "reference"):
            if ground_truth.get(key) is not None:
                return ground_truth[key]
        return None
    return ground_truth


def _expected_answer(trajectory: Trajectory, check: str) -> Any:
    """The trajectory's ground-truth answer; ``InputError`` when it has none (``check`` names who asks)."""
    truth = answer_of(trajectory.ground_truth)
    if truth is None:
        raise InputError(f"no ground truth answer for {check}", where=f"trajectory {trajectory.id}")
    return truth


def code_blocks(text: str) -> list[str]:
    """Python code blocks of a text: fenced blocks, or the whole text when it is bare code."""
    blocks = [b.strip("\n") for b in _FENCE.findall(text)]
    if blocks:
        return blocks
    stripped = text.strip()
    if re.match(r"^(def |import |from |class |@)", stripped):
        return [stripped]
    return []


def _tool_code(arguments: Any) -> str | None:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if isinstance(arguments, dict):
        for key in ("code", "source", "program", "script"):
            if isinstance(arguments.get(key), str):
                return arguments[key]
    return None


def extract_code(trajectory: Trajectory) -> str | None:
    """The solution code of a run: a code block in the final answer, else the latest code an agent wrote."""
    answer = trajectory.outcome.answer
    if isinstance(answer, str):
        blocks = code_blocks(answer)
        if blocks:
            return blocks[-1]
    for step in reversed(trajectory.steps):
        if step.role in ("user", "tool", "system") or step.kind == "tool_result":
            continue
        for call in reversed(step.tool_calls):
            code = _tool_code(call.arguments)
            if code:
                return code
        blocks = code_blocks(step.text)
        if blocks:
            return blocks[-1]
    return None


def final_text(trajectory: Trajectory) -> str:
    """The run's final answer as text (the outcome's answer, else the last agent message)."""
    answer = trajectory.outcome.answer
    if answer not in (None, ""):
        return answer if isinstance(answer, str) else json.dumps(answer)
    for step in reversed(trajectory.steps):
        if step.role not in ("user", "system"):
            return step.text
    return ""


class CodeTests:
    """Ω for code tasks: the run's solution passes the task's asserts in the sandbox."""

    name = "mbpp"

    def __init__(self, tests: Sequence[str] | None = None, *, setup: str = "", timeout: float = 10.0,
                 memory_mb: int = 512) -> None:
        self.tests = list(tests) if tests is not None else None
        self.setup = setup
        self.timeout = timeout
        self.memory_mb = memory_mb

    def _checks(self, trajectory: Trajectory) -> tuple[list[str], str]:
        if self.tests is not None:
            return self.tests, self.setup
        truth = trajectory.ground_truth if isinstance(trajectory.ground_truth, dict) else {}
        tests = truth.get("tests") or truth.get("test_list") or trajectory.metadata.get("tests")
        if not tests:
            raise InputError("no tests for this task: put them in ground_truth['tests'] or metadata['tests']",
                             where=f"trajectory {trajectory.id}")
        if isinstance(tests, str):
            tests = [tests]
        setup = truth.get("setup") or truth.get("test_setup_code") or trajectory.metadata.get("test_setup") or ""
        return list(tests), setup

    def check(self, code: str, trajectory: Trajectory) -> TestRun:
        tests, setup = self._checks(trajectory)
        return run_python_tests(code, tests, setup=setup, timeout=self.timeout, memory_mb=self.memory_mb)

    def __call__(self, trajectory: Trajectory) -> Outcome:
        code = extract_code(trajectory)
        if code is None:
            self._checks(trajectory)  # bad input is an error, not a failed run
            return Outcome(success=False, score=0.0, feedback="no code found in the run's messages")
        result = self.check(code, trajectory)
        score = result.passed_count / result.total if result.total else 0.0
        return Outcome(success=result.passed, score=score, feedback=result.feedback)


class MathAnswer:
    """Ω for math tasks: the final answer equals the ground truth after normalisation."""

    name = "math"

    def __call__(self, trajectory: Trajectory) -> Outcome:
        truth = _expected_answer(trajectory, "a math check")
        predicted = extract_answer(final_text(trajectory))
        ok = math_equal(predicted, truth)
        return Outcome(success=ok, score=float(ok), answer=predicted,
                       feedback=f"answer {predicted!r} is {'correct' if ok else 'wrong'}")


class ExactMatch:
    """Ω for GAIA-style tasks: normalised exact match of the final answer."""

    name = "exact"

    def __call__(self, trajectory: Trajectory) -> Outcome:
        truth = _expected_answer(trajectory, "an exact-match check")
        predicted = final_answer_text(final_text(trajectory))
        ok = exact_match(predicted, truth)
        return Outcome(success=ok, score=float(ok), answer=predicted,
                       feedback=f"answer {predicted!r} {'matches' if ok else 'does not match'} the expected answer")


def wants_text(fn: Callable[..., Any]) -> bool:
    """Whether a user's Ω takes the final answer text (its first parameter is named ``answer``, ``text`` or
    ``output``) rather than the trajectory."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return bool(params) and params[0].name in ("answer", "text", "output")


#: Names of a text Ω's parameter that gets the task's ground truth (``def check(answer, expected): ...``).
GROUND_TRUTH_PARAMETERS = ("ground_truth", "expected")


def ground_truth_parameter(fn: Callable[..., Any]) -> inspect.Parameter | None:
    """The parameter of a text Ω that takes the ground truth (one of ``GROUND_TRUTH_PARAMETERS``), if any; one a
    ``functools.partial`` binds keeps its value."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    bound = getattr(fn, "keywords", None) or {}
    return next((params[name] for name in GROUND_TRUTH_PARAMETERS if name in params and name not in bound and
                 params[name].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)), None)


class FromCallable:
    """Any user function of a trajectory (or of its final answer text, and then of the task's ground truth when it
    has a parameter for it: ``expected``, ``ground_truth``...) as an evaluator."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")
        self._wants_text = wants_text(fn)
        self._truth = ground_truth_parameter(fn) if self._wants_text else None

    def __call__(self, trajectory: Trajectory) -> Any:
        truth = self._truth
        if truth is not None and (trajectory.ground_truth is not None or truth.default is inspect.Parameter.empty):
            return self.fn(final_text(trajectory), **{truth.name: trajectory.ground_truth})  # (None: its default)
        if self._wants_text:
            return self.fn(final_text(trajectory))
        return self.fn(trajectory)


EVALUATORS: dict[str, Callable[..., Evaluator]] = {
    "mbpp": CodeTests, "code": CodeTests, "humaneval": CodeTests,
    "math": MathAnswer, "exact": ExactMatch, "gaia": ExactMatch,
}


def get_evaluator(spec: str | Evaluator, **options: Any) -> Evaluator:
    """An evaluator by name (``mbpp``, ``math``, ``exact``), ``module:function``, or a callable: given either way, a
    function whose first parameter is ``answer``, ``text`` or ``output`` gets the final answer text, any other the
    trajectory."""
    if callable(spec):
        return FromCallable(spec) if wants_text(spec) else spec
    if spec in EVALUATORS:
        return EVALUATORS[spec](**options)
    if ":" in spec:
        from ..loading import load_object

        fn = load_object(spec)
        if not callable(fn):
            raise InputError(f"evaluator {spec!r} is not callable")
        return FromCallable(fn)
    raise InputError(f"unknown evaluator {spec!r}; use one of {sorted(EVALUATORS)} or module:function")


def evaluate(trajectory: Trajectory, evaluator: str | Evaluator) -> Outcome:
    """Apply Ω to ``trajectory`` (filling its outcome) and return the outcome."""
    from ..team import apply_evaluation

    apply_evaluation(trajectory, get_evaluator(evaluator))
    return trajectory.outcome


__all__ = [
    "CodeTests", "ExactMatch", "EVALUATORS", "Evaluator", "FromCallable", "MathAnswer", "answer_of",
    "code_blocks", "evaluate", "extract_code", "final_text", "get_evaluator", "run_python_tests",
]
