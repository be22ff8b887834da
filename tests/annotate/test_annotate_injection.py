"""Fault injection on successful scripted runs: kept only when Ω flips and nothing announces the rewrite."""

from __future__ import annotations

import dataclasses
from collections import Counter

import agentracer
import pytest
from agentracer.annotate.budget import Budget
from agentracer.annotate.injection import FaultInjector, StepChooser
from agentracer.annotate.leakage import announces_itself, markers_in, rewrite_reports_itself
from agentracer.annotate.replayer import LocalReplayer
from agentracer.models import ScriptedModel
from annotate_teams import chain_evaluator, chain_perturber, chain_task, last_value, make_chain


def good_run(steps=8):
    team = agentracer.trace(make_chain, steps=steps, error_step=999, evaluator=chain_evaluator)
    task, truth = chain_task(steps)
    trajectory = team.run(task, ground_truth=truth)
    assert trajectory.outcome.success is True
    return team, trajectory


def test_injection_keeps_a_failing_labelled_replay():
    team, trajectory = good_run()
    injector = FaultInjector(LocalReplayer(team, chain_evaluator), ScriptedModel(chain_perturber), seed=1)
    result = injector.inject(trajectory)
    kept = result.kept
    assert kept is not None and kept.outcome.success is False
    label = kept.label("injection")
    assert label.step == kept.replay.step and label.agent == trajectory.steps[label.step].agent
    assert kept.steps[label.step].replaced and kept.replay.parent_id == trajectory.id
    assert label.metadata["mistake_type"] in ("wrong_fact", "off_by_one", "dropped_requirement", "wrong_logic", "premature_conclusion")
    assert markers_in(kept) == []
    assert trajectory.labels == []  # the successful run is untouched


def test_rewrites_that_announce_themselves_are_dropped():
    team, trajectory = good_run()
    loud = ScriptedModel(lambda m: "<rewrite>value = 99 (injected error)</rewrite>")
    result = FaultInjector(LocalReplayer(team, chain_evaluator), loud, tries=2).inject(trajectory)
    assert result.kept is None
    assert [a.status for a in result.attempts] == ["marker", "marker"]
    assert "injected" in result.attempts[0].detail


def test_rewrites_that_do_not_flip_are_not_kept():
    team, trajectory = good_run()
    harmless = ScriptedModel(lambda m: "<rewrite>value = 7 (done)</rewrite>")  # only the last step survives it
    injector = FaultInjector(LocalReplayer(team, chain_evaluator), harmless, strategy="late", tries=3, seed=3)
    result = injector.inject(trajectory)
    assert all(a.status in ("not_flipped", "kept") for a in result.attempts)
    for attempt in result.attempts:
        if attempt.status == "kept":
            assert attempt.success is False


def test_marker_check_ignores_what_the_parent_already_said():
    team, trajectory = good_run()
    trajectory.task = "Explain SQL injection, then count."
    assert announces_itself(trajectory, trajectory) == []
    assert announces_itself(trajectory) == ["injection"]


@pytest.mark.parametrize("said", ["(I introduced an off-by-one bug)", "(this is a mistake)", "(planted error)",
                                  "(subtle error here)", "# changed this", "(altered)", "NOTE: modified", "(tampered)",
                                  "(corrupted)", "(original was value = 4)"])
def test_a_rewrite_that_says_what_it_is_is_caught(said):
    assert rewrite_reports_itself(f"value = 4 {said}", "value = 3"), said


def test_plain_talk_of_errors_is_no_marker_in_the_run_nor_in_a_rewrite():
    """Later agents of the run may well say such things of a mistake they see; a rewrite may be ordinary code."""
    _, trajectory = good_run()
    for text in ("The error rate is 5%", "Fixed the bug in parse()", "I added the numbers", "the list was sorted",
                 "Here is the modified code", "no error here", "The original was O(n^2), this is O(n)",
                 "the list is altered in place", "data may be corrupted", "There's a subtle mistake above",
                 "I'll add proper error handling"):
        trajectory.steps[3].content = text
        assert markers_in(trajectory) == [], text
    for text in ("Fixed the bug in parse()", "Here is the modified code", "the list is altered in place",
                 "I'll add proper error handling"):
        assert rewrite_reports_itself(text, "value = 3") == [], text


@pytest.mark.parametrize("strategy", ["uniform", "late", "agent-balanced"])
def test_step_strategies(strategy):
    _, trajectory = good_run(steps=12)
    candidates = list(range(1, 12))
    chooser = StepChooser(strategy, seed=0)
    order = chooser.order(trajectory, candidates)
    assert sorted(order) == candidates
    if strategy == "late":  # later steps come first far more often
        firsts = Counter(StepChooser("late", seed=s).order(trajectory, candidates)[0] for s in range(300))
        assert sum(v for k, v in firsts.items() if k > 6) > 2 * sum(v for k, v in firsts.items() if k <= 6)
    if strategy == "agent-balanced":
        agents = [trajectory.steps[i].agent for i in order[:3]]
        assert len(set(agents)) == 3  # one step of each agent before any repeats
        chooser.kept("agent0")
        chooser.kept("agent1")
        first = trajectory.steps[chooser.order(trajectory, candidates)[0]].agent
        assert first == "agent2"


def test_injection_refuses_failed_runs_and_unknown_types():
    team = agentracer.trace(make_chain, steps=6, error_step=3, evaluator=chain_evaluator)
    bad = team.run(chain_task(6)[0], ground_truth=chain_task(6)[1])
    injector = FaultInjector(LocalReplayer(team, chain_evaluator), ScriptedModel(chain_perturber))
    with pytest.raises(ValueError, match="did not succeed"):
        injector.inject(bad)
    with pytest.raises(ValueError, match="unknown mistake"):
        FaultInjector(LocalReplayer(team, chain_evaluator), ScriptedModel(chain_perturber), mistake_types=["typo"])
    with pytest.raises(ValueError, match="unknown step strategy"):
        StepChooser("random")


def test_a_runs_tries_do_not_depend_on_the_runs_injected_before_it():
    """Tasks run concurrently and a resumed annotation skips finished ones: a run's steps and mistakes must come
    out the same whichever runs the injector saw first."""
    team, trajectory = good_run()
    _, other = good_run(steps=6)
    harmless = ScriptedModel(lambda m: "<rewrite>value = 7 (done)</rewrite>")

    def tries(*runs):
        injector = FaultInjector(LocalReplayer(team, chain_evaluator), harmless, tries=3, seed=5)
        return [[(a.step, a.mistake_type) for a in injector.inject(run).attempts] for run in runs][-1]

    assert tries(trajectory) == tries(other, trajectory) == tries(other, other, trajectory)


def test_two_recordings_of_one_deterministic_run_get_the_same_tries():
    """A run's id is random: two fresh `annotate` runs with one --seed must still draw the same steps and
    mistakes for the same run, and a different run must be free to draw differently."""
    team, first = good_run()
    _, second = good_run()
    assert first.id != second.id
    harmless = ScriptedModel(lambda m: "<rewrite>value = 7 (done)</rewrite>")

    def tries(run, seed=5):
        injector = FaultInjector(LocalReplayer(team, chain_evaluator), harmless, tries=3, seed=seed)
        return [(a.step, a.mistake_type) for a in injector.inject(run).attempts]

    assert tries(first) == tries(second)
    assert len({tuple(tries(first, seed)) for seed in range(8)}) > 1  # the seed still matters


def same_value(messages):
    """A perturber whose rewrite keeps the step's value (said differently): it never flips the run."""
    user = messages[-1]["content"]
    target = user.split("History before the step:")[1].split("Kind of mistake")[0].rsplit("\n\nStep ", 1)[1]
    return f"<rewrite>value = {last_value(target)} (kept)</rewrite>"


def test_a_rewrite_replayed_by_an_earlier_run_is_not_replayed_again():
    team, trajectory = good_run()
    harmless = ScriptedModel(same_value)
    replayer = LocalReplayer(team, chain_evaluator)
    first = FaultInjector(replayer, harmless, tries=2, seed=2).inject(trajectory)
    assert len(first.replays) == 2 and first.kept is None
    calls = []
    counting = type("Counting", (LocalReplayer,), {"replay": lambda self, *a: calls.append(a) or replayer.replay(*a)})
    again = FaultInjector(counting(team, chain_evaluator), harmless, tries=3, seed=2).inject(
        trajectory, earlier=first.replays)
    assert [a.step for a in again.attempts[:2]] == [a.step for a in first.attempts]
    assert [r.id for r in again.replays[:2]] == [r.id for r in first.replays]  # kept, not made again
    assert [a.detail for a in again.attempts[:2]] == ["replayed by an earlier run"] * 2
    assert len(calls) == len(again.attempts) - 2 == 1  # only the new try was replayed


def test_a_perturber_answer_from_the_cache_costs_no_model_call():
    team, trajectory = good_run()

    class Remembered(ScriptedModel):  # answers as a model whose cache holds every answer already
        async def acomplete(self, messages, **params):
            return dataclasses.replace(await super().acomplete(messages, **params), cached=True)

    budget = Budget()
    result = FaultInjector(LocalReplayer(team, chain_evaluator), Remembered(same_value), tries=3, seed=2,
                           budget=budget).inject(trajectory)
    assert [a.status for a in result.attempts] == ["not_flipped"] * 3
    live = sum(1 for r in result.replays for c in r.model_calls() if c.source == "live")
    assert budget.model_calls == live and budget.tokens == sum(
        c.usage.total_tokens for r in result.replays for c in r.model_calls() if c.source == "live")
