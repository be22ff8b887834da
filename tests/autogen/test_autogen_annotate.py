"""Annotating AutoGen runs: steps AutoGen makes from earlier ones (a tool-call summary) are not candidates."""

from __future__ import annotations

import agentracer
from agentracer.annotate import CounterfactualSearch, LocalReplayer
from agentracer.annotate.injection import FaultInjector
from agentracer.evaluate.outcome import CodeTests
from agentracer.models import ScriptedModel
from agentracer.plugins import why_not_replaceable

from agentracer_plugins.autogen.demo.run import load_task, task_text
from agentracer_plugins.autogen.demo.team import make_team


def _demo_run():
    row = load_task()
    evaluator = CodeTests(row["test_list"], timeout=10, memory_mb=256)
    team = agentracer.trace(make_team)
    failed = team.run(task_text(row), ground_truth={"tests": row["test_list"]})
    agentracer.team.apply_evaluation(failed, evaluator)
    assert failed.outcome.success is False
    return team, evaluator, failed


def test_a_search_where_no_step_flips_ends_as_no_flip_past_a_summary_step_autogen_cannot_replace():
    """The coder's tool-call summary (no reflection on tool use) follows from its tool call: a replay refuses it
    whatever the action, so it is said to be not replaceable, and the task is finished (before, every run of
    ``annotate`` left it open as untried and asked to be run again)."""
    team, evaluator, failed = _demo_run()
    summary = next(s.index for s in failed.steps if s.kind == "summary")
    assert "no model call produced" in why_not_replaceable(failed, summary)
    assert why_not_replaceable(failed, summary - 2) is None  # its tool call is replaceable
    analyzer = ScriptedModel(lambda messages: "<correction>fixed</correction>")  # changes nothing that matters
    result = CounterfactualSearch(LocalReplayer(team, evaluator), analyzer, k=2).search(failed)
    assert result.verdict is None and result.stopped == "no flip"
    statuses = {a.step: a.status for a in result.attempts}
    assert statuses[summary] == "not_replaceable" and "diverged" not in statuses.values()
    assert result.replay_count == len([s for s in failed.steps if s.agent != "user" and s.kind != "tool_result"]) - 1


def test_fault_injection_does_not_rewrite_a_step_autogen_cannot_replace():
    team, evaluator, failed = _demo_run()
    summary = next(s.index for s in failed.steps if s.kind == "summary")
    asked: list[int] = []

    def perturber(messages):
        asked.append(len(messages))
        return "<rewrite>a different answer</rewrite>"

    succeeded = failed.model_copy(deep=True)
    succeeded.outcome.success = True
    injector = FaultInjector(LocalReplayer(team, evaluator), ScriptedModel(perturber), tries=10, seed=0)
    result = injector.inject(succeeded)
    assert result.attempts and summary not in {a.step for a in result.attempts}
