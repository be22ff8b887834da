"""Outcome checks Ω: the sandbox, math normalisation, exact match, evaluators by name."""

from __future__ import annotations

import functools
import time

import pytest
from agentracer.errors import InputError
from agentracer.evaluate.exactmatch import exact_match
from agentracer.evaluate.mathnorm import extract_answer, math_equal, normalize_math
from agentracer.evaluate.outcome import evaluate, extract_code, get_evaluator
from agentracer.evaluate.sandbox import run_python_tests
from agentracer.schema import Outcome, Step, ToolCall, Trajectory

GOOD = "def add(a, b):\n    return a + b\n"
TESTS = ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]


def test_sandbox_passes_and_fails_per_assert():
    ok = run_python_tests(GOOD, TESTS)
    assert ok.passed and ok.passed_count == 2 and ok.total == 2
    bad = run_python_tests("def add(a, b):\n    return a - b\n", TESTS)
    assert not bad.passed and bad.passed_count == 1
    assert "assert add(1, 2) == 3" in bad.failures[0]
    assert "1/2 tests passed" in bad.feedback


def test_sandbox_kills_an_infinite_loop_and_its_children():
    code = "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'while True: pass'])\nwhile True:\n    pass\n"
    started = time.perf_counter()
    result = run_python_tests(code, ["assert True"], timeout=1.5)
    assert time.perf_counter() - started < 8
    assert result.timed_out and not result.passed
    assert "timed out" in result.feedback


def test_sandbox_memory_limit_crash_and_exit():
    hog = run_python_tests("x = bytearray(2_000_000_000)\n", ["assert True"], memory_mb=256)
    assert not hog.passed and "MemoryError" in (hog.error or "")
    crash = run_python_tests("import os\nos._exit(3)\n", ["assert True"])
    assert not crash.passed and "exited with code 3" in crash.error
    segv = run_python_tests("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", ["assert True"])
    assert not segv.passed and "SIGSEGV" in segv.error
    exits = run_python_tests("import sys\nsys.exit(0)\n", ["assert True"])
    assert not exits.passed and "SystemExit" in exits.error


def test_sandbox_has_no_network():
    code = "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('1.1.1.1', 80))\n"
    result = run_python_tests(code, ["assert True"])
    assert not result.passed
    assert "OSError" in result.error or "network" in result.error.lower()


def test_sandbox_survives_huge_output():
    result = run_python_tests("while True:\n    print('x' * 10000)\n", ["assert True"], timeout=5, output_bytes=100_000)
    assert not result.passed and not result.timed_out  # killed by the output limit, quickly


def test_sandbox_does_not_run_the_codes_main_block_but_its_tests_see_its_names():
    demo = 'if __name__ == "__main__":\n    import unittest; unittest.main()\n    print(add(input(), 1))\n'
    result = run_python_tests(GOOD + demo, TESTS)
    assert result.passed, result.feedback
    # the solution's classes and functions are importable by their module's name (pickle, dataclasses, typing)
    code = GOOD + "import dataclasses\n@dataclasses.dataclass\nclass P:\n    x: 'int'\n"
    tests = ["import pickle; assert pickle.loads(pickle.dumps(add))(1, 2) == 3", "assert P(1) == P(1)",
             "import typing; assert typing.get_type_hints(P) == {'x': int}", "x = 0\nadd(x, 1)"]
    assert run_python_tests(code, tests).passed
    # a test written as a script runs its main block: its asserts are never skipped
    main_test = 'if __name__ == "__main__":\n    assert add(1, 2) == 4\n'
    assert not run_python_tests(GOOD, [main_test]).passed


@pytest.mark.parametrize("predicted, truth", [
    ("\\boxed{\\frac{1}{2}}", "0.5"), ("$1,000$", "1000"), ("x = 5", "5"), ("\\dfrac{3}{4}", "3/4"),
    ("90^\\circ", "90"), ("\\text{(A)}", "(a)"), ("(1, 2)", "(1,2)"), ("12 degrees", "12"), ("50\\%", "50%"),
    ("\\left[0, \\frac{1}{2}\\right)", "[0,0.5)"), ("(-\\infty, 3]", "(-\\infty,3]"),
    # a decimal stands for the values it was rounded from, to its last written digit
    ("0.3333333", "\\frac{1}{3}"), ("-0.142857", "-1/7"),
    # a float as Python prints it (its last digit not rounded)
    ("0.6666666666666666", "\\frac{2}{3}"), (repr(0.1 + 0.2), "\\frac{3}{10}"), (repr(5 / 6), "5/6"),
])
def test_math_equal(predicted, truth):
    assert math_equal(predicted, truth)


def test_every_small_fraction_as_python_prints_it_is_that_fraction():
    from math import gcd

    missed = [(n, d) for d in range(2, 40) for n in range(1, d)
              if gcd(n, d) == 1 and not math_equal(repr(n / d), f"\\frac{{{n}}}{{{d}}}")]
    assert missed == []


@pytest.mark.parametrize("predicted, truth", [
    ("0.51", "1/2"), ("(1, 3)", "(1,2)"), ("x+1", "x+2"), ("7", "-7"),
    # an interval's brackets say which ends it holds; a pair (1, 2) is not the closed interval [1, 2]
    ("(-\\infty, 3]", "(-\\infty, 3)"), ("[0,1)", "(0,1]"), ("(1, 2)", "[1, 2]"),
    # integers and fractions are exact; a decimal is off at most half a unit in its last place
    ("1000000", "1000001"), ("\\frac{1000000}{3}", "333333"), ("1000000.0", "1000001"), ("0.33", "1/3"),
    ("0.0000001", "0"),
])
def test_math_not_equal(predicted, truth):
    assert not math_equal(predicted, truth)


def test_math_extract_answer():
    assert extract_answer("so we get \\boxed{\\frac{a}{\\sqrt{2}}} done") == "\\frac{a}{\\sqrt{2}}"
    assert extract_answer("The answer is 42.") == "42"
    assert extract_answer("3 apples and 4 pears, 7 in all") == "7"
    assert normalize_math("\\left(1,2\\right)") == "(1,2)"


@pytest.mark.parametrize("predicted, truth, ok", [
    ("Paris ", "paris", True), ("$1,234", "1234", True), ("3.0", "3", True), ("a, b ,c", "a,b,c", True),
    ("a, c", "a,b,c", False), ("Rome", "Paris", False), (None, "x", False), ("St. Louis", "st louis", True),
    # a ground truth with commas that do not group thousands is a list, element by element (as GAIA's scorer)
    ("3, 4", "3,4", True), ("34", "3,4", False), ("2, 5, 7", "2,5,7", True), ("257", "2,5,7", False),
    ("1234567", "1,234,567", True), ("$1,234.50", "1,234.5", True),
    # numbers compare exactly, however large
    ("1000000000", "1000000001", False), ("1000000000.0", "1000000001", False),
    ("9007199254740993", "9007199254740992", False), ("1e3", "1000", True),
])
def test_exact_match(predicted, truth, ok):
    assert exact_match(predicted, truth) is ok


def _traj(steps, ground_truth, answer=None):
    t = Trajectory(task="t", ground_truth=ground_truth,
                   steps=[Step(index=i, agent=a, content=c, **kw) for i, (a, c, kw) in enumerate(steps)])
    t.outcome = Outcome(answer=answer)
    return t


def test_code_evaluator_uses_latest_code_from_steps_and_tool_calls():
    steps = [("user", "write add", {"role": "user"}),
             ("coder", "```python\ndef add(a, b):\n    return 0\n```", {}),
             ("coder", "", {"kind": "tool_call", "tool_calls": [ToolCall(name="run", arguments={"code": GOOD})]}),
             ("reviewer", "looks good", {})]
    t = _traj(steps, {"tests": TESTS})
    assert extract_code(t) == GOOD
    outcome = evaluate(t, "mbpp")
    assert outcome.success is True and outcome.score == 1.0
    t2 = _traj(steps[:2], {"test_list": TESTS})
    assert evaluate(t2, "code").success is False and t2.outcome.score == 0.5


def test_code_evaluator_without_tests_is_input_error():
    with pytest.raises(InputError, match="no tests"):
        evaluate(_traj([("coder", GOOD, {})], "just an answer"), "mbpp")


def test_math_and_exact_evaluators_and_callables():
    t = _traj([("solver", "thus \\boxed{12}", {})], {"answer": "12"})
    assert evaluate(t, "math").success is True
    t = _traj([("solver", "FINAL ANSWER: Paris", {})], "paris")
    assert evaluate(t, "exact").success is True
    t = _traj([("solver", "FINAL ANSWER: Lyon", {})], "paris")
    assert evaluate(t, "gaia").success is False
    assert evaluate(_traj([("a", "yes", {})], None), lambda traj: traj.steps[-1].text == "yes").success is True
    fn = get_evaluator("json:loads")  # module:function resolves
    assert fn.name == "loads"
    with pytest.raises(InputError, match="unknown evaluator"):
        get_evaluator("nope")


def by_answer(answer):
    return "391" in answer


def test_a_function_of_the_answer_text_gets_the_text_however_it_is_given(tmp_path, monkeypatch):
    """`module:function` and the function itself are one Ω: `by_answer(answer)` got the Trajectory when passed
    directly, and `"391" in trajectory` was silently False."""
    import agentracer
    from agentracer.simple import SimpleAgent, SimpleTeam

    t = _traj([("solver", "it is 391", {})], None, answer="it is 391")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "omega_mod.py").write_text("def by_answer(answer):\n    return '391' in answer\n")
    assert evaluate(t, by_answer).success is True and evaluate(t, "omega_mod:by_answer").success is True

    def team():
        return SimpleTeam([SimpleAgent("a", lambda m: "it is 391")], max_turns=1)

    assert agentracer.trace(team, evaluator=by_answer).run("t").outcome.success is True
    assert agentracer.trace(team, evaluator="exact").run("t", ground_truth="391").outcome.success is False


def test_a_function_of_the_answer_text_gets_the_ground_truth_in_its_parameter_for_it(tmp_path, monkeypatch):
    """`check(answer, expected=None)` never got the expected answer (every run failed, silently), and
    `check(answer, ground_truth)` raised a TypeError."""
    t = _traj([("solver", "it is 391", {})], "391", answer="it is 391")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "omega_gt.py").write_text(
        "def by_expected(answer, expected=None):\n    return expected is not None and answer.endswith(expected)\n"
        "def by_truth(text, *, ground_truth):\n    return text.endswith(ground_truth)\n"
        "def other_option(answer, strict=True):\n    return strict is True\n")
    assert evaluate(t, "omega_gt:by_expected").success is True and evaluate(t, "omega_gt:by_truth").success is True
    assert evaluate(t, "omega_gt:other_option").success is True  # (a parameter of another name keeps its default)
    wrong = _traj([("solver", "it is 390", {})], "391", answer="it is 390")
    assert evaluate(wrong, "omega_gt:by_expected").success is False

    def check(answer, expected="390"):  # a value bound or defaulted is kept where the task has no ground truth
        return answer.endswith(expected)

    no_truth = _traj([("solver", "it is 390", {})], None, answer="it is 390")
    assert evaluate(no_truth, check).success is True
    assert evaluate(no_truth, functools.partial(check, expected="390")).success is True
    assert evaluate(wrong, functools.partial(check, expected="390")).success is True  # (the partial's, not the task's)
