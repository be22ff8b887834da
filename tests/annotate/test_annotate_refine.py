"""Self-correction: tracer feedback to the culprit vs Self-Refine and CRITIC, restart and replay modes."""

from __future__ import annotations

import re
from pathlib import Path

import agentracer
import pytest
from agentracer.annotate import CounterfactualSearch, LocalReplayer
from agentracer.errors import InputError, ReplayError
from agentracer.models import ScriptedModel
from agentracer.refine import Refiner, success_rate_per_round, tracer_feedback
from agentracer.simple import SimpleAgent, SimpleTeam
from annotate_teams import chain_analyzer, chain_evaluator, last_value, make_chain

TASK = "Count from 0, one step per message. slip=4"


def make_team():
    from annotate_teams import chain_model

    return make_chain(steps=8, model=chain_model(None))


def cf_tracer():
    return CounterfactualSearch(LocalReplayer(agentracer.trace(make_team), chain_evaluator),
                                ScriptedModel(chain_analyzer), k=3)


def test_tracer_feedback_fixes_the_run_in_one_round():
    result = agentracer.refine(make_team, TASK, chain_evaluator, cf_tracer(), rounds=3, ground_truth="7")
    assert [r.success for r in result.rounds] == [False, True]
    first = result.rounds[0]
    assert (first.verdict.step, first.verdict.agent, first.verdict.source) == (4, "agent0", "counterfactual")
    assert first.feedback.agent == "agent0" and "step 4" in first.feedback.text
    assert "Feedback from the previous attempt (for agent0)" in result.final.task
    assert result.success_by_round(3) == [False, True, True, True]


def test_baselines_on_the_same_interface():
    critic = ScriptedModel(lambda m: "The count looks off; recount more carefully.", name="critic")
    for strategy in ("self-refine", "critic"):
        result = agentracer.refine(make_team, TASK, chain_evaluator, rounds=2, strategy=strategy, critic=critic,
                                   ground_truth="7")
        assert [r.success for r in result.rounds] == [False, False, False]
        assert result.rounds[0].feedback.source == strategy and result.rounds[0].verdict is None
    shown = [c[-1]["content"] for c in critic.calls]
    assert all("Result of checking it" not in s for s in shown[:2])  # self-refine sees no environment feedback
    assert all("Result of checking it" in s for s in shown[2:])  # CRITIC does


def test_replay_mode_rewrites_only_the_decisive_step():
    def reviser(messages):
        history = messages[-1]["content"].split("Conversation so far:")[1].split("Your message at step")[0]
        return f"value = {last_value(history) + 1}"

    refiner = Refiner(make_team, chain_evaluator, cf_tracer(), mode="replay", reviser=ScriptedModel(reviser))
    result = agentracer.refine(make_team, TASK, chain_evaluator, cf_tracer(), rounds=1, mode="replay",
                               reviser=ScriptedModel(reviser), ground_truth="7")
    assert refiner.mode == "replay"
    fixed = result.final
    assert result.rounds[-1].success and fixed.replay.step == 4 and fixed.steps[4].text == "value = 4"
    assert fixed.replay.parent_id == result.rounds[0].trajectory.id


def test_a_reasoning_models_think_block_is_neither_the_revised_step_nor_the_critique():
    """Qwen3/R1 think first (and the OpenAI client puts vLLM's reasoning_content back as <think>): only what they
    conclude is replayed, or told to the team."""
    def reviser(messages):
        history = messages[-1]["content"].split("Conversation so far:")[1].split("Your message at step")[0]
        return f"<think>The sum so far is off; the answer is 7 overall.</think>value = {last_value(history) + 1}"

    result = agentracer.refine(make_team, TASK, chain_evaluator, cf_tracer(), rounds=1, mode="replay",
                               reviser=ScriptedModel(reviser), ground_truth="7")
    assert result.final.steps[4].text == "value = 4" and result.final.metadata["refine"]["revised"] == "value = 4"
    critic = ScriptedModel(lambda m: "<think>hmm, 7?</think>The count looks off; recount.", name="critic")
    critiqued = agentracer.refine(make_team, TASK, chain_evaluator, rounds=1, strategy="critic", critic=critic,
                                  ground_truth="7")
    assert critiqued.rounds[0].feedback.text == "The count looks off; recount."


def test_the_analyzers_correction_is_the_one_it_concludes_with_not_a_draft_in_its_reasoning():
    from agentracer.annotate.prompts import parse_correction
    from agentracer.schema import Step

    step = Step(index=0, agent="a", content="value = 3")
    drafted = "<think>maybe <correction>value = 9</correction>? no.</think><correction>value = 4</correction>"
    assert parse_correction(drafted, step) == "value = 4"
    unclosed = "<think>maybe <correction>value = 9</correction>? no.</think>\n<correction>value = 4"
    assert parse_correction(unclosed, step) == "value = 4"  # (a draft closed inside, the answer left open after)
    assert parse_correction("<think>it is <correction>value = 5</correction></think>", step) == "value = 5"


def test_factory_with_feedback_parameter_gets_it():
    seen = []

    def make(feedback=None):
        seen.append(feedback)
        note = feedback.for_agent("solo") if feedback else None

        def model(messages):
            return "value = 1" if note and "step 1" in note else "value = 2"
        return SimpleTeam([SimpleAgent("solo", model)], max_turns=1, stop_word=None)

    def tracer(trajectory):
        return agentracer.Verdict(agent="solo", step=1, reason="off by one", source="tracer")

    result = agentracer.refine(make, "Say value = 1.", lambda t: last_value(t.steps[-1].text) == 1, tracer, rounds=2)
    assert [r.success for r in result.rounds] == [False, True]
    assert seen[0] is None and seen[1].agent == "solo" and seen[1].step == 1
    assert result.final.task == "Say value = 1."  # the feedback went to the agent, not into the task


def test_lite_tracer_is_the_default_and_rates_per_round():
    result = agentracer.refine(make_team, TASK, chain_evaluator, rounds=1, ground_truth="7")
    verdict = result.rounds[0].verdict
    assert verdict.source == "tracer" and verdict.agent in {"agent0", "agent1", "agent2", "user"}
    fixed = agentracer.refine(make_team, TASK, chain_evaluator, cf_tracer(), rounds=1, ground_truth="7")
    assert success_rate_per_round([result, fixed], 1)[0] == 0.0
    assert success_rate_per_round([fixed], 1) == [0.0, 1.0]


def test_bad_options():
    with pytest.raises(InputError, match="needs a critic"):
        Refiner(make_team, chain_evaluator, strategy="critic")
    with pytest.raises(InputError, match="reviser"):
        Refiner(make_team, chain_evaluator, mode="replay")
    with pytest.raises(InputError, match="unknown refine strategy"):
        Refiner(make_team, chain_evaluator, strategy="magic")


def test_feedback_names_step_and_environment():
    trajectory = agentracer.trace(make_team, evaluator=chain_evaluator).run(TASK, ground_truth="7")
    trajectory.outcome.feedback = "expected 7, got 8"
    fb = tracer_feedback(trajectory, agentracer.Verdict(agent="agent0", step=4, reason="added two"))
    assert re.search(r"agent0, your action at step 4", fb.text) and "expected 7, got 8" in fb.text
    # a new attempt shows no step numbers: the step is also named as the agent can count it, its n-th message
    nth = sum(1 for step in trajectory.steps[:5] if step.agent == "agent0")
    assert f"step 4 (your {nth}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(nth, 'th')} message)" in fb.text
    assert fb.for_agent("agent1") is None and fb.for_agent("agent0")
    assert f"{fb}" == fb.note() == fb.for_agent("agent0")  # a factory may put it in a prompt as it is
    ended = tracer_feedback(trajectory, agentracer.Verdict(agent="agent0", step=4, reason="It added two (+2)."))
    assert "(+2). This time get that message right" in ended.text


def test_feedback_never_tells_the_culprit_it_wrote_another_agents_step():
    trajectory = agentracer.trace(make_team, evaluator=chain_evaluator).run(TASK, ground_truth="7")
    authors = [step.agent for step in trajectory.steps]
    other = next(i for i in range(1, len(authors)) if authors[i] != "agent0" and "agent0" in authors[:i])
    own = max(i for i in range(other) if authors[i] == "agent0")
    fb = tracer_feedback(trajectory, agentracer.Verdict(agent="agent0", step=other, reason="wrong sum"))
    assert "You wrote" not in fb.text and f"at step {other}, where {authors[other]} wrote" in fb.text
    assert f'Your action at step {own} (your {authors[:own + 1].count("agent0")}' in fb.text
    assert f'led to it: "{trajectory.steps[own].text[:50]}' in fb.text
    assert "This time get that message right" in fb.text and fb.step == other and fb.for_agent("agent0")
    first_own = authors.index("agent1")  # an agent whose first step comes after the verdict's: it caused nothing
    earlier = tracer_feedback(trajectory, agentracer.Verdict(agent="agent1", step=first_own - 1, reason="wrong sum"))
    assert "led to it" not in earlier.text and f"Your first action after it, at step {first_own}" in earlier.text
    stranger = tracer_feedback(trajectory, agentracer.Verdict(agent="nobody", step=other, reason="wrong sum"))
    assert stranger.agent == authors[other] and stranger.for_agent(authors[other]) and "wrong sum" in stranger.text
    assert "the tracer named 'nobody', no agent of this team" in stranger.text


def test_feedback_reaches_the_agent_the_tracer_named_in_another_case_and_never_nobody():
    trajectory = agentracer.trace(make_team, evaluator=chain_evaluator).run(TASK, ground_truth="7")
    author = trajectory.steps[2].agent
    shouted = tracer_feedback(trajectory, agentracer.Verdict(agent=author.upper(), step=2, reason="wrong"))
    assert shouted.agent == author and shouted.for_agent(author) and shouted.text.startswith(f"{author}, your action")
    assert [name for name in trajectory.agent_names if shouted.for_agent(name)] == [author]
    past = tracer_feedback(trajectory, agentracer.Verdict(agent=author, step=99, reason="wrong"))
    assert "which the run does not have" in past.text and "This time" not in past.text and past.for_agent(author)
    nowhere = tracer_feedback(trajectory, agentracer.Verdict(agent="ghost", step=99, reason="wrong"))
    assert all(nowhere.for_agent(name) for name in trajectory.agent_names)  # (no agent, no step: everyone is told)
    team = [name for name in trajectory.agent_names if name != "user"]
    for blamed in ("ghost", "user", "User "):  # the task (step 0) and no agent of the team: everyone is told
        task = tracer_feedback(trajectory, agentracer.Verdict(agent=blamed, step=0, reason="unclear"))
        assert all(task.for_agent(name) for name in team) and task.agent is None
        assert "your action at" not in task.text and "the task itself" in task.text and "unclear" in task.text
    user = tracer_feedback(trajectory, agentracer.Verdict(agent="user", step=2, reason="wrong"))  # (the task's author)
    assert user.agent == author and "the tracer named 'user', no agent of this team" in user.text


def test_refine_command_reports_rates_per_round(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "a", "task": TASK, "ground_truth": "5"}) + "\n"
                     + json.dumps({"id": "b", "task": "Count from 0.", "ground_truth": "5"}) + "\n")
    out = tmp_path / "attempts.jsonl"
    command = [sys.executable, "-m", "agentracer.cli", "refine", "--team",
               f"{here / 'annotate_teams.py'}:make_task_chain", "--tasks", str(tasks), "--evaluator",
               "annotate_teams.py:chain_evaluator", "--strategy", "critic", "--critic",
               "scripted:recount||recount||recount", "--rounds", "1", "-o", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert "a: not solved" in proc.stdout and "b: solved in round 0" in proc.stdout
    assert "round 0: 50%, round 1: 50%" in proc.stdout
    assert len(out.read_text().splitlines()) == 3  # a: two attempts, b: one
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=here)  # resumes: nothing to do
    assert again.returncode == 0 and "a: not solved (attempts already in" in again.stdout
    assert "round 0: 50%, round 1: 50%" in again.stdout and len(out.read_text().splitlines()) == 3
    other = subprocess.run([*command[:-8], "--strategy", "self-refine", *command[-6:]], capture_output=True,
                           text=True, timeout=120, cwd=here)
    assert other.returncode == 2 and "holds attempts made with strategy 'critic'" in other.stderr
    from agentracer.exclusive import sole_writer

    before = out.read_bytes()
    with sole_writer(out, "another refine"):  # (two processes resuming one -o each did every task)
        second = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=here)
    assert second.returncode == 2 and "another process" in second.stderr and out.read_bytes() == before
    lines = out.read_text().splitlines()
    b_line = next(i for i, line in enumerate(lines) if '"task_id":"b"' in line.replace(" ", ""))
    out.write_text("\n".join(line for i, line in enumerate(lines) if i != b_line) + "\n" + lines[b_line][:200])
    torn = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=here)  # killed mid-write of b
    assert torn.returncode == 0, torn.stderr
    assert "a: not solved (attempts already in" in torn.stdout and "b: solved in round 0\n" in torn.stdout
    assert "round 0: 50%, round 1: 50%" in torn.stdout
    lines = out.read_text().splitlines()  # a kill after a's round 0 was written, in the middle of its round 1
    a_last = max(i for i, line in enumerate(lines) if '"task_id":"a"' in line.replace(" ", ""))
    out.write_text("\n".join(line for i, line in enumerate(lines) if i != a_last) + "\n" + lines[a_last][:150])
    redone = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=here)
    assert redone.returncode == 0 and "a: not solved\n" in redone.stdout, redone.stdout + redone.stderr
    assert "b: solved in round 0 (attempts already in" in redone.stdout
    before = out.read_bytes()
    more_rounds = subprocess.run([*command[:-3], "2", *command[-2:]], capture_output=True, text=True, timeout=120,
                                 cwd=here)
    assert more_rounds.returncode == 2 and "made with rounds 1, not 2" in more_rounds.stderr
    tasks.write_text(json.dumps({"id": "a", "task": TASK + " Twice.", "ground_truth": "5"}) + "\n")
    changed = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=here)
    assert changed.returncode == 2 and "tasks whose text or ground truth changed since ('a')" in changed.stderr
    assert out.read_bytes() == before


def _counting_reviser():
    def reviser(messages):
        history = messages[-1]["content"].split("Conversation so far:")[1].split("Your message at step")[0]
        return f"value = {last_value(history) + 1}"
    return ScriptedModel(reviser)


def test_replay_mode_restarts_when_the_verdicts_step_cannot_be_replayed():
    """A tracer naming a step past the run's end (or one no model call made) gets a restart with its feedback, not
    an IndexError or a ReplayError that ends the batch."""
    past_the_end = lambda trajectory: agentracer.Verdict(agent="agent0", step=99, reason="late")  # noqa: E731
    result = agentracer.refine(make_team, TASK, chain_evaluator, past_the_end, rounds=1, mode="replay",
                               reviser=_counting_reviser(), ground_truth="7")
    assert result.error is None and len(result.rounds) == 2
    assert "step 99 is not a step of the run" in result.rounds[0].replay_error
    assert result.rounds[1].trajectory.replay is None  # restarted
    assert result.rounds[1].trajectory.metadata["refine"]["round"] == 1


def test_replay_mode_never_rewrites_a_tools_output():
    """A verdict naming a tool's result (the lite tracer files it under the agent that called the tool): the reviser
    rewrote the tool's output and the replay "succeeded" on a faked environment."""
    def model(messages):
        history = [m for m in messages if m["role"] != "system"]
        return 'CALL add {"a": 2, "b": 2}' if len(history) == 1 else f"answer {history[-1]['content']}"

    def factory():
        return SimpleTeam([SimpleAgent("a", model, tools={"add": lambda a, b: a + b + 1})], max_turns=2,
                          stop_word=None)

    def blame_the_tool(trajectory):
        step = next(s for s in trajectory.steps if s.kind == "tool_result")
        return agentracer.Verdict(agent="a", step=step.index, reason="wrong sum")

    reviser = ScriptedModel(lambda messages: "4")  # (the tool's output as it should have been)
    result = Refiner(factory, lambda answer, expected: answer.strip().endswith(str(expected)), blame_the_tool,
                     mode="replay", reviser=reviser).run("2+2?", ground_truth="4", rounds=1)
    assert "no model call made it" in (result.rounds[0].replay_error or "") and reviser.calls == []
    again = result.rounds[1].trajectory
    assert again.replay is None and not result.rounds[1].success  # restarted with the feedback: the tool still adds 1
    assert any(s.kind == "tool_result" and s.text == "5" for s in again.steps)


def test_replay_mode_restarts_when_the_replay_is_refused():
    class Unreplayable(Refiner):  # as AutoGen refuses a summary step no model call made
        async def _replay(self, failed, feedback, round_, built_with):
            raise ReplayError(f"step {feedback.step} is a summary step of 'coder' that no model call produced")

    refiner = Unreplayable(make_team, chain_evaluator, cf_tracer(), mode="replay", reviser=_counting_reviser())
    result = refiner.run(TASK, ground_truth="7", rounds=1)
    assert result.error is None and "summary step" in result.rounds[0].replay_error
    assert result.rounds[1].success and result.rounds[1].trajectory.replay is None  # the feedback restart fixed it


def test_replay_mode_attempts_say_their_round():
    result = agentracer.refine(make_team, TASK, chain_evaluator, cf_tracer(), rounds=1, mode="replay",
                               reviser=_counting_reviser(), ground_truth="7")
    assert result.rounds[1].trajectory.metadata["refine"]["round"] == 1


def test_a_task_whose_tracer_team_or_check_raises_keeps_its_rounds_and_says_why():
    def unparsable(trajectory):
        from agentracer.tracer.base import AnswerError

        raise AnswerError("unparsable answer: no agent and step found in the answer", raw="I cannot tell")

    result = agentracer.refine(make_team, TASK, chain_evaluator, unparsable, rounds=2, ground_truth="7")
    assert len(result.rounds) == 1 and result.error.startswith("feedback on round 0: AnswerError: unparsable")

    def broken_check(trajectory):
        raise ZeroDivisionError("omega bug")

    result = agentracer.refine(make_team, TASK, broken_check, rounds=2, ground_truth="7")
    assert result.error == "round 0: Ω raised ZeroDivisionError: omega bug"
    (kept,) = result.rounds  # the run Ω could not judge is kept (refine -o writes it), its outcome unknown
    assert not kept.success and kept.trajectory.outcome.success is None
    assert kept.trajectory.metadata["evaluation_error"] == "ZeroDivisionError: omega bug"


def test_replay_mode_never_rewrites_the_task_itself():
    """A verdict naming step 0, the user's task: the reviser rewrote it and the next round worked on another task."""
    blame_the_task = lambda trajectory: agentracer.Verdict(agent="user", step=0, reason="unclear")  # noqa: E731
    reviser = _counting_reviser()
    result = agentracer.refine(make_team, TASK, chain_evaluator, blame_the_task, rounds=1, mode="replay",
                               reviser=reviser, ground_truth="7")
    assert "is the task itself" in result.rounds[0].replay_error and reviser.calls == []
    again = result.rounds[1].trajectory
    assert again.replay is None and again.task.startswith(TASK)  # restarted on the task, with the feedback


def test_feedback_rounds_build_the_team_as_the_first_round_did(tmp_path):
    """A traced factory's bound arguments, store and options held for round 0 only: round 1 rebuilt the team from
    the bare factory (a TeamBuildError for a missing argument) and stored nothing."""
    def make(value, feedback=None):
        answer = "value = 1" if feedback else f"value = {value}"
        return SimpleTeam([SimpleAgent("solo", lambda messages: answer)], max_turns=1, stop_word=None)

    def tracer(trajectory):
        return agentracer.Verdict(agent="solo", step=1, reason="off by one", source="tracer")

    traced = agentracer.trace(make, 2, store=tmp_path / "runs.jsonl")
    result = agentracer.refine(traced, "Say value = 1.", lambda t: last_value(t.steps[-1].text) == 1, tracer,
                               rounds=2)
    assert result.error is None and [r.success for r in result.rounds] == [False, True]
    assert [t.id for t in agentracer.open_store(tmp_path / "runs.jsonl")] == [r.trajectory.id for r in result.rounds]


def test_a_reviser_given_by_its_spec_is_loaded():
    blame = lambda trajectory: agentracer.Verdict(agent="agent0", step=4, reason="off")  # noqa: E731
    result = agentracer.refine(make_team, TASK, chain_evaluator, blame, rounds=1, mode="replay",
                               reviser="scripted:value = 4", ground_truth="7")
    assert result.error is None and result.rounds[1].trajectory.steps[4].text == "value = 4"
    with pytest.raises(InputError, match="reviser"):
        Refiner(make_team, chain_evaluator, mode="replay", reviser="nosuchkind:x")


def test_refine_command_goes_on_after_a_task_that_raised(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    (tmp_path / "checks.py").write_text(
        "from annotate_teams import chain_evaluator\n"
        "def picky(trajectory):\n"
        "    if 'boom' in trajectory.task:\n"
        "        raise ZeroDivisionError('omega bug')\n"
        "    return chain_evaluator(trajectory)\n")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(row) + "\n" for row in (
        {"id": "a", "task": "Count from 0. boom", "ground_truth": "5"},
        {"id": "b", "task": "Count from 0.", "ground_truth": "5"})))
    out = tmp_path / "attempts.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "agentracer.cli", "refine", "--team", f"{here / 'annotate_teams.py'}:make_task_chain",
         "--tasks", str(tasks), "--evaluator", f"{tmp_path / 'checks.py'}:picky", "--rounds", "1", "-o", str(out)],
        capture_output=True, text=True, timeout=120, cwd=here, env={**__import__("os").environ, "PYTHONPATH": str(here)})
    assert proc.returncode == 1, proc.stderr  # a task left undone fails the command, as in annotate
    assert "Traceback" not in proc.stderr and "error: task a: round 0: Ω raised ZeroDivisionError: omega bug" in \
        proc.stderr
    assert "b: solved in round 0" in proc.stdout and "a: stopped by an error in round 0\n" in proc.stdout
    stored = {row["metadata"]["task_id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert sorted(stored) == ["a", "b"]  # a's run is kept, with the error that stopped the task
    assert "Ω raised" in stored["a"]["metadata"]["refine"]["error"]


def test_refine_command_does_a_task_stopped_by_an_error_again(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "a", "task": TASK, "ground_truth": "5"}) + "\n")
    out = tmp_path / "attempts.jsonl"
    command = [sys.executable, "-m", "agentracer.cli", "refine", "--team",
               f"{here / 'annotate_teams.py'}:make_task_chain", "--tasks", str(tasks), "--evaluator",
               "annotate_teams.py:chain_evaluator", "--tracer", "agentracer", "--tracer-model",
               "scripted:I cannot tell", "--rounds", "1", "-o", str(out)]
    for run in range(2):
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=here)
        assert proc.returncode == 1 and "error: task a: feedback on round 0" in proc.stderr
        assert "already in" not in proc.stdout
        stored = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(stored) == run + 1 and "feedback on round 0" in stored[-1]["metadata"]["refine"]["error"]


def test_a_replayed_round_omega_raised_on_says_its_round():
    """The kept run had no refine metadata, so `refine -o` resumed it as a task finished without error."""
    def omega(trajectory):
        if trajectory.replay is not None:
            raise ZeroDivisionError("omega bug on the replay")
        return chain_evaluator(trajectory)

    result = agentracer.refine(make_team, TASK, omega, cf_tracer(), rounds=2, mode="replay",
                               reviser=_counting_reviser(), ground_truth="7")
    assert result.error == "round 1: Ω raised ZeroDivisionError: omega bug on the replay"
    kept = result.rounds[-1].trajectory
    assert result.rounds[-1].round == 1 and kept.replay is not None
    assert kept.metadata["refine"] == {"round": 1, "strategy": "tracer", "mode": "replay"}


def test_a_replay_after_a_restart_with_feedback_replays_the_team_that_feedback_built():
    """Round 1 restarted with feedback (the verdict named the task), which the factory put in agent a's instructions;
    round 2 replayed round 1 with the bare team: its prefix asked what round 1 never asked, it diverged, and the round
    restarted instead, still saying "replay". The attempts now say what each round was, and what it was told."""
    def make(feedback=None):
        note = (feedback.for_agent("a") or "") if feedback else ""
        return SimpleTeam([SimpleAgent("a", lambda messages: "value = 1", system_prompt=note),
                           SimpleAgent("b", lambda messages: "value = 2")], max_turns=3, stop_word=None)

    verdicts = iter([agentracer.Verdict(agent="a", step=0, reason="misread the task"),
                     agentracer.Verdict(agent="a", step=3, reason="wrong value")])
    result = agentracer.refine(make, "Say value = 5.", lambda t: last_value(t.steps[-1].text) == 5,
                               lambda trajectory: next(verdicts), rounds=2, mode="replay",
                               reviser=ScriptedModel(lambda messages: "value = 5"))
    assert result.error is None and [r.success for r in result.rounds] == [False, False, True]
    restarted, replayed = result.rounds[1].trajectory, result.rounds[2].trajectory
    assert "is the task itself" in result.rounds[0].replay_error and result.rounds[1].replay_error is None
    assert restarted.metadata["refine"]["mode"] == "restart" and replayed.metadata["refine"]["mode"] == "replay"
    told = restarted.metadata["refine"]["feedback"]
    assert (told["agent"], told["step"], told["given_as"]) == ("a", 0, "factory argument")
    assert replayed.replay.parent_id == restarted.id and replayed.metadata["replay_stats"]["live"] == 0
    assert result.rounds[2].built_with is result.rounds[0].feedback


def test_an_evaluator_error_quoting_the_key_is_kept_and_shown_without_it(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-1234567890abcdef")

    def judge(trajectory):
        raise RuntimeError("judge crashed; key=sk-test-secret-1234567890abcdef")

    result = agentracer.refine(make_team, TASK, judge, rounds=1, ground_truth="7")
    assert result.error is not None and "judge crashed" in result.error and "sk-test-secret" not in result.error
    for record in result.rounds:
        assert "sk-test-secret" not in record.trajectory.to_json()
        assert "[REDACTED]" in record.trajectory.metadata.get("evaluation_error", "[REDACTED]")


def test_replay_mode_tells_the_reviser_about_the_step_it_rewrites_even_when_the_verdict_named_another_agent():
    """The decisive step's author rewrites it: its note is about that step (it was told another agent's step)."""
    asked = []

    def reviser(messages):
        asked.append(messages)
        history = messages[-1]["content"].split("Conversation so far:")[1].split("Your message at step")[0]
        return f"value = {last_value(history) + 1}"

    def other_agent(trajectory):  # the right step, another agent's name
        author = trajectory.steps[4].agent
        return agentracer.Verdict(agent=next(a for a in trajectory.agent_names if a not in (author, "user")), step=4,
                                  reason="the sum slipped")

    result = agentracer.refine(make_team, TASK, chain_evaluator, other_agent, rounds=1, mode="replay",
                               reviser=ScriptedModel(reviser), ground_truth="7")
    assert result.rounds[-1].success and len(asked) == 1
    system, user = asked[0][0]["content"], asked[0][-1]["content"]
    author = result.rounds[0].trajectory.steps[4].agent
    assert author in system and "step 4" in system
    assert "your message at step 4 caused the failure. Why: the sum slipped." in user and "Redo step" not in user


def test_a_round_its_model_server_broke_ends_the_task_without_blaming_an_agent():
    """A 429 or a refused connection is no agent's mistake: the tracer is not asked (it blamed the task's own step)."""
    asked = []

    def tracer(trajectory):
        asked.append(trajectory)
        return agentracer.Verdict(agent="user", step=0, reason="?")

    def make():
        def model(messages):
            raise ConnectionError("HTTP 429 Too Many Requests from the model server")
        return SimpleTeam([SimpleAgent("solo", model)], max_turns=2, stop_word=None)

    result = agentracer.refine(make, "Say 1.", lambda t: False, tracer, rounds=2)
    assert asked == [] and len(result.rounds) == 1 and not result.success
    assert result.error is not None and "the team's model server failed" in result.error and "429" in result.error


def test_a_tracer_whose_server_is_down_ends_the_task_keeping_its_rounds_and_the_command_writes_them(
        tmp_path, monkeypatch):
    """The tracer's ModelError was raised out of refine: the task's finished runs were lost (nothing written to -o),
    no summary was printed, and the command ended with one line."""
    import json

    from agentracer.cli import main
    from agentracer.models import ModelError
    from agentracer.refine import loop
    from click.testing import CliRunner

    def down(trajectory):
        raise ModelError("http://127.0.0.1:9/v1 failed after 6 attempt(s): HTTP 500")

    result = agentracer.refine(make_team, TASK, chain_evaluator, down, rounds=2, ground_truth="7")
    assert result.model_failed and len(result.rounds) == 1
    assert result.error.startswith("feedback on round 0: the model failed for good: ModelError")

    seen = []

    async def tracer_down(tracer, trajectory):
        seen.append(trajectory.task)
        raise ModelError("the tracer's server is down")

    monkeypatch.setattr(loop, "ask_tracer", tracer_down)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(row) + "\n" for row in (
        {"id": "a", "task": "Count from 0. slip=2", "ground_truth": "5"},
        {"id": "b", "task": "Count from 0.", "ground_truth": "5"})))
    out = tmp_path / "attempts.jsonl"
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    with CliRunner().isolation() as (stdout, stderr, _):
        with pytest.raises(SystemExit) as ended:
            main(["refine", "--team", "annotate_teams:make_task_chain", "--tasks", str(tasks), "--evaluator",
                  "annotate_teams:chain_evaluator", "--rounds", "2", "-o", str(out)])
        err, printed = stderr.getvalue().decode(), stdout.getvalue().decode()
    assert ended.value.code == 1 and len(seen) == 1
    assert "a: stopped by an error in feedback on round 0" in printed and "no task ran to its end" in printed
    assert "round 0: 0%" not in printed  # (a task the tracer's server stopped is not counted as unsolved)
    assert "the other 1 task(s) are not attempted" in err
    [kept] = [json.loads(line) for line in out.read_text().splitlines()]
    assert kept["metadata"]["task_id"] == "a" and "the model failed for good" in kept["metadata"]["refine"]["error"]



def test_the_attempts_file_says_why_a_task_stopped_while_its_next_round_was_built(tmp_path, monkeypatch):
    import json

    from agentracer.cli import main
    from click.testing import CliRunner

    (tmp_path / "picky_teams.py").write_text(
        "from annotate_teams import make_task_chain\n"
        "def breaks_on_feedback(feedback=None):\n"
        "    if feedback is not None:\n"
        "        raise RuntimeError('cannot take feedback')\n"
        "    return make_task_chain()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "a", "task": "Count from 0. slip=2", "ground_truth": "5"}) + "\n"
                     + json.dumps({"id": "b", "task": "Count from 0.", "ground_truth": "5"}) + "\n")
    out = tmp_path / "attempts.jsonl"
    with CliRunner().isolation() as (stdout, _, _):
        with pytest.raises(SystemExit) as ended:
            main(["refine", "--team", "picky_teams:breaks_on_feedback", "--tasks", str(tasks), "--evaluator",
                  "annotate_teams:chain_evaluator", "--rounds", "1", "-o", str(out)])
        printed = stdout.getvalue().decode()
    assert ended.value.code == 1
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert "round 1: TeamBuildError" in kept[0]["metadata"]["refine"]["error"]
    # the rate is of the task that ran to its end (b, solved at once), not of a task an error stopped half-way
    assert "success rate per round over the 1 task(s) that ran to their end (1 left out): round 0: 100%" in printed


def test_refine_output_is_a_store_a_db_name_is_sqlite_and_other_files_are_refused(tmp_path, monkeypatch):
    """``-o att.db`` wrote JSON lines under a database's name (``show`` then failed), ``-o x.json`` the same, and an
    ``-o`` naming another program's database was appended to."""
    import json
    import sqlite3

    from agentracer.cli import main
    from agentracer.store import SqliteStore
    from click.testing import CliRunner

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "a", "task": TASK, "ground_truth": "5"}) + "\n"
                     + json.dumps({"id": "b", "task": "Count from 0.", "ground_truth": "5"}) + "\n")

    def refine(out: Path) -> tuple[int, str, str]:
        code = 0
        with CliRunner().isolation() as (stdout, stderr, _):
            try:
                main(["refine", "--team", "annotate_teams:make_task_chain", "--tasks", str(tasks), "--evaluator",
                      "annotate_teams:chain_evaluator", "--strategy", "critic", "--critic",
                      "scripted:recount||recount||recount", "--rounds", "1", "-o", str(out)])
            except SystemExit as exc:
                code = int(exc.code or 0)
            return code, stdout.getvalue().decode(), stderr.getvalue().decode()

    db = tmp_path / "att.db"
    code, printed, err = refine(db)
    assert code == 0, err
    assert len(SqliteStore(db)) == 3  # a: two attempts, b: one
    code, printed, err = refine(db)  # resumes from the database
    assert code == 0 and "a: not solved (attempts already in" in printed and len(SqliteStore(db)) == 3, err
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE users (name TEXT)")
    connection.close()
    before = other.read_bytes()
    for out, why in ((tmp_path / "x.json", "must be a .jsonl or .db store"), (other, "another database")):
        code, _, err = refine(out)
        assert code == 2 and why in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.json").exists() and other.read_bytes() == before
    # an earlier release's attempts, JSONL under any -o name, are named as such, with the name to go on under
    from agentracer.store import JsonlStore

    old = tmp_path / "old-attempts.db"
    JsonlStore(tmp_path / "j.jsonl").extend(list(SqliteStore(db)))
    (tmp_path / "j.jsonl").rename(old)
    before = old.read_bytes()
    code, _, err = refine(old)
    assert code == 2 and "rename it to old-attempts.jsonl" in err and old.read_bytes() == before, err
