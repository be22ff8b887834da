"""RolePlaying: init_chat + step rounds, termination, max turns, replay, divergence."""

from __future__ import annotations

import logging

import agentracer
import pytest
from agentracer import ReplayDivergence
from camel_teams import ROLE_TASK, Ledger, instructor_answer, make_role_play, poet_answer, round_trips


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_records_each_agent_message_until_the_done_word(ledger: Ledger, mode: str) -> None:
    traj = agentracer.trace(make_role_play, ledger, mode=mode).run(ROLE_TASK)

    assert [a.name for a in traj.agents] == ["Editor", "Poet"]
    assert traj.metadata["team_type"] == "RolePlaying"  # the society's, not its run options' wrapper
    assert ROLE_TASK in traj.agents[1].system_prompt
    assert [s.agent for s in traj.steps] == ["Editor", "Poet"] * 4
    assert traj.steps[0].content.startswith("Instruction: write line 1")
    assert traj.steps[6].content == "CAMEL_TASK_DONE"
    assert traj.outcome.stop_reason == "done" and traj.outcome.success is None
    assert traj.outcome.answer == traj.steps[7].content
    assert traj.metadata["init_message"].startswith("Now start to give me instructions")
    assert all(len(s.model_calls) == 1 for s in traj.steps)
    assert ledger.live_calls == 8
    assert round_trips(traj)


def test_max_turns_is_recorded_as_a_failed_outcome(ledger: Ledger) -> None:
    traj = agentracer.trace(make_role_play, ledger, rounds=50, max_turns=2).run(ROLE_TASK)
    assert len(traj.steps) == 4
    assert traj.outcome.stop_reason == "max_turns" and traj.outcome.success is False


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_replay_from_step_3(ledger: Ledger, mode: str) -> None:
    traced = agentracer.trace(make_role_play, ledger, mode=mode)
    traj = traced.run(ROLE_TASK)
    ledger.reset()

    new = traced.replay(traj, step=3, action="Solution: a line about flaky tests. Next request.")

    assert [(s.agent, s.content) for s in new.steps[:3]] == [(s.agent, s.content) for s in traj.steps[:3]]
    assert new.steps[3].agent == "Poet" and new.steps[3].content.startswith("Solution: a line about flaky")
    # the Editor's next request sees the replaced line in its history
    editor_request = new.steps[4].model_calls[0].request["messages"]
    assert any("flaky" in str(m["content"]) for m in editor_request)
    assert all(c.source == "cassette" for s in new.steps[:3] for c in s.model_calls)
    live_after = sum(1 for s in new.steps[4:] for c in s.model_calls if c.source == "live")
    assert ledger.live_calls == live_after == len(new.steps) - 4
    assert round_trips(new)


def test_a_changed_prompt_before_the_step_is_a_divergence(ledger: Ledger) -> None:
    traj = agentracer.trace(make_role_play, ledger).run(ROLE_TASK)
    changed = agentracer.trace(make_role_play, ledger, poet_prompt="You are a terse poet.")

    with pytest.raises(ReplayDivergence) as info:
        changed.replay(traj, step=5, action="x")
    assert info.value.step == 1 and info.value.agent == "Poet"
    assert "terse poet" in info.value.diff


def test_a_divergence_is_raised_once_not_also_logged_by_camel_with_its_traceback(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    traj = agentracer.trace(make_role_play, ledger).run(ROLE_TASK)
    with caplog.at_level(logging.ERROR), pytest.raises(ReplayDivergence):
        agentracer.trace(make_role_play, ledger, poet_prompt="You are a terse poet.").replay(traj, step=5, action="x")
    assert [r.name for r in caplog.records if r.name.startswith("camel")] == []
    agentracer.uninstrument()
    assert not any(f.__class__.__name__ == "_QuietReplayErrors" for name in logging.root.manager.loggerDict
                   if name.startswith("camel") for f in logging.getLogger(name).filters)


def test_traced_society_object_is_reset_between_runs(ledger: Ledger) -> None:
    society = make_role_play(ledger)
    traced = agentracer.trace(society)
    first = traced.run(ROLE_TASK)
    second = traced.run(ROLE_TASK)
    assert [s.content for s in first.steps] == [s.content for s in second.steps]


def test_a_task_the_society_does_not_run_is_not_recorded_as_its_task(ledger: Ledger) -> None:
    traced = agentracer.trace(make_role_play, ledger)
    with pytest.warns(UserWarning, match="runs its own task_prompt"):
        traj = traced.run("Summarise the quarterly report.")
    assert traj.task == ROLE_TASK and traj.metadata["given_task"] == "Summarise the quarterly report."
    ledger.reset()
    new = traced.replay(traj, step=3, action="Solution: a line. Next request.")  # runs the recorded task again
    assert new.task == ROLE_TASK and new.steps[3].replaced


def test_a_note_added_to_the_societys_task_is_not_recorded_as_heard(ledger: Ledger) -> None:
    """refine appends its feedback to the task: a society built with its own task_prompt never sees the note, so the
    run must not record it as the task the agents ran (nor stay silent about it)."""
    given = f"{ROLE_TASK}\n\nFeedback from the previous attempt:\nRedo step 3."
    with pytest.warns(UserWarning, match="give the factory a `task` parameter"):
        traj = agentracer.trace(make_role_play, ledger).run(given)
    assert traj.task == ROLE_TASK and traj.metadata["given_task"] == given


def test_a_factory_with_a_task_parameter_builds_each_run_with_its_task(ledger: Ledger, tmp_path) -> None:
    """A society plays the task it was built with: a factory taking ``task`` gets each run's (a tasks file's rows,
    refine's task with its note), so the recorded task is the one its agents heard."""
    import warnings

    from agentracer.annotate import AnnotationPipeline
    from agentracer.annotate.tasks import TaskRow
    from agentracer.models import ScriptedModel
    from camel.societies import RolePlaying

    from agentracer_plugins.camel import with_options

    def make_play(task: str) -> object:
        society = RolePlaying("Poet", "Editor", task_prompt=task, with_task_specify=False,
                              assistant_agent_kwargs={"model": ledger.model(poet_answer, "poet")},
                              user_agent_kwargs={"model": ledger.model(instructor_answer(2), "editor")})
        return with_options(society, max_turns=6)

    traced = agentracer.trace(make_play)
    for task in ("Write a poem about rain.", "Write a poem about snow."):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (no "runs its own task_prompt")
            traj = traced.run(task)
        assert traj.task == task and "given_task" not in traj.metadata and task in traj.agents[1].system_prompt
    ledger.reset()
    new = traced.replay(traj, step=1, action="Solution: a line about snow. Next request.")
    assert new.task == "Write a poem about snow." and [s.content for s in new.steps[:1]] == [traj.steps[0].content]
    # CAMEL's task specifier rewrites the task the factory gave: still this run's task (what it made of it is kept)
    def make_specified(task: str) -> object:
        society = RolePlaying("Poet", "Editor", task_prompt=task,  # (with_task_specify: CAMEL's default, True)
                              task_specify_agent_kwargs={"model": ledger.model(lambda m: "A four-line poem on rain.",
                                                                               "specifier")},
                              assistant_agent_kwargs={"model": ledger.model(poet_answer, "poet")},
                              user_agent_kwargs={"model": ledger.model(instructor_answer(2), "editor")})
        return with_options(society, max_turns=6)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        specified = agentracer.trace(make_specified).run("Write a poem about rain.")
    assert specified.task == "Write a poem about rain." and "given_task" not in specified.metadata
    assert specified.metadata["society_task"] == "A four-line poem on rain."
    # a society that plays its own task would pair another task's run with a row's ground truth: annotate refuses it
    # before it runs (no model is asked)
    ledger.reset()
    pipeline = AnnotationPipeline(agentracer.trace(make_role_play, ledger), lambda t: False, tmp_path / "ds",
                                  analyzer=ScriptedModel(lambda m: "<correction>x</correction>"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (refused, not warned about)
        summary = pipeline.run([TaskRow(id="rain", task="Write a poem about rain.", ground_truth="a poem")],
                               progress=False)
    assert len(summary.errors) == 1 and "runs its own task_prompt" in summary.errors[0]
    assert "`task` parameter" in summary.errors[0]
    assert ledger.models and ledger.live_calls == 0


def test_a_tool_call_for_an_agent_offered_no_tools_is_refused_before_anything_runs(ledger: Ledger) -> None:
    from agentracer import ReplayError

    traced = agentracer.trace(make_role_play, ledger)
    traj = traced.run(ROLE_TASK)
    ledger.reset()
    with pytest.raises(ReplayError, match=r"step 1 calls 'add', but the model call it replaces \('Poet'\) was offered "
                                          r"no tools: its replacement must be a text"):
        traced.replay(traj, step=1, action={"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]})
    assert ledger.live_calls == 0


def test_a_traced_society_object_with_a_critic_starts_every_run_afresh() -> None:
    """RolePlaying.init_chat resets the two role-playing agents, not the critic: traced as an object (not a
    factory), the critic's second run saw the first's conversation, and a replay of the first diverged."""
    from camel.societies import RolePlaying

    from agentracer_plugins.camel import with_options
    from agentracer_plugins.camel.testing import ScriptedModel

    task = "Write a poem"
    society = RolePlaying("Poet", "Editor", task_prompt=task, with_task_specify=False, with_critic_in_the_loop=True,
                          critic_role_name="Judge", critic_kwargs={"model": ScriptedModel(["I choose Option 1."],
                                                                                          cycle=True)},
                          assistant_agent_kwargs={"model": ScriptedModel(["Solution: a line. Next request."],
                                                                         cycle=True)},
                          user_agent_kwargs={"model": ScriptedModel(["Instruction: write\nInput: None"], cycle=True)})
    traced = agentracer.trace(with_options(society, max_turns=2))
    first, second = traced.run(task), traced.run(task)

    def judged(trajectory: agentracer.Trajectory) -> list[int]:
        return [len(s.model_calls[0].request["messages"]) for s in trajectory.steps if s.agent == "Judge"]

    assert judged(first) and judged(second) == judged(first)
    replayed = traced.replay(first, step=3, action=first.steps[3].content)
    assert [s.content for s in replayed.steps[:3]] == [s.content for s in first.steps[:3]]
    assert replayed.metadata["replay_stats"]["cassette"] == 3  # (the prefix served: none of it asked live)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_task_specifiers_call_as_the_society_is_built_is_recorded_and_served(ledger: Ledger, mode: str) -> None:
    """CAMEL's RolePlaying asks its task specifier as it is made (with_task_specify is on by default), before the
    team runs: that call is the run's first step, served in a replay (it was made live, and a model that answers
    differently made every replay diverge at its first step), and a replay of step 0 changes the task the agents
    are given."""
    from camel.societies import RolePlaying

    from agentracer_plugins.camel import with_options

    asked: list[int] = []

    def specify(messages: list) -> str:
        asked.append(1)
        return f"A poem on rain, take {len(asked)}."

    def make(task: str) -> object:
        return with_options(RolePlaying("Poet", "Editor", task_prompt=task,
                                        task_specify_agent_kwargs={"model": ledger.model(specify, "specifier")},
                                        assistant_agent_kwargs={"model": ledger.model(poet_answer, "poet")},
                                        user_agent_kwargs={"model": ledger.model(instructor_answer(2), "editor")}),
                            max_turns=6, mode=mode)

    traced = agentracer.trace(make)
    traj = traced.run("Write a poem about rain.")
    assert [s.agent for s in traj.steps[:3]] == ["Task Specifier", "Editor", "Poet"]
    assert [a.name for a in traj.agents] == ["Task Specifier", "Editor", "Poet"]  # (every step's agent described)
    assert traj.agents[0].model == "stub" and "rewrites the task" in (traj.agents[0].description or "")
    assert traj.steps[0].content == "A poem on rain, take 1." and len(asked) == 1
    replayed = traced.replay(traj, step=3, action="Solution: a line. Next request.")
    assert len(asked) == 1  # (the specifier was served, not asked)
    assert [s.content for s in replayed.steps[:3]] == [s.content for s in traj.steps[:3]]
    before = traj.model_copy(deep=True)  # recorded before the task agents were described: replays all the same
    before.agents = [a for a in before.agents if a.name != "Task Specifier"]
    assert traced.replay(before, step=3, action="Solution: a line. Next request.").steps[3].replaced
    respecified = traced.replay(traj, step=0, action="A haiku on snow.")
    assert len(asked) == 1 and respecified.steps[0].content == "A haiku on snow." and respecified.steps[0].replaced
    prompts = [c.request["messages"][0]["content"] for s in respecified.steps[1:3] for c in s.model_calls]
    assert prompts and all("A haiku on snow." in p for p in prompts)
