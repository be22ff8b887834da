"""Secrets stay out of every field a run keeps, not only its requests and steps' text: what a plugin notes of a step,
what an evaluator says, how an agent is described, a secret written as a field's name, and what a report shows."""

from __future__ import annotations

import json

import agentracer
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
