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


ARG_KEY = "sk-proj-ARGKEYARGKEY1234567890"


def test_a_field_whose_name_is_a_secret_is_renamed_and_no_value_is_lost():
    from agentracer.redact import Redactor, redact

    assert redact({ARG_KEY: 1, "[REDACTED]": 2, ENV_SECRET: 3, "password": "p4ssw0rd-2024", "note": "x"},
                  [ENV_SECRET]) == {"[REDACTED]": 1, "[REDACTED-2]": 2, "[REDACTED-3]": 3, "password": "[REDACTED]",
                                    "note": "x"}
    assert redact({"nested": [{f"with {ARG_KEY} inside": 1}]}) == {"nested": [{"with [REDACTED] inside": 1}]}
    redactor = Redactor([ENV_SECRET])
    assert redactor.own_values({"query": "q", ARG_KEY: 1}) == {"query": "q", "[REDACTED]": 1}
    assert redactor.own({"kept": {ENV_SECRET: 1}}) == {"kept": {"[REDACTED]": 1}}
    clean = {"query": "q", "note": "x"}
    assert redactor.own_values(clean) is clean and redactor.own(clean) is clean


def test_a_requests_field_named_by_a_secret_keeps_the_request_and_its_hash_as_recordings_hold_them():
    """Recordings replay by their requests' hashes: a request is redacted as before (its tool arguments, where a
    secret named a field, are a text, redacted as one), and hashes as before (values computed before the change)."""
    from agentracer.redact import Redactor

    request = {"model": "m", "extra_body": {ARG_KEY: {ENV_SECRET: 1}}, "messages": [
        {"role": "user", "content": f"hi {ENV_SECRET}", ARG_KEY: "v"},
        {"role": "user", "content": [{"type": "text", "text": "a", ENV_SECRET: 1}]}]}
    expected = {**request, "messages": [{**request["messages"][0], "content": "hi [REDACTED]"}, request["messages"][1]]}
    for scheme, hashed in ((1, "aa40054bbda91983de08e7808e73df95"), (2, "v2:cc78e580d81ee1de9a2920ec3bdc48ad")):
        assert Redactor([ENV_SECRET], scheme=scheme).request(request) == (expected, hashed)


def test_a_secret_named_field_of_run_metadata_tool_arguments_and_results_is_never_stored(tmp_path, monkeypatch):
    from agentracer.simple import SimpleAgent, SimpleTeam

    monkeypatch.setenv("MY_SERVICE_API_KEY", ENV_SECRET)
    answers = iter([f'CALL lookup {{"q": "x", "{ARG_KEY}": 1}}', "CALL owners {}", "done TERMINATE"])

    def build():
        tools = {"lookup": lambda q, **more: "ok", "owners": lambda: {ARG_KEY: "owner", ENV_SECRET: 1}}
        return SimpleTeam([SimpleAgent("a", lambda messages: next(answers), tools=tools)], max_turns=5)

    store = tmp_path / "runs.jsonl"
    run = agentracer.trace(build, store=store).run("task", metadata={ARG_KEY: "meta", "note": "x"})
    text = store.read_text()
    assert ARG_KEY not in text and ENV_SECRET not in text
    assert run.metadata["[REDACTED]"] == "meta" and run.metadata["note"] == "x"
    assert run.steps[1].tool_calls[0].arguments == {"q": "x", "[REDACTED]": 1}


def test_a_whowhen_entrys_field_named_by_a_secret_is_renamed_on_import_and_export():
    from agentracer.formats.imported import redacted
    from agentracer.formats.whowhen import from_whowhen, to_whowhen

    data = {"question": "task", "ground_truth": "gt", "history": [
        {"role": "user", "content": "hi", "name": "user"},
        {"role": "assistant", "name": "Coder", "content": "ok", "extra": {ARG_KEY: "v"}}],
        "mistake_agent": "Coder", "mistake_step": "1", "mistake_reason": "r"}
    trajectory = from_whowhen(data, where="ww.json")
    assert ARG_KEY not in trajectory.model_dump_json()
    assert ARG_KEY not in json.dumps(to_whowhen(redacted(trajectory, ground_truth_too=True)))


class _Keyed:
    """A team whose agent's steps are objects, the first one with a field a secret names."""


class _KeyedPlugin(PlainTeamPlugin):
    name = "keyed"
    team_type = _Keyed

    async def arun(self, team, task, run):
        for content in ({ARG_KEY: "owner", "note": "x"}, "second"):
            async def answer(content=content):
                return json.dumps(content)

            text = await run.acall_model("a", {"messages": [task, str(len(run.trajectory.steps))]}, answer, TEXT_CODEC)
            run.add_step("a", json.loads(text))
        return "done"


register_plugin(_KeyedPlugin())


def test_a_recording_made_before_secret_keys_were_redacted_replays_without_divergence():
    team = agentracer.trace(_Keyed)
    recorded = team.run("task")
    assert recorded.steps[0].content == {"[REDACTED]": "owner", "note": "x"}
    older = recorded.model_copy(deep=True)
    older.steps[0].content = {ARG_KEY: "owner", "note": "x"}  # (as it was stored before)
    replay = team.replay(older, step=1, action=json.dumps("replaced"))
    assert [step.content for step in replay.steps] == [{"[REDACTED]": "owner", "note": "x"}, "replaced"]


def test_an_html_report_shows_the_ground_truth_without_its_keys(tmp_path, monkeypatch):
    from agentracer.report.html import render_html
    from agentracer.schema import Trajectory

    monkeypatch.setenv("MY_SERVICE_API_KEY", ENV_SECRET)
    truth = "sk-proj-WWGROUNDTRUTH1234567890"
    page = render_html(Trajectory(id="t", task="task", ground_truth={"answer": f"gt {truth}", "env": ENV_SECRET}))
    assert truth not in page and ENV_SECRET not in page and "gt [REDACTED]" in page


def test_a_urls_password_is_taken_out_of_cached_answers_decoded_and_a_short_one_leaves_words_whole(
        tmp_path, monkeypatch):
    from agentracer.models.openai_http import OpenAIChatModel
    from agentracer.testing.openai_server import OpenAIServer
    from agentracer.urls import url_secrets

    assert url_secrets("http://bob:p%40ssw0rd99@host/v1")[:2] == ["p%40ssw0rd99", "p@ssw0rd99"]
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AGENTRACER_API_KEY", raising=False)
    answer = "decoded pw p@ssw0rd99; Agent Name: tester; a placeholder x or abc"
    with OpenAIServer([answer] * 2) as server:
        host = server.base_url.split("://")[1]
        cache = tmp_path / "long"
        live = OpenAIChatModel(f"http://bob:p%40ssw0rd99@{host}", "m", cache_dir=str(cache)).complete(
            [{"role": "user", "content": "hi"}])
        stored = "".join(p.read_text() for p in cache.rglob("*.json"))
        assert stored and "p@ssw0rd99" not in stored and "p@ssw0rd99" not in live.text
        # a password of a few letters is a piece of words: taken out, it mangled the agent a verdict names
        live = OpenAIChatModel(f"http://bob:test@{host}", "m", cache_dir=str(tmp_path / "short")).complete(
            [{"role": "user", "content": "hi"}])
        assert "Agent Name: tester" in live.text and "placeholder x or abc" in live.text
