"""Secrets stay out of every field a run keeps, not only its requests and steps' text: what a plugin notes of a step,
what an evaluator says, how an agent is described, a secret written as a field's name, and what a report shows."""

from __future__ import annotations

import json

import agentracer
import pytest
from agentracer.plugins import register_plugin
from agentracer.schema import AgentInfo
from agentracer.simple import TEXT_CODEC
from team_plugins import PlainTeamPlugin

KEY = "sk-proj-THOUGHTTHOUGHT1234567890"
ENV_SECRET = "envsecretVALUE12345"


class _Noting:
    """A team whose one agent's plugin keeps notes of its step (as AutoGen keeps a model's thought) and describes it."""


class _NotingPlugin(PlainTeamPlugin):
    name = "noting"
    team_type = _Noting

    def describe(self, team):
        return [AgentInfo(name="a", description=f"an agent that uses {KEY}", model=f"m-{ENV_SECRET}")]

    async def arun(self, team, task, run):
        async def answer():
            return "done"

        text = await run.acall_model("a", {"messages": [task]}, answer, TEXT_CODEC)
        run.add_step("a", text, metadata={"thought": f"I will use the key {KEY}", "env": [ENV_SECRET],
                                          "type": "TextMessage"})
        run.trajectory.outcome.stop_reason = f"stopped by {KEY}"
        return text


register_plugin(_NotingPlugin())


def test_a_steps_metadata_is_stored_without_the_keys_it_quotes(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", ENV_SECRET)
    store = tmp_path / "runs.jsonl"
    run = agentracer.trace(_Noting, store=store).run("task")
    steps = json.dumps(json.loads(store.read_text())["steps"])
    assert KEY not in steps and ENV_SECRET not in steps
    assert run.steps[0].metadata == {"thought": "I will use the key [REDACTED]", "env": ["[REDACTED]"],
                                     "type": "TextMessage"}


def test_what_an_evaluator_says_is_stored_without_the_keys_it_quotes(tmp_path, monkeypatch):
    from agentracer.schema import Outcome
    from agentracer.simple import SimpleAgent, SimpleTeam

    monkeypatch.setenv("MY_SERVICE_API_KEY", ENV_SECRET)
    feedback, stop = "sk-proj-FEEDBACKFEEDBACK1234567890", "sk-proj-STOPREASONSTOP1234567890"

    def judge(trajectory):
        return Outcome(success=False, feedback=f"the answer should use {feedback} / {ENV_SECRET}", stop_reason=stop)

    def as_dict(trajectory):
        return {"success": False, "feedback": f"use {feedback}"}

    def raises(trajectory):
        raise ValueError(f"cannot judge with {ENV_SECRET}")

    def build():
        return SimpleTeam([SimpleAgent("a", lambda messages: "done TERMINATE")], max_turns=2)

    store = tmp_path / "runs.jsonl"
    run = agentracer.trace(build, store=store, evaluator=judge).run("task")
    assert (run.outcome.feedback, run.outcome.stop_reason) == ("the answer should use [REDACTED] / [REDACTED]",
                                                               "[REDACTED]")
    assert agentracer.trace(build, store=store, evaluator=as_dict).run("task").outcome.feedback == "use [REDACTED]"
    with pytest.warns(RuntimeWarning, match="the evaluator raised"):
        unjudged = agentracer.trace(build, store=store, evaluator=raises).run("task")
    assert unjudged.metadata["evaluation_error"] == "ValueError: cannot judge with [REDACTED]"
    text = store.read_text()
    assert feedback not in text and stop not in text and ENV_SECRET not in text


def test_a_stop_reason_a_plugin_gives_is_stored_without_the_keys_it_quotes():
    assert agentracer.trace(_Noting).run("task").outcome.stop_reason == "stopped by [REDACTED]"


def test_an_agents_description_and_model_are_stored_without_the_keys_they_quote(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", ENV_SECRET)
    store = tmp_path / "runs.jsonl"
    run = agentracer.trace(_Noting, store=store).run("task")
    assert (run.agents[0].description, run.agents[0].model) == ("an agent that uses [REDACTED]", "m-[REDACTED]")
    text = store.read_text()
    assert KEY not in text and ENV_SECRET not in text
