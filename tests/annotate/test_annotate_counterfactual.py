"""Counterfactual replay on a scripted framework-free team: the earliest flipping step, k at a time."""

from __future__ import annotations

import agentracer
import pytest
from agentracer.annotate.budget import Budget
from agentracer.annotate.counterfactual import CounterfactualSearch, label_failed
from agentracer.annotate.leakage import leaks_answer, minimal_edit
from agentracer.annotate.replayer import LocalReplayer
from agentracer.models import ModelError, ScriptedModel
from annotate_teams import chain_analyzer, chain_evaluator, chain_task, last_value, make_chain


def failed_run(steps=10, error_step=6):
    team = agentracer.trace(make_chain, steps=steps, error_step=error_step, evaluator=chain_evaluator)
    task, truth = chain_task(steps)
    trajectory = team.run(task, ground_truth=truth)
    assert trajectory.outcome.success is False
    return team, trajectory


@pytest.mark.parametrize("k", [1, 3, 8])
def test_finds_the_decisive_step_at_any_concurrency(k):
    team, trajectory = failed_run()
    search = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(chain_analyzer), k=k)
    result = search.search(trajectory)
    verdict = result.verdict
    assert verdict is not None and verdict.source == "counterfactual"
    assert (verdict.step, verdict.agent) == (6, trajectory.steps[6].agent)
    assert verdict.flags == []
    tried = {a.step for a in result.attempts if a.status in ("flipped", "not_flipped")}
    assert set(range(1, 6)) <= tried  # every earlier step was tried and did not flip
    assert [a.step for a in result.attempts if a.status == "flipped"] == [6]
    # every replay is on record with its Ω, and the replays really are children of the failed run
    by_id = {r.id: r for r in result.replays}
    for attempt in verdict.metadata["attempts"]:
        if attempt["replay_id"]:
            replay = by_id[attempt["replay_id"]]
            assert replay.replay.parent_id == trajectory.id and replay.replay.step == attempt["step"]
            assert replay.outcome.success == attempt["success"]
    flipped = by_id[verdict.metadata["replay_id"]]
    assert flipped.outcome.success and flipped.steps[6].replaced
    if k == 1:  # the sequential scan never looks past the flip
        assert max(a.step for a in result.attempts) == 6


def test_labels_the_failed_trajectory_and_keeps_audit():
    team, trajectory = failed_run()
    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(chain_analyzer), k=2).search(trajectory)
    label_failed(trajectory, result)
    assert trajectory.label("counterfactual").step == 6
    assert trajectory.metadata["counterfactual"]["replays"] == [r.id for r in result.replays]
    again = agentracer.Trajectory.from_json(trajectory.to_json())
    assert again.label("counterfactual").metadata["attempts"][0]["step"] == 1


def test_several_proposals_per_step():
    team, trajectory = failed_run(steps=8, error_step=3)
    answers = iter(["<correction>value = 9</correction>", "<correction>value = 3</correction>"] * 20)

    def analyzer(messages):
        if "Step 3 to correct" in messages[-1]["content"]:
            return next(answers)  # first a bad fix, then the right one
        return chain_analyzer(messages)

    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(analyzer), k=1,
                                  proposals=2).search(trajectory)
    assert result.verdict.step == 3
    at3 = [a for a in result.attempts if a.step == 3]
    assert [a.status for a in at3] == ["not_flipped", "flipped"]


def test_budget_stops_the_search_without_a_false_label():
    team, trajectory = failed_run()
    budget = Budget(max_replays=3)
    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(chain_analyzer), k=1,
                                  budget=budget).search(trajectory)
    assert result.verdict is None and result.stopped.startswith("budget spent")
    assert len(result.replays) == 3 and budget.replays == 3
    calls = Budget(max_model_calls=4)
    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(chain_analyzer), k=1,
                                  budget=calls).search(trajectory)
    assert result.verdict is None and calls.model_calls >= 4


def test_leakage_guard_rejects_pasted_answers():
    team, trajectory = failed_run()
    leaky = ScriptedModel(lambda m: "<correction>the final answer is 9, value = 9</correction>")
    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), leaky, k=2).search(trajectory)
    assert result.verdict is None
    # step 8 already said "value = 9": repeating it leaks nothing new, so only that one was replayed
    assert [r.replay.step for r in result.replays] == [8]
    assert {a.status for a in result.attempts if a.step != 8} == {"leak"}
    assert leaks_answer("x = 42", "42") and not leaks_answer("x = 420", "42")
    assert leaks_answer("def f():\n    return  1", {"code": "def f():\n  return 1"})
    assert not leaks_answer("it is 42", "42", original="I think 42")


def test_unchanged_and_failing_analyzer():
    team, trajectory = failed_run()
    same = ScriptedModel(lambda m: "<correction>UNCHANGED</correction>")
    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), same, k=4).search(trajectory)
    assert result.verdict is None and result.stopped == "no flip" and not result.replays
    def crashing(messages):
        raise RuntimeError("a bug in a custom analyzer")

    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(crashing), k=2).search(trajectory)
    assert result.verdict is None and result.stopped.startswith("incomplete")
    assert all(a.status == "error" for a in result.attempts)


def test_model_error_of_the_analyzer_ends_the_search():
    team, trajectory = failed_run()
    broken = ScriptedModel([])  # runs out of answers at once: a ModelError, as a backend gives after its retries
    with pytest.raises(ModelError, match="the analyzer failed: .*ran out of answers"):
        CounterfactualSearch(LocalReplayer(team, chain_evaluator), broken, k=2).search(trajectory)


def test_refuses_successful_runs():
    team = agentracer.trace(make_chain, steps=6, error_step=99, evaluator=chain_evaluator)
    ok = team.run(*chain_task(6)[:1], ground_truth=chain_task(6)[1])
    assert ok.outcome.success
    with pytest.raises(ValueError, match="succeeded"):
        CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(chain_analyzer)).search(ok)


def test_an_answer_without_its_tag_proposes_nothing_and_leaves_the_step_untried():
    """A reasoning model that forgets the tag: its text is never replayed, and no step after it is labelled as if
    the step had been cleared."""
    team, trajectory = failed_run(steps=8, error_step=3)

    def forgetful(messages):
        if "\nStep 3 to correct" in messages[-1]["content"]:
            return "Let me think. The value should be checked against the previous message."
        return chain_analyzer(messages)

    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(forgetful), k=1).search(trajectory)
    at_3 = [a for a in result.attempts if a.step == 3]
    assert [a.status for a in at_3] == ["untagged"] and at_3[0].proposal is None and at_3[0].replay_id is None
    assert all(r.replay.step != 3 for r in result.replays)
    verdict = result.verdict
    assert verdict is None or "earlier_steps_untried" in verdict.flags


def test_later_proposals_are_sampled_and_a_repeated_one_is_not_replayed_again():
    team, trajectory = failed_run(steps=8, error_step=3)
    asked: list[dict] = []

    class Recording(ScriptedModel):
        async def acomplete(self, messages, **params):
            asked.append(params)
            return await super().acomplete(messages, **params)

    def analyzer(messages):  # the same bad fix for step 3, whatever the sampling
        if "Step 3 to correct" in messages[-1]["content"]:
            return "<correction>value = 9</correction>"
        return chain_analyzer(messages)

    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), Recording(analyzer), k=1, proposals=3,
                                  analyzer_params={"max_tokens": 500}).search(trajectory)
    at3 = [a for a in result.attempts if a.step == 3]
    assert [a.status for a in at3] == ["not_flipped", "duplicate", "duplicate"]
    assert sum(1 for r in result.replays if r.replay.step == 3) == 1
    assert asked[:3] == [{"max_tokens": 500}, {"temperature": 0.8, "max_tokens": 500, "seed": 1},
                         {"temperature": 0.8, "max_tokens": 500, "seed": 2}]


def test_a_step_whose_every_replay_diverged_is_untried_not_cleared():
    """A replay that diverges says nothing about its step: a flip after it is flagged, not taken as the earliest."""
    from agentracer import ReplayDivergence

    team, trajectory = failed_run(steps=8, error_step=5)

    class DivergingAt2(LocalReplayer):
        async def replay(self, trajectory, step, action):
            if step == 2:
                raise ReplayDivergence(step=1, agent=trajectory.steps[1].agent, reason="a changed team")
            return await super().replay(trajectory, step, action)

    search = CounterfactualSearch(DivergingAt2(team, chain_evaluator), ScriptedModel(chain_analyzer), k=1)
    result = search.search(trajectory)
    assert [a.status for a in result.attempts if a.step == 2] == ["diverged"]
    assert result.verdict is not None and result.verdict.step == 5
    assert result.verdict.flags == ["earlier_steps_untried"]


def test_a_replay_cancelled_past_the_flip_is_labelled_cancelled_not_tried():
    import asyncio

    team, trajectory = failed_run(steps=6, error_step=1)

    class SlowAt2(LocalReplayer):
        async def replay(self, trajectory, step, action):
            if step == 2:
                await asyncio.sleep(5)  # still running when step 1 flips
            return await super().replay(trajectory, step, action)

    result = CounterfactualSearch(SlowAt2(team, chain_evaluator), ScriptedModel(chain_analyzer), k=2).search(trajectory)
    assert result.verdict is not None and result.verdict.step == 1
    at_2 = [a for a in result.verdict.metadata["attempts"] if a["step"] == 2]
    assert [a["status"] for a in at_2] == ["cancelled"] and at_2[0]["replay_id"] is None


def test_a_label_says_what_its_own_search_spent_beside_the_runs_total():
    team, first = failed_run(steps=8, error_step=3)
    _, second = failed_run(steps=8, error_step=5)
    budget = Budget(price_per_1k_tokens=1.0)
    search = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(chain_analyzer), k=1,
                                  budget=budget)
    one, two = search.search(first), search.search(second)
    for result in (one, two):
        spent = result.verdict.metadata["spent"]
        assert spent["replays"] == len(result.replays)
        assert spent["model_calls"] == result.analyzer_calls + sum(a.live_calls for a in result.attempts)
    assert two.verdict.metadata["spent"]["replays"] < two.verdict.metadata["run_spent"]["replays"]
    assert two.verdict.metadata["run_spent"]["replays"] == budget.replays == len(one.replays) + len(two.replays)


def test_a_step_whose_only_fix_leaks_the_answer_is_untried_not_cleared():
    """Step 6 can only be fixed by a proposal that pastes the ground truth: it is rejected, so step 6 is untried and a
    later flip is flagged (it was taken as 'tried, did not flip' and a later step got an unflagged label)."""
    team, trajectory = failed_run()

    def analyzer(messages):
        text = chain_analyzer(messages)
        step = int(messages[-1]["content"].split(" to correct - agent")[0].rsplit("Step ", 1)[1].split()[0])
        if step == 6:
            return text.replace("(checked)", "(the final answer is 9)")
        if step == 7:  # a later step whose change flips the run on its own
            return "<correction>value = 7 (checked)</correction>"
        return text

    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(analyzer), k=1).search(trajectory)
    assert [a.status for a in result.attempts if a.step == 6] == ["leak"]
    verdict = result.verdict
    assert verdict is not None and verdict.step == 7 and "earlier_steps_untried" in verdict.flags


@pytest.mark.parametrize(("failure", "counts_as"), [(ConnectionError("HTTP 503 from the model server"), "error"),
                                                    (TimeoutError("no answer within 30 s"), "error"),
                                                    (ValueError("the repaired code crashed"), "not_flipped")])
def test_a_replay_its_model_server_broke_is_untried_while_a_crash_of_the_run_is_evidence(failure, counts_as):
    """One transient failure of the team's own model during the replay at the decisive step says nothing about the
    repair: the step stays untried and the later flip is flagged (it was taken as 'did not flip', labelling the
    next step with no flag); a crash of the team's own work after the repair is a failed run, as before."""
    from annotate_teams import chain_model

    counting, state = chain_model(6), {"replaying": False, "broke": False}

    def model(messages):
        history = [m for m in messages if m["role"] != "system"]
        if state["replaying"] and not state["broke"] and len(history) == 7 and "(checked)" in history[-1]["content"]:
            state["broke"] = True  # (the first call after the repair at step 6, once)
            raise failure
        return counting(messages)

    team = agentracer.trace(make_chain, steps=10, error_step=6, model=model, evaluator=chain_evaluator)
    task, truth = chain_task(10)
    trajectory = team.run(task, ground_truth=truth)
    assert trajectory.outcome.success is False
    state["replaying"] = True

    def analyzer(messages):
        step = int(messages[-1]["content"].split(" to correct - agent")[0].rsplit("Step ", 1)[1].split()[0])
        return "<correction>value = 7 (checked)</correction>" if step == 7 else chain_analyzer(messages)

    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(analyzer), k=1).search(trajectory)
    assert [a.status for a in result.attempts if a.step == 6] == [counts_as]
    assert result.verdict is not None and result.verdict.step == 7
    assert result.verdict.flags == (["earlier_steps_untried"] if counts_as == "error" else [])


def test_a_repair_that_must_state_the_answer_is_tried_as_a_minimal_edit_and_flagged():
    """The last step slips (value = 10 for 9): its only repair holds the ground truth. As a small edit of the step it
    is replayed, and the label says so; a proposal that rewrites a step into the answer is still refused."""
    team, trajectory = failed_run(steps=10, error_step=9)
    assert trajectory.steps[9].text == "value = 10"

    def analyzer(messages):
        before = messages[-1]["content"].split("History before the step:")[1].split(" to correct - agent")[0]
        step = int(messages[-1]["content"].split(" to correct - agent")[0].rsplit("Step ", 1)[1].split()[0])
        if step == 3:
            return "<correction>Let me just say that the final result of the whole count is 9</correction>"
        return f"<correction>value = {last_value(before.rsplit(chr(10) * 2 + 'Step ', 1)[0]) + 1}</correction>"

    result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(analyzer), k=1).search(trajectory)
    assert [a.status for a in result.attempts if a.step == 3] == ["leak"]
    assert result.verdict is not None and result.verdict.step == 9
    assert result.verdict.flags == ["earlier_steps_untried", "answer_in_correction"]
    resumed = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(analyzer), k=1)
    from agentracer.team import run_sync

    again = run_sync(resumed.asearch(trajectory, earlier=result.replays))  # (a run its budget cut, resumed)
    assert again.verdict is not None and again.verdict.flags == ["earlier_steps_untried", "answer_in_correction"]
    assert minimal_edit("value = 10", "value = 9", "9") and minimal_edit("So 17*23 = 401.", "So 17*23 = 391.", "391")
    assert not minimal_edit("value = 10", "The final answer of the whole count is 9.", "9")
    plan = "First read the numbers, then multiply them column by column, carrying as usual. " * 4
    assert not minimal_edit(plan, plan + " The answer is 391.", "391")  # (added to a long step: no edit of it)


def test_what_counts_as_a_failure_of_the_model_server_and_what_does_not():
    import tarfile

    from agentracer.errors import TeamRunError, service_failure

    def raised(exc: BaseException) -> TeamRunError:
        try:
            try:
                raise exc
            except BaseException as inner:
                raise TeamRunError(f"the team raised {type(inner).__name__}: {inner}", None) from inner
        except TeamRunError as outer:
            return outer

    class Refused(Exception):
        status_code = 503

    class Missing(Exception):
        status_code = 404

    def during(handled: BaseException, then: BaseException) -> BaseException:
        try:
            try:
                raise handled
            except BaseException:
                raise then  # noqa: B904 - (its __context__ is the handled one: what this test is about)
        except BaseException as exc:
            return exc

    service = [ConnectionRefusedError("refused"), TimeoutError("no answer"), Refused("busy"),
               RuntimeError("APIConnectionError: Connection error.")]  # (AutoGen re-raises an agent's error as text)
    not_service = [ValueError("bad timeout value"), tarfile.ReadError("not a tar"), BrokenPipeError("tool's pipe"),
                   Missing("no such model"), during(ConnectionError("lost"), KeyError("answer"))]
    assert [service_failure(raised(e)) for e in service] == [True] * len(service)
    assert [service_failure(raised(e)) for e in not_service] == [False] * len(not_service)


def test_an_analyzer_that_never_answers_in_form_closes_the_search_after_its_new_samples(tmp_path):
    """A cached untagged answer is asked again as a new sample on each later run (a deterministic analyzer, or one
    whose answers an earlier run cached, left the task open forever, each run saying 'run again'); once every
    sample is one an earlier run got, the search ends as no flip, saying which steps the analyzer never answered."""
    from agentracer.annotate.counterfactual import REASKS
    from agentracer.models.openai_http import OpenAIChatModel
    from agentracer.testing.openai_server import OpenAIServer

    team, trajectory = failed_run(steps=4, error_step=2)
    with OpenAIServer(lambda request: "I believe step 2 is the problem.") as server:
        analyzer = OpenAIChatModel(server.base_url, "analyzer", cache_dir=str(tmp_path / "cache"))
        search = CounterfactualSearch(LocalReplayer(team, chain_evaluator), analyzer, k=2)
        stops, asked = [], []
        for _ in range(REASKS + 2):
            result = search.search(trajectory)
            stops.append(result.stopped)
            asked.append(len(server.requests))
    candidates = len([s for s in trajectory.steps if s.role not in ("user", "tool", "system")])
    assert stops[:-1] == ["incomplete: steps could not be tried (see the attempts)"] * (REASKS + 1)
    assert stops[-1].startswith("no flip; the analyzer never answered step(s)") and result.verdict is None
    assert asked == [candidates * n for n in range(1, REASKS + 2)] + [candidates * (REASKS + 1)]  # then nothing new
    assert {a.status for a in result.attempts} == {"untagged"} and result.replay_count == 0


def test_an_analyzer_refusing_a_steps_prompt_costs_that_step_only(tmp_path):
    """A prompt over the analyzer's window (HTTP 400) is refused again on every run: the step is one it never
    answers, the search goes on (it stopped every task before) and ends without keeping the task open."""
    from agentracer.models.openai_http import OpenAIChatModel
    from agentracer.testing.openai_server import OpenAIServer

    team, trajectory = failed_run(steps=4, error_step=2)
    with OpenAIServer("<correction>x</correction>", context_window=16) as server:
        analyzer = OpenAIChatModel(server.base_url, "analyzer", cache_dir=str(tmp_path / "cache"))
        result = CounterfactualSearch(LocalReplayer(team, chain_evaluator), analyzer, k=2).search(trajectory)
    assert result.stopped.startswith("no flip; the analyzer never answered step(s)")
    assert {a.status for a in result.attempts} == {"error"}
    assert all("analyzer refused it" in a.detail and "maximum context length" in a.detail for a in result.attempts)


def test_a_step_whose_usable_proposal_could_not_be_replayed_stays_open_whatever_its_other_proposals(tmp_path):
    """Proposal 0 never comes tagged (every sample cached on later runs), proposal 1 does, but its replay's model
    server is down: the step stays untried and the task open on every run (it was closed as 'never answered')."""
    from agentracer.annotate.replayer import ReplayCrashed
    from agentracer.models.openai_http import OpenAIChatModel
    from agentracer.testing.openai_server import OpenAIServer

    class ServerDown:
        async def replay(self, trajectory, step, action):
            raise ReplayCrashed("the replay could not finish: its model server refused the connection")

    def answer(request):  # proposal 0 and its new samples have seeds 0, 1000, 2000...; proposal 1's end in 1
        return "no idea" if int(request.get("seed") or 0) % 1000 == 0 else "<correction>fixed</correction>"

    team, trajectory = failed_run(steps=3, error_step=1)
    with OpenAIServer(answer) as server:
        analyzer = OpenAIChatModel(server.base_url, "analyzer", cache_dir=str(tmp_path / "cache"))
        search = CounterfactualSearch(ServerDown(), analyzer, k=1, proposals=2)
        stops = {search.search(trajectory).stopped for _ in range(6)}
    assert stops == {"incomplete: steps could not be tried (see the attempts)"}
