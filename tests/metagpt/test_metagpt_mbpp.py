"""A custom Coder → Tester → Reviewer MetaGPT team on an MBPP task: record, Ω, replay, failures."""

import agentracer
import pytest
from agentracer import ReplayDivergence, TeamRunError
from mg_teams import BUGGY, GOOD, TASK, scripted_mbpp_team

from agentracer_plugins.metagpt.mbpp_team import mbpp_outcome, mbpp_prompt
from agentracer_plugins.metagpt.testing import ScriptedLLM


@pytest.fixture(scope="module")
def traced():
    return agentracer.trace(scripted_mbpp_team, evaluator=mbpp_outcome(TASK))


@pytest.fixture(scope="module")
def recorded(traced):
    return traced.run(mbpp_prompt(TASK), ground_truth={"tests": TASK["test_list"]})


def test_every_routed_message_is_a_step_with_its_author_and_model_calls(recorded):
    assert recorded.framework == "metagpt"
    assert [a.name for a in recorded.agents] == ["Coder", "Tester", "Reviewer"]
    assert [(s.agent, s.role) for s in recorded.steps] == [
        ("user", "user"), ("Coder", "assistant"), ("Tester", "assistant"), ("Reviewer", "assistant")]
    assert recorded.steps[0].content == mbpp_prompt(TASK)
    assert "key=max" in recorded.steps[1].content
    assert recorded.steps[2].content == "Visible test: all 1 tests passed"  # the sandbox ran the first assert
    assert recorded.steps[3].content == "APPROVE"
    coder_call, = recorded.steps[1].model_calls
    assert (coder_call.agent, coder_call.call_index, coder_call.source) == ("Coder", 0, "live")
    assert mbpp_prompt(TASK) in coder_call.request["messages"][-1]["content"]
    assert recorded.steps[2].model_calls == []
    assert recorded.steps[1].metadata["cause_by"].endswith("WriteSolution")


def test_outcome_runs_all_the_task_asserts_in_a_sandbox(recorded):
    assert recorded.outcome.success is False  # the buggy solution passes the visible assert only
    assert recorded.outcome.score == pytest.approx(2 / 3)
    assert "FAILED assert sort_matrix" in recorded.outcome.feedback


def test_replay_at_the_coder_step_serves_nothing_live_before_it_and_fixes_the_run(traced, recorded):
    replay = traced.replay(recorded, step=1, action=GOOD)
    assert replay.replay.parent_id == recorded.id and replay.steps[1].replaced
    assert replay.steps[1].content == GOOD
    assert replay.steps[1].model_calls[0].source == "replacement"
    assert replay.steps[3].model_calls[0].source == "live"
    assert replay.metadata["replay_stats"] == {"live": 1, "cassette": 0, "replacement": 1, "tools_served": 0}
    assert replay.outcome.success is True and replay.outcome.score == 1.0


def test_replay_at_the_reviewer_step_serves_the_coder_from_the_cassette(traced, recorded):
    replay = traced.replay(recorded, step=3, action="REJECT: rows must be ordered by sum")
    assert [c.source for s in replay.steps for c in s.model_calls] == ["cassette", "replacement"]
    assert replay.steps[1].content == recorded.steps[1].content
    assert replay.steps[3].content == "REJECT: rows must be ordered by sum"


def test_replay_at_a_step_no_model_produced_substitutes_the_routed_message(traced, recorded):
    report = "Visible test: 0/1 tests passed"
    replay = traced.replay(recorded, step=2, action=report)
    assert replay.steps[2].replaced and replay.steps[2].content == report
    reviewer_prompt = replay.steps[3].model_calls[0].request["messages"][-1]["content"]
    assert report in reviewer_prompt  # the Reviewer saw the replaced report, live
    assert replay.metadata["replay_stats"]["live"] == 1 and replay.metadata["replay_stats"]["cassette"] == 1


def test_replay_of_the_users_idea(traced, recorded):
    replay = traced.replay(recorded, step=0, action=mbpp_prompt(TASK) + "\nSort by the sum of each row.")
    assert replay.steps[0].replaced and replay.steps[0].agent == "user"
    assert replay.metadata["replay_stats"]["cassette"] == 0  # every model call came after step 0


def test_a_changed_prompt_before_the_replayed_step_is_a_divergence(recorded):
    changed = agentracer.trace(scripted_mbpp_team, coder_goal="write the slowest code you can")
    with pytest.raises(ReplayDivergence) as info:
        changed.replay(recorded, step=3, action="REJECT")
    assert info.value.agent == "Coder" and info.value.step == 1


def test_a_role_that_raises_is_recorded_although_team_run_swallows_it():
    def broken_team():
        team = scripted_mbpp_team()
        coder = team.env.roles["Coder"]
        coder.llm.__dict__["_answer"] = lambda _messages: (_ for _ in ()).throw(ValueError("model offline"))
        return team

    with pytest.raises(TeamRunError) as info:
        agentracer.trace(broken_team).run(mbpp_prompt(TASK))
    trajectory = info.value.trajectory
    assert "Coder" in trajectory.outcome.error and "model offline" in trajectory.outcome.error
    assert trajectory.outcome.success is False
    assert [(s.agent, s.kind) for s in trajectory.steps] == [("user", "message"), ("Coder", "event")]
    assert trajectory.steps[1].model_calls[0].error.startswith("ValueError")

    quiet = agentracer.trace(broken_team, raise_on_error=False).run(mbpp_prompt(TASK))
    assert "model offline" in quiet.outcome.error
    assert quiet.outcome.stop_reason is None  # the error stopped it (with messages left), not its n_round


def test_scripted_llm_answers_in_order_and_says_when_it_runs_out():
    llm = ScriptedLLM([BUGGY])
    import asyncio

    assert asyncio.run(llm.aask("write it")) == BUGGY
    with pytest.raises(RuntimeError, match="no answers left"):
        asyncio.run(llm.aask("again"))
