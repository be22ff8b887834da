"""The recorder and replay engine on a framework-free team of agents calling model functions."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading

import agentracer
import pytest
from agentracer import ReplayDivergence, ReplayError, TeamRunError, Trajectory
from agentracer.simple import SimpleAgent, SimpleTeam
from team_plugins import PlainTeamPlugin


class Counter:
    """Model functions that count their live calls and answer from the conversation they see."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def model(self, name: str):
        def answer(messages):
            with self.lock:
                self.calls += 1
            last = messages[-1]["content"]
            return f"{name} read {len(messages)} messages, last: {last[:30]}"

        return answer


def make_factory(counter: Counter, turns: int = 6, tools=None):
    def factory():
        agents = [
            SimpleAgent("planner", counter.model("planner"), system_prompt="plan"),
            SimpleAgent("coder", counter.model("coder"), system_prompt="code", tools=tools or {}),
            SimpleAgent("reviewer", counter.model("reviewer"), system_prompt="review"),
        ]
        return SimpleTeam(agents, max_turns=turns)

    return factory


def test_run_records_every_step_with_its_model_call():
    counter = Counter()
    team = agentracer.trace(make_factory(counter))
    traj = team.run("add 2 and 3")
    assert [s.agent for s in traj.steps] == ["user", "planner", "coder", "reviewer", "planner", "coder", "reviewer"]
    assert [s.index for s in traj.steps] == list(range(7))
    assert traj.steps[0].model_calls == []
    for step in traj.steps[1:]:
        (call,) = step.model_calls
        assert call.agent == step.agent and call.step == step.index and call.response == step.content
        assert call.request["messages"][0]["role"] == "system"
        assert call.request_hash.startswith("v2:") and len(call.request_hash) == 35
    assert [c.call_index for c in traj.model_calls() if c.agent == "coder"] == [0, 1]
    assert traj.framework == "python" and [a.name for a in traj.agents] == ["planner", "coder", "reviewer"]
    assert counter.calls == 6


def test_replay_serves_prefix_replaces_step_and_runs_rest_live():
    counter = Counter()
    team = agentracer.trace(make_factory(counter))
    traj = team.run("add 2 and 3")
    counter.calls = 0
    new = team.replay(traj, step=3, action="REVIEW: the plan is wrong")
    assert [s.content for s in new.steps[:3]] == [s.content for s in traj.steps[:3]]
    assert new.steps[3].content == "REVIEW: the plan is wrong" and new.steps[3].replaced
    assert new.steps[3].agent == traj.steps[3].agent
    assert counter.calls == 3  # steps 4, 5, 6 only
    assert "REVIEW: the plan is wrong" in new.steps[4].model_calls[0].request["messages"][-1]["content"]
    assert new.replay.parent_id == traj.id and new.replay.step == 3
    assert new.metadata["replay_stats"] == {"live": 3, "cassette": 2, "replacement": 1, "tools_served": 0}
    assert [c.source for c in new.model_calls()] == ["cassette", "cassette", "replacement", "live", "live", "live"]


def test_replay_at_first_model_step_and_at_last_step():
    counter = Counter()
    team = agentracer.trace(make_factory(counter))
    traj = team.run("task")
    first = team.replay(traj, step=1, action="new plan")
    assert first.steps[1].content == "new plan" and first.steps[0].content == "task"
    counter.calls = 0
    last = team.replay(traj, step=6, action="LGTM")
    assert counter.calls == 0 and last.steps[6].content == "LGTM"
    assert [s.content for s in last.steps[:6]] == [s.content for s in traj.steps[:6]]


def test_divergence_before_step_names_step_agent_and_diff():
    counter = Counter()
    traj = agentracer.trace(make_factory(counter)).run("task")
    prompts = {"planner": "plan", "coder": "code differently", "reviewer": "review"}

    def changed():
        agents = [SimpleAgent(n, counter.model(n), system_prompt=p) for n, p in prompts.items()]
        return SimpleTeam(agents, max_turns=6)

    with pytest.raises(ReplayDivergence) as info:
        agentracer.trace(changed).replay(traj, step=4, action="x")
    err = info.value
    assert err.step == 2 and err.agent == "coder"
    assert "code differently" in err.diff and "-" in err.diff
    assert "step 2" in str(err) and "'coder'" in str(err)


def test_a_recording_hashed_with_the_first_scheme_replays_checked_with_it():
    """Recordings made before request hashes took scheme 2 replay as they did: their requests are checked with
    scheme-1 hashes, a changed request is still a divergence, and the replay records scheme-1 hashes too."""
    from agentracer.redact import hash_scheme, request_hash

    counter = Counter()
    team = agentracer.trace(make_factory(counter))
    old = Trajectory.model_validate_json(team.run("task").to_json())
    for call in old.model_calls():
        call.request_hash = request_hash(call.request, scheme=1)
        assert hash_scheme(call.request_hash) == 1 and len(call.request_hash) == 32
    counter.calls = 0
    new = team.replay(old, step=4, action="different code")
    assert counter.calls == 2 and [c.source for c in new.model_calls()][:3] == ["cassette"] * 3
    assert all(hash_scheme(c.request_hash) == 1 for c in new.model_calls())
    old.steps[2].model_calls[0].request_hash = request_hash({"messages": []}, scheme=1)  # as if asked otherwise
    with pytest.raises(ReplayDivergence) as info:
        team.replay(old, step=4, action="different code")
    assert info.value.step == 2


def test_divergence_when_rerun_asks_more_than_recorded():
    counter = Counter()
    traj = agentracer.trace(make_factory(counter, turns=3)).run("task")
    other_order = make_factory(counter, turns=3)

    def swapped():
        team = other_order()
        team.agents = [team.agents[1], team.agents[0], team.agents[2]]
        return team

    with pytest.raises(ReplayDivergence) as info:
        agentracer.trace(swapped).replay(traj, step=3, action="x")
    assert info.value.step == 1


def test_bad_plans_are_specific_errors():
    counter = Counter()
    team = agentracer.trace(make_factory(counter))
    traj = team.run("task")
    with pytest.raises(ReplayError, match="out of range: trajectory .* has steps 0..6"):
        team.replay(traj, step=7, action="x")
    with pytest.raises(ReplayError, match="out of range"):
        team.replay(traj, step=-1, action="x")
    other = traj.model_copy(update={"framework": "autogen"})
    with pytest.raises(ReplayError, match="recorded with 'autogen'"):
        team.replay(other, step=2, action="x")
    renamed = traj.model_copy(update={"agents": [a.model_copy(update={"name": a.name + "2"}) for a in traj.agents]})
    with pytest.raises(ReplayError, match="team shape differs"):
        team.replay(renamed, step=2, action="x")


def test_a_step_that_is_not_an_index_and_actions_no_plugin_reads_are_refused_up_front():
    counter = Counter()
    team = agentracer.trace(make_factory(counter))
    traj = team.run("task")
    counter.calls = 0
    for step in ("3", True, 2.0):
        with pytest.raises(ReplayError, match="must be a step index"):
            team.replay(traj, step=step, action="x")
    for action, message in [
        ([1, 2], "a text or a JSON object"), (42, "a text or a JSON object"),
        ({"tool_call": [{"name": "add"}]}, "has 'tool_call': a tool-call action is"),
        ({"toolCalls": [{"name": "add"}]}, "has 'toolCalls'"),
        ({"tool_calls": []}, "non-empty list"), ({"tool_calls": [{"arguments": {}}]}, r"tool_calls\[0\] of a tool-call action needs a 'name'"),
        ({"tool_calls": [{"name": "add", "arguments": [1]}]}, "must be a JSON object"),
    ]:
        with pytest.raises(ReplayError, match=message):
            team.replay(traj, step=2, action=action)
    assert counter.calls == 0  # refused before any team ran
    structured = team.replay(traj, step=2, action={"plan": ["a", "b"]})  # a structured output is an action
    assert structured.steps[2].content == '{"plan": ["a", "b"]}'


def test_a_run_without_recorded_model_calls_is_refused_as_not_replayable():
    """An imported run (Who&When, TracerTraj, spans of another tracer) has steps but no recorded model calls."""
    counter = Counter()
    team = agentracer.trace(make_factory(counter))
    recorded = team.run("task").model_copy(deep=True)
    for step in recorded.steps:
        step.model_calls = []
    imported = recorded.model_copy(update={"metadata": {}, "framework": None})
    with pytest.raises(ReplayError, match="no recorded model calls .a run imported from another format.* only a "
                                          "recorded run that asked its models can be replayed"):
        team.replay(imported, step=2, action="x")
    # a recorded run whose team asked nothing before it ended (a role that failed first) is not called imported
    with pytest.raises(ReplayError, match=r"no recorded model calls \(its team made none before it ended\)"):
        team.replay(recorded, step=2, action="x")


def test_a_request_hash_edited_by_hand_is_a_divergence_that_says_so():
    counter = Counter()
    team = agentracer.trace(make_factory(counter))
    traj = team.run("task")
    traj.steps[2].model_calls[0].request_hash = "v2:" + "0" * 32
    with pytest.raises(ReplayDivergence) as info:
        team.replay(traj, step=4, action="x")
    assert info.value.step == 2 and info.value.diff == ""
    assert "its hash is not the recorded request_hash" in info.value.reason


def test_a_divergence_diff_cuts_long_lines_around_their_first_difference():
    from agentracer.replay import request_diff

    long = "You are a careful assistant. " * 40
    diff = request_diff({"system": long + "id=1"}, {"system": long + "id=2"})
    changed = [line for line in diff.splitlines() if line[:1] in "-+" and not line.startswith(("---", "+++"))]
    assert len(changed) == 2 and all(len(line) <= 165 for line in changed)
    assert "id=1" in changed[0] and "id=2" in changed[1] and changed[0].startswith("-…")
    assert request_diff("a\nb", "a\nc").splitlines()[-2:] == ["-b", "+c"]


def test_tool_call_replacement_runs_the_new_tool_live():
    used = []

    def add(x: int, y: int) -> int:
        used.append((x, y))
        return x + y

    def factory():
        coder_answers = iter(['CALL add {"x": 2, "y": 2}', "the answer is 4 TERMINATE"])
        agents = [SimpleAgent("coder", lambda m: next(coder_answers), tools={"add": add, "mul": lambda x, y: x * y})]
        return SimpleTeam(agents, max_turns=3)

    team = agentracer.trace(factory)
    traj = team.run("2+3?")
    assert [s.kind for s in traj.steps] == ["message", "tool_call", "tool_result", "message"]
    assert traj.steps[2].content == "4" and used == [(2, 2)]
    new = team.replay(traj, step=1, action={"tool_calls": [{"name": "mul", "arguments": {"x": 2, "y": 3}}]})
    assert new.steps[1].tool_calls[0].name == "mul"
    assert new.steps[2].content == "6"
    with pytest.raises(ReplayError, match=r"calls 'pow', which 'coder' does not have \(its tools: add, mul\)"):
        team.replay(traj, step=1, action={"tool_calls": [{"name": "pow", "arguments": {"x": 2, "y": 3}}]})


def test_a_replaced_tool_result_is_the_action_and_its_tool_does_not_run():
    used = []

    def lookup(q: str) -> str:
        used.append(q)
        return "sunny"

    def factory():
        def answer(messages):
            return 'CALL lookup {"q": "weather"}' if messages[-1]["role"] != "tool" else f"it is {messages[-1]['content']} TERMINATE"
        return SimpleTeam([SimpleAgent("searcher", answer, tools={"lookup": lookup})], max_turns=3)

    team = agentracer.trace(factory)
    traj = team.run("weather?")
    used.clear()
    new = team.replay(traj, step=2, action="raining")
    assert used == [] and new.steps[2].content == "raining" and new.steps[2].replaced
    assert new.steps[3].content == "it is raining TERMINATE" and len(new.steps) == 4


def test_served_tool_results_skip_the_live_tool():
    used = []
    counter = iter(range(1, 100))

    def lookup(q: str) -> str:  # a tool whose output changes on every call, like a clock or a live page
        used.append(q)
        return f"result {next(counter)}"

    def factory():
        answers = iter(['CALL lookup {"q": "a"}', 'CALL lookup {"q": "b"}', "done"])
        return SimpleTeam([SimpleAgent("searcher", lambda m: next(answers), tools={"lookup": lookup})], max_turns=3)

    team = agentracer.trace(factory)
    traj = team.run("find")
    used.clear()
    new = team.replay(traj, step=5, action="finished", serve_tools=True)
    assert used == [] and new.steps[2].content == "result 1" and new.steps[4].content == "result 2"
    assert new.metadata["replay_stats"]["tools_served"] == 2
    # without serving, the tools run live, and their changed output is a divergence
    with pytest.raises(ReplayDivergence) as info:
        team.replay(traj, step=5, action="finished")
    assert info.value.step == 2


def test_team_failure_is_recorded_and_reraised_or_returned():
    def boom(messages):
        raise RuntimeError("model exploded")

    def factory():
        return SimpleTeam([SimpleAgent("a", lambda m: "fine"), SimpleAgent("b", boom)], max_turns=4)

    with pytest.raises(TeamRunError) as info:
        agentracer.trace(factory).run("task")
    traj = info.value.trajectory
    assert traj.outcome.success is False and "model exploded" in traj.outcome.error
    assert traj.outcome.error == "RuntimeError: model exploded"
    assert str(info.value) == "the team raised RuntimeError: model exploded"
    # the call that raised is b's step, where the run stopped: what show and a tracer see
    assert [(s.agent, s.kind) for s in traj.steps] == [("user", "message"), ("a", "message"), ("b", "event")]
    failed = traj.steps[2]
    assert "model exploded" in failed.content and failed.metadata == {"failed_model_call": True}
    assert [c.error for c in failed.model_calls] == ["RuntimeError: model exploded"] and not traj.unattached_calls
    quiet = agentracer.trace(factory, raise_on_error=False)
    assert quiet.run("task").outcome.success is False
    # a replay can put an answer where the model raised: steps before are served, the team goes on
    fixed = quiet.replay(traj, step=2, action="b answers after all")
    assert [s.content for s in fixed.steps][:3] == ["task", "fine", "b answers after all"]
    assert [c.source for c in fixed.steps[2].model_calls] == ["replacement"] and len(fixed.steps) > 3


def test_store_takes_a_path_and_refuses_what_is_no_store_before_any_run(tmp_path):
    def factory():
        return SimpleTeam([SimpleAgent("a", lambda m: "fine")], max_turns=1)

    for path in (tmp_path / "runs.jsonl", str(tmp_path / "runs.db")):
        traced = agentracer.trace(factory, store=path)
        run = traced.run("task")
        assert [t.id for t in agentracer.open_store(path)] == [run.id]
    with pytest.raises(TypeError, match="store must be a path"):
        agentracer.trace(factory, store=42)


def test_a_store_no_run_could_be_added_to_is_refused_before_any_run(tmp_path):
    folder = tmp_path / "runs.jsonl"
    folder.mkdir()
    with pytest.raises(agentracer.InputError, match="is a folder"):
        agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", lambda m: "fine")], max_turns=1), store=folder)


def test_a_run_its_store_refuses_is_not_lost(tmp_path):
    """The team ran (and its model was paid) but the store cannot take the run: the error carries the trajectory."""
    path = tmp_path / "runs.jsonl"
    traced = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", lambda m: "fine")], max_turns=1), store=path)
    path.mkdir()  # (the store's file made a folder since: the append fails)
    with pytest.raises(agentracer.RunNotStoredError, match="the store did not take it") as refused:
        traced.run("task")
    kept = refused.value.trajectory
    assert isinstance(kept, Trajectory) and [s.agent for s in kept.steps] == ["user", "a"]


@pytest.mark.parametrize("suffix", [".jsonl", ".db"])
def test_half_an_emoji_in_a_models_answer_is_mended_as_recorded_and_the_run_stored(tmp_path, suffix):
    """A model's output cut mid-character (a lone surrogate) crashed the end of the run, which was then lost: it
    is recorded as U+FFFD, said in metadata, stored, and replays (its requests hash alike every time)."""
    half_emoji = "\ud83d"
    answers = iter([f"half {half_emoji} emoji", "second", "third", "fourth"])

    def factory():
        return SimpleTeam([SimpleAgent("a", lambda m: next(answers)), SimpleAgent("b", lambda m: "ok")], max_turns=4)

    traced = agentracer.trace(factory, store=tmp_path / f"runs{suffix}")
    run = traced.run("task")
    assert run.steps[1].content == "half \ufffd emoji" and run.steps[1].model_calls[0].response == "half \ufffd emoji"
    assert run.metadata["repaired_text"].startswith("1 broken character")
    assert [t.id for t in agentracer.open_store(tmp_path / f"runs{suffix}")] == [run.id]
    truth = traced.run("task", ground_truth={"answer": f"gt {half_emoji}"})  # (kept whole, not redacted: mended)
    assert truth.ground_truth == {"answer": "gt \ufffd"} and truth.metadata["repaired_text"].startswith("1 broken")
    answers = iter([f"half {half_emoji} emoji", "second", "third", "fourth"])
    replayed = traced.replay(run, step=3, action="changed")  # (b's request holds a's mended text: served alike)
    assert replayed.steps[3].content == "changed"


def test_a_model_that_edits_its_messages_changes_nothing_the_run_recorded():
    def trimming(messages):
        messages[-1]["content"] = messages[-1]["content"][:10]  # (the model's own business)
        messages.insert(0, {"role": "system", "content": "added"})
        return f"reply {len(messages)}"

    traced = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", trimming), SimpleAgent("b", trimming)],
                                                 max_turns=4))
    run = traced.run("a long task text here")
    assert run.steps[1].model_calls[0].request["messages"] == [
        {"role": "user", "name": "user", "content": "a long task text here"}]  # (what was sent)
    assert traced.replay(run, step=3, action="R").steps[3].content == "R"  # (no divergence before step 3)


def test_a_tool_call_whose_arguments_do_not_parse_is_a_step_with_an_error_result_and_can_be_replaced():
    answers = iter(["CALL add {bad", "done"])
    traced = agentracer.trace(lambda: SimpleTeam([SimpleAgent("coder", lambda m: next(answers, "done"),
                                                              tools={"add": lambda a, b: a + b})], max_turns=2))
    run = traced.run("add 2 and 3")
    assert [s.kind for s in run.steps] == ["message", "tool_call", "tool_result", "message"]
    assert run.steps[1].tool_calls[0].arguments == "{bad"
    assert run.steps[2].content.startswith("error: the arguments of add are not a JSON object")
    fixed = traced.replay(run, step=1, action={"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]})
    assert fixed.steps[2].content == "5"


def test_the_task_of_a_simple_team_is_replaced_by_a_text_only():
    traced = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", lambda m: "hi")], max_turns=1))
    run = traced.run("go")
    with pytest.raises(ReplayError, match="step 0 is the user's task: its replacement must be a text"):
        traced.replay(run, step=0, action={"a": 1})
    assert traced.replay(run, step=0, action="go on").task == "go on"


def test_an_action_of_several_tool_calls_is_refused_for_a_simple_agent_that_makes_one():
    traced = agentracer.trace(make_factory(Counter(), tools={"add": lambda a, b: a + b}))
    run = traced.run("task")
    two = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 1}}, {"name": "add", "arguments": {"a": 2, "b": 2}}]}
    with pytest.raises(ReplayError, match="makes 2 tool calls: a simple agent makes one per message"):
        traced.replay(run, step=2, action=two)  # (the coder's turn)


def test_a_frameworks_exception_message_is_recorded_without_the_traceback_it_folds_in():
    from agentracer.team import error_summary

    folded = RuntimeError("ValueError: bad input\nTraceback:\nTraceback (most recent call last):\n  File ...")
    assert error_summary(folded) == "RuntimeError: ValueError: bad input"
    assert error_summary(KeyError("k")) == "KeyError: 'k'"
    assert error_summary(RuntimeError("RuntimeError: model server returned 503")) == (
        "RuntimeError: model server returned 503")  # AutoGen's re-raised message names its type already

    class Attempt:  # tenacity's last attempt: a finished Future
        def exception(self) -> BaseException:
            return ConnectionError("connection refused")

    class RetryError(Exception):
        last_attempt = Attempt()

        def __str__(self) -> str:
            return "RetryError[<Future at 0x7f state=finished raised ConnectionError>]"

    assert error_summary(RetryError()) == "RetryError: ConnectionError: connection refused"
    assert error_summary(ValueError("x" * 5000)).endswith("…") and len(error_summary(ValueError("x" * 5000))) == 2001


def test_evaluator_and_store(tmp_path):
    counter = Counter()
    store = agentracer.open_store(tmp_path / "runs.jsonl")
    team = agentracer.trace(make_factory(counter), evaluator=lambda t: "reviewer" in t.steps[-1].content, store=store)
    traj = team.run("task")
    assert traj.outcome.success is True
    assert store.get(traj.id).steps == traj.steps


def test_concurrent_runs_in_asyncio_tasks_do_not_mix():
    def factory(tag: str):
        async def model(messages):
            await asyncio.sleep(0.001 * (len(tag) + len(messages)) % 0.004)  # interleave the runs
            return f"{tag}:{len(messages)}"

        return SimpleTeam([SimpleAgent("a", model), SimpleAgent("b", model)], max_turns=6)

    async def main():
        teams = [agentracer.trace(factory, f"run{i}") for i in range(20)]
        return await asyncio.gather(*(t.arun(f"task {i}") for i, t in enumerate(teams)))

    trajectories = asyncio.run(main())
    assert len({t.id for t in trajectories}) == 20
    for i, traj in enumerate(trajectories):
        assert traj.task == f"task {i}" and len(traj.steps) == 7
        assert all(s.content.startswith(f"run{i}:") for s in traj.steps[1:])
        assert all(len(s.model_calls) == 1 for s in traj.steps[1:])


def test_concurrent_runs_in_threads_do_not_mix():
    def factory(tag: str):
        return SimpleTeam([SimpleAgent("a", lambda m: f"{tag}:{len(m)}"), SimpleAgent("b", lambda m: f"{tag}!")],
                          max_turns=8)

    results: dict[int, agentracer.Trajectory] = {}

    def worker(i: int) -> None:
        results[i] = agentracer.trace(factory, f"t{i}").run(f"task {i}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    for i, traj in results.items():
        assert len(traj.steps) == 9 and all(s.content.startswith(f"t{i}") for s in traj.steps[1:])


def test_api_keys_and_authorization_headers_are_never_recorded(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", "verysecretvalue123")

    def factory():
        async def model(messages):
            return "ok, using key verysecretvalue123 and sk-abcdefghijklmnopqrstuvwx"

        agent = SimpleAgent("a", model, system_prompt="Authorization: Bearer abcdefghijklmnop")
        return SimpleTeam([agent], max_turns=1)

    traj = agentracer.trace(factory).run("my key is sk-abcdefghijklmnopqrstuvwx")
    text = traj.model_dump_json()
    assert "verysecretvalue123" not in text and "sk-abcdefghijklmnopqrstuvwx" not in text
    assert "abcdefghijklmnop" not in text and "[REDACTED]" in text


def test_environment_secrets_are_read_again_when_the_environment_changes(monkeypatch):
    from agentracer.redact import env_secrets

    monkeypatch.delenv("LATE_SERVICE_TOKEN", raising=False)
    before = env_secrets()
    assert "late-secret-value-1" not in before and env_secrets() == before
    monkeypatch.setenv("LATE_SERVICE_TOKEN", "late-secret-value-1")
    assert "late-secret-value-1" in env_secrets()
    monkeypatch.setenv("LATE_SERVICE_TOKEN", "late-secret-value-2")
    assert "late-secret-value-2" in env_secrets() and "late-secret-value-1" not in env_secrets()
    monkeypatch.delenv("LATE_SERVICE_TOKEN")
    assert env_secrets() == before


def test_redact_keeps_ordinary_fields():
    from agentracer.redact import redact

    out = redact({"api_key": "k", "max_tokens": 5, "headers": {"Authorization": "Bearer x"}, "text": "hello"}, [])
    assert out == {"api_key": "[REDACTED]", "max_tokens": 5, "headers": {"Authorization": "[REDACTED]"}, "text": "hello"}


def test_key_shaped_values_are_redacted_only_where_a_key_starts():
    from agentracer.redact import redact_text

    text = ("see rhuthik/Mask-RCNN-Object_Detection and pathf_abcdefghijklmnopqrst; key sk-abcdefghijklmnopqr, "
            "token=hf_ZYXWVUTSRQPONMLKJIH, header 'Bearer abc.def-123456'")
    out = redact_text(text, [])
    assert "Mask-RCNN-Object_Detection" in out and "pathf_abcdefghijklmnopqrst" in out
    assert "sk-abcdefghijklmnopqr" not in out and "hf_ZYXWVUTSRQPONMLKJIH" not in out and "abc.def-123456" not in out
    assert out.count("[REDACTED]") == 3


def test_request_hash_is_a_function_of_the_stored_request():
    from agentracer.redact import FrozenJSON, Redactor, request_hash

    traj = agentracer.trace(make_factory(Counter())).run("add 2 and 3")
    for call in traj.model_calls():
        assert call.request_hash == request_hash(call.request)
    plain = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "n": 1}
    frozen = {**plain, "messages": [FrozenJSON(m) for m in plain["messages"]]}
    redactor = Redactor([])
    assert redactor.request(frozen)[1] == redactor.request(frozen)[1] == request_hash(plain)
    assert request_hash({**plain, "n": 2}) != request_hash(plain)
    assert request_hash({**plain, "messages": plain["messages"][::-1]}) != request_hash(plain)
    # a request's own fields that hold something secret-named are redacted once per text: each request is the same
    # redacted request, hashed as a whole would be, the conversation going on from the one before (as without them)
    tools = [{"name": "login", "parameters": {"type": "object", "properties": {"password": {"type": "string"}}}},
             {"name": "fetch", "headers": {"api_key": "abcd1234efgh5678"}}]
    conversation = [FrozenJSON(role="user" if i % 2 else "assistant", content=f"message {i}") for i in range(30)]
    redactor, digested = Redactor([]), []
    digest = redactor._digest
    redactor._digest = lambda message: digested.append(1) or digest(message)  # type: ignore[method-assign]
    for k in range(1, 30, 4):
        recorded, hashed = redactor.request({"messages": conversation[:k], "tools": tools})
        assert recorded["tools"][0]["parameters"]["properties"] == {"password": {"type": "string"}}  # (a name)
        assert recorded["tools"][1]["headers"] == {"api_key": "[REDACTED]"}
        assert hashed == request_hash(recorded) and recorded["messages"] == conversation[:k]
    assert len(digested) == 29  # (each message digested once: every request was hashed whole again, 120 digests)


def test_secret_keys_anywhere_in_a_request_are_redacted():
    """A key the secret-key pattern matches in the middle (``access_token_v2``) is caught by the fast screens too,
    in a request's own fields and inside its messages."""
    from agentracer.redact import FrozenJSON, Redactor, request_hash

    redactor = Redactor([])
    for messages in ([{"role": "user", "content": "hi"}], [FrozenJSON(role="user", content="hi")]):
        clean, digest = redactor.request({"messages": messages, "extra": {"access_token_v2": "abcdef"}})
        assert clean["extra"] == {"access_token_v2": "[REDACTED]"} and digest == request_hash(clean)
    for message in ({"role": "user", "content": "hi", "X-Refresh-Token-B": "abcdef"},
                    FrozenJSON(role="user", content="hi", my_api_key_old="abcdef")):
        clean, _ = redactor.request({"messages": [message]})
        assert "abcdef" not in str(clean) and "[REDACTED]" in str(clean)


def test_a_response_made_for_the_recorder_is_kept_as_is_when_clean_and_redacted_otherwise():
    from agentracer.redact import Redactor
    from agentracer.replay import json_copy

    redactor = Redactor(["verysecretvalue123"])
    clean = {"content": "fine", "usage": {"prompt_tokens": 3, "completion_tokens": 4}, "choices": [{"n": 1}]}
    assert redactor.own(clean) is clean
    for dirty, expected in (
        ({"content": "key verysecretvalue123"}, {"content": "key [REDACTED]"}),
        ({"headers": {"Authorization": "x"}}, {"headers": {"Authorization": "[REDACTED]"}}),
        ([{"refresh_token_b": "x"}], [{"refresh_token_b": "[REDACTED]"}]),
        ("Bearer abcdefghijklmnop", "[REDACTED]"),
    ):
        assert redactor.own(dirty) == expected
        assert redactor.own(dirty) == expected  # again, with every key and string already screened once
    for empty in ({"api_key": "", "content": "fine"}, {"Authorization": None}):  # a secret key without a value
        assert redactor.own(empty) is empty and redactor.own(empty) is empty
    shared = {"a": [1, {"b": "c"}]}
    assert json_copy(shared) == shared and json_copy(shared) is not shared
    assert json_copy({"x": object()})["x"].startswith("<object")


def test_request_hashes_of_growing_interleaved_conversations_equal_fresh_ones():
    """The redactor goes on from an earlier request's hash state when a conversation grows: interleaved agents,
    a conversation that branches, shrinks or repeats, and other request fields all hash as from scratch."""
    import random

    from agentracer.redact import FrozenJSON, Redactor, request_hash

    rng = random.Random(7)
    redactor = Redactor([])
    pool = [FrozenJSON(role="user", content=f"message {i}") for i in range(40)]
    conversations: list[list] = [[] for _ in range(10)]  # more than the states kept per set of fields
    for _ in range(300):
        i = rng.randrange(len(conversations))
        move = rng.random()
        if move < 0.7:
            conversations[i].append(rng.choice(pool))
        elif move < 0.8:
            conversations[i] = conversations[i][: rng.randrange(len(conversations[i]) + 1)]
        elif move < 0.9:
            conversations[i] = list(conversations[rng.randrange(len(conversations))])
        request = {"messages": list(conversations[i])}
        if rng.random() < 0.3:
            request["tools"] = ["add"]
        if rng.random() < 0.4:  # fields of strings are kept as JSON by value: "1" and 1 must not meet
            request["model"] = rng.choice(["m1", "m2", "1"])
        elif rng.random() < 0.2:
            request["model"] = 1
        assert redactor.request(request)[1] == request_hash(
            {**request, "messages": [dict(m) for m in request["messages"]]}) == _hash_by_definition(request)
        assert request_hash(request, scheme=1) == _hash_by_definition(request, scheme=1)


def test_message_digests_of_scheme_2_never_confuse_a_nul_a_json_text_or_a_value_type():
    from agentracer.redact import request_hash

    def digest(message) -> str:
        return request_hash({"messages": [message]})

    forms = [{"a": "b\x00c"}, {"a\x00b": "c"}, {"a": "b", "c": "d"}, {"a": "b\x00c\x00d"}, {"a": 1}, {"a": "1"},
             {"a": True}, {}, {"a": ["b"]}, "a", ["a", "b"], {"a": "b"}, {"b": "a"}]
    assert len({digest(m) for m in forms}) == len(forms)
    assert digest({"b": "2", "a": "1"}) == digest({"a": "1", "b": "2"})  # key order does not matter
    for message in forms:
        assert digest(message) == _hash_by_definition({"messages": [message]})


def _hash_by_definition(request: dict, scheme: int = 2) -> str:
    """``request_hash`` as its docstring defines it, computed from scratch."""
    import hashlib
    import json

    def dumps(obj) -> str:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def digest_text(message) -> str:
        plain = scheme == 2 and isinstance(message, dict) and message and all(
            type(k) is str and type(v) is str and "\x00" not in k + v for k, v in message.items())
        return "\x00".join(x for k in sorted(message) for x in (k, message[k])) if plain else dumps(message)

    rest = dumps({k: v for k, v in request.items() if k != "messages"})
    if scheme == 1:
        return hashlib.sha256("\n".join([rest, *(sha(digest_text(m)) for m in request["messages"])]).encode()
                              ).hexdigest()[:32]
    digests = b"".join(hashlib.sha256(digest_text(m).encode()).digest() for m in request["messages"])
    return "v2:" + hashlib.sha256((rest + "\n").encode() + digests).hexdigest()[:32]


def test_secrets_in_repeated_frozen_messages_are_redacted_every_time():
    from agentracer.redact import FrozenJSON, Redactor

    redactor = Redactor(["verysecretvalue123"])
    history = [FrozenJSON(role="user", content="key verysecretvalue123"), FrozenJSON(role="user", content="ok")]
    for _ in range(2):
        clean, digest = redactor.request({"messages": history, "api_key": "sk-abcdefghijklmnopqrstuvwx"})
        assert clean == {"messages": [{"role": "user", "content": "key [REDACTED]"}, {"role": "user", "content": "ok"}],
                         "api_key": "[REDACTED]"}
        assert digest == redactor.request(clean)[1]


def test_frozen_messages_with_content_parts_are_screened_and_hashed_like_plain_ones():
    from agentracer.redact import FrozenJSON, Redactor, request_hash

    redactor = Redactor(["verysecretvalue123"])
    parts = FrozenJSON(role="user", content=[{"type": "text", "text": "see verysecretvalue123"}, "and this"])
    fine = FrozenJSON(role="assistant", content=[{"type": "text", "text": "fine"}])
    for _ in range(2):
        clean, digest = redactor.request({"messages": [fine, parts]})
        assert clean["messages"][0] == fine and "verysecretvalue123" not in str(clean)
        assert clean["messages"][1]["content"][0]["text"] == "see [REDACTED]" and digest == request_hash(clean)
    assert redactor.request({"messages": [fine]}) == ({"messages": [fine]}, request_hash({"messages": [dict(fine)]}))


def test_equal_plain_messages_rebuilt_per_call_hash_and_redact_like_fresh_ones():
    """Frameworks that rebuild the conversation's dicts on every call: equal messages are cached by value."""
    from agentracer.redact import Redactor, request_hash

    redactor = Redactor(["verysecretvalue123"])

    def history() -> list[dict]:
        return [{"role": "user", "content": "key verysecretvalue123"}, {"role": "user", "content": "ok"},
                {"role": "tool", "content": 1}]  # not all strings: never cached by value

    for _ in range(3):
        clean, digest = redactor.request({"messages": history(), "n": 1})
        assert clean == {"messages": [{"role": "user", "content": "key [REDACTED]"}, {"role": "user", "content": "ok"},
                                      {"role": "tool", "content": 1}], "n": 1}
        assert digest == request_hash(clean)
    # a value-equal message with a different JSON form is not confused with a cached one
    assert redactor.request({"messages": [{"role": "tool", "content": True}]})[1] != redactor.request(
        {"messages": [{"role": "tool", "content": 1}]})[1]
    assert redactor.request({"messages": [{"content": "ok", "role": "user"}]})[1] == request_hash(
        {"messages": [{"role": "user", "content": "ok"}]})


def test_the_sync_entry_points_put_one_frame_between_the_caller_and_the_team():
    """CAMEL walks every frame of the stack on each agent step: ``run`` and ``replay`` add one frame of ours (as ``asyncio.run`` would),
    and what the factory sets in its context is seen while the team runs, as with ``arun``."""
    import contextvars
    import sys

    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    seen: list[tuple[list[str], str]] = []

    class Probe(SimpleAgent):
        async def respond(self, history):
            frames, frame = [], sys._getframe()
            while frame is not None and frame.f_code.co_name != "caller":
                if frame.f_code.co_filename == agentracer.team.__file__:
                    frames.append(frame.f_code.co_name)
                frame = frame.f_back
            seen.append((frames, marker.get()))
            return await super().respond(history)

    counter = Counter()

    def factory() -> SimpleTeam:
        marker.set("set by the factory")
        team = make_factory(counter)()
        team.agents = [Probe(a.name, a.model, a.system_prompt, a.tools) for a in team.agents]
        return team

    traced = agentracer.trace(factory)

    def caller():
        return traced.run("add 2 and 3")

    traj = caller()
    assert seen[0][0] == ["run"]
    assert {value for _, value in seen} == {"set by the factory"}
    seen.clear()

    def caller():  # noqa: F811 - the same name marks the top of the walk
        return traced.replay(traj, step=2, action="5")

    assert caller().replay is not None
    assert seen[-1][0] == ["replay"]


def test_sync_run_and_replay_work_inside_a_running_event_loop():
    """As in a notebook cell: the sync entry points move to a worker thread with a loop of its own."""
    import asyncio

    traced = agentracer.trace(make_factory(Counter()))

    async def cell():
        traj = traced.run("add 2 and 3")
        return traj, traced.replay(traj, step=2, action="5")

    traj, new = asyncio.run(cell())
    assert len(traj.steps) == 7 and new.replay.parent_id == traj.id
    assert new.steps[2].content == "5" and [s.content for s in new.steps[:2]] == [s.content for s in traj.steps[:2]]


def test_traced_factory_still_builds_teams_and_accepts_team_objects():
    counter = Counter()
    factory = make_factory(counter)
    traced = agentracer.trace(factory)
    assert isinstance(traced(), SimpleTeam)
    team_object = agentracer.trace(factory())
    traj = team_object.run("task")
    assert len(traj.steps) == 7
    with pytest.raises(agentracer.PluginNotFound, match="no agentracer plugin recognises a builtins.int"):
        agentracer.trace(lambda: 3).run("task")


def test_a_traced_method_builds_its_instances_team():
    class Teams:
        def __init__(self, counter: Counter) -> None:
            self.factory = make_factory(counter)

        @agentracer.trace
        def build(self) -> SimpleTeam:
            return self.factory()

    teams = Teams(Counter())
    traj = teams.build.run("task")
    assert len(traj.steps) == 7 and traj.metadata["team"] == "test_a_traced_method_builds_its_instances_team.<locals>.Teams.build"
    assert [s.content for s in teams.build.replay(traj, step=3, action="new").steps[:4]][-1] == "new"
    assert isinstance(Teams.build, agentracer.TracedTeam)


def test_a_factory_object_is_told_how_to_trace_it():
    class Factory:
        def __call__(self) -> SimpleTeam:
            return make_factory(Counter())()

    with pytest.raises(agentracer.PluginNotFound, match=r"it is callable: .*agentracer.trace\(lambda: factory\(\)\)"):
        agentracer.trace(Factory()).run("task")


def test_a_recorded_failing_call_fails_again_when_served():
    from dataclasses import dataclass

    @dataclass
    class RetryingAgent(SimpleAgent):
        async def respond(self, history):
            for _ in range(3):
                try:
                    return await super().respond(history)
                except Exception:
                    continue
            return "gave up"

    attempts = {"n": 0}

    def flaky(messages):
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise TimeoutError("model timed out")
        return f"answer {attempts['n']}"

    def factory():
        return SimpleTeam([RetryingAgent("a", flaky), SimpleAgent("b", lambda m: "ok")], max_turns=3)

    team = agentracer.trace(factory)
    traj = team.run("task")
    calls = traj.steps[1].model_calls
    assert [c.error is not None for c in calls] == [True, False] and traj.steps[1].content == "answer 2"
    attempts["n"] = 100
    new = team.replay(traj, step=3, action="done")
    assert new.steps[1].content == "answer 2" and attempts["n"] == 100  # both served, no live call
    assert [c.source for c in new.steps[1].model_calls] == ["cassette", "cassette"]


def test_an_action_the_agent_cannot_parse_and_asks_its_model_again_for_is_refused():
    """An agent that asks again when an answer does not parse (MetaGPT's action nodes do): the step at t would hold the
    live answer while marked replaced; the replay is refused, naming the form the recorded answer had."""
    from dataclasses import dataclass

    @dataclass
    class ParsingAgent(SimpleAgent):
        async def respond(self, history):
            for _ in range(3):
                answer = await super().respond(history)
                if answer.startswith("value = "):
                    return answer
            return "gave up"

    def factory():
        return SimpleTeam([ParsingAgent("a", lambda m: "value = 1"), SimpleAgent("b", lambda m: "ok")], max_turns=3)

    team = agentracer.trace(factory)
    traj = team.run("task")
    with pytest.raises(ReplayError, match=r"action for step 1 was not taken: 'a' asked its model again .*"
                                          r"the recorded answer began 'value = 1'"):
        team.replay(traj, step=1, action="two")
    fixed = team.replay(traj, step=1, action="value = 2")  # in the answer's form: taken
    assert fixed.steps[1].content == "value = 2" and fixed.steps[1].replaced


def test_raw_messages_are_encoded_once_per_conversation_growth_and_hash_as_their_encodings():
    """A request whose messages are the framework's own objects (``RawMessages``) comes back encoded, hashed as
    the encoded request would be; each request encodes only what its conversation added; a secret is redacted."""
    from agentracer.redact import FrozenJSON, RawMessages, Redactor, request_hash

    encoded_objects: list = []

    def encode(messages):
        encoded_objects.extend(messages)
        return [FrozenJSON(role="user", content=message.text) for message in messages]

    class Message:  # a framework's message object
        def __init__(self, text):
            self.text = text

    redactor = Redactor(["supersecret-value"])
    system = Message("be brief")
    conversations = {"a": [system], "b": [system]}
    for turn in range(6):
        name = "ab"[turn % 2]
        conversation = conversations[name]
        new = [Message(f"{name} says {turn}"), Message(f"reply {turn}")]
        conversation.extend(new)
        before = len(encoded_objects)
        request, digest = redactor.request({"messages": RawMessages(list(conversation), encode), "model": "m"})
        plain = {"messages": [{"role": "user", "content": m.text} for m in conversation], "model": "m"}
        assert request == plain and digest == request_hash(plain)
        assert encoded_objects[before:] == (new if turn > 1 else conversation)  # a first request: all of it
    leaked = Message("the key is supersecret-value")
    conversations["a"].append(leaked)
    request, digest = redactor.request({"messages": RawMessages(list(conversations["a"]), encode)})
    assert request["messages"][-1]["content"] == "the key is [REDACTED]" and digest == request_hash(request)


def test_uninstrumenting_while_a_run_goes_on_warns_that_it_records_nothing_more():
    seen = []

    def model(messages):
        with pytest.warns(RuntimeWarning, match="1 traced run\\(s\\) still going"):
            agentracer.uninstrument()
        seen.append(len(messages))
        return "ok"

    cut = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", model)], max_turns=1)).run("task")
    assert seen == [1]  # the agent ran on (the task, as it saw it)
    assert "uninstrument() ran during this run, after its first 1 step(s)" in cut.metadata["unhooked"]  # (it says so)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agentracer.uninstrument()  # no run going: nothing to say


def test_a_factory_that_raises_is_a_team_build_error_with_its_cause():
    from agentracer import TeamBuildError

    def broken():
        raise ValueError("no such model configured")

    with pytest.raises(TeamBuildError, match="the team factory .*broken raised ValueError: no such model") as info:
        agentracer.trace(broken).run("task")
    assert isinstance(info.value.__cause__, ValueError)


def test_replaying_step_0_runs_the_team_on_the_replaced_task():
    def factory():
        return SimpleTeam([SimpleAgent("echo", lambda m: f"on: {m[-1]['content']} TERMINATE")], max_turns=2)

    team = agentracer.trace(factory)
    traj = team.run("the old task")
    new = team.replay(traj, step=0, action="the new task")
    assert new.steps[0].content == "the new task" and new.steps[0].replaced and new.task == "the new task"
    assert new.steps[1].content == "on: the new task TERMINATE"
    assert new.metadata["replay_stats"]["replacement"] == 1


class _Logbook:
    """A team whose steps are log lines no model call makes: a plugin has nothing to put a replacement into."""

    lines = ("start", "middle", "end")


class _LogbookPlugin(PlainTeamPlugin):
    name = "logbook"
    team_type = _Logbook

    async def arun(self, team, task, run):
        from agentracer.simple import TEXT_CODEC

        async def opening():
            return "start"

        run.add_step("logger", await run.acall_model("logger", {"messages": [task]}, opening, TEXT_CODEC))
        for line in team.lines[1:]:  # no model call makes these
            run.add_step("logger", line, kind="event")
        return "end"


def test_a_replay_whose_plugin_never_used_the_action_is_an_error_not_a_replay(tmp_path):
    from agentracer.plugins import register_plugin

    register_plugin(_LogbookPlugin())
    store = agentracer.JsonlStore(tmp_path / "runs.jsonl")
    team = agentracer.trace(_Logbook, store=store)
    traj = team.run("log")
    with pytest.raises(ReplayError, match=r"step 1 \(event of 'logger'\) ran without the replacement.*logbook"):
        team.replay(traj, step=1, action="a different middle")
    assert [t.id for t in store] == [traj.id]  # nothing half-written


def test_a_task_that_is_not_a_text_is_refused_before_the_team_is_built():
    built = []

    def factory():
        built.append(1)
        return SimpleTeam([SimpleAgent("a", lambda m: "hi")], max_turns=1)

    team = agentracer.trace(factory)
    for task in (["a list"], 3, {"content": "x"}, None):
        with pytest.raises(agentracer.AgentracerError, match=f"the task must be a text .str., not {type(task).__name__}"):
            team.run(task)
        with pytest.raises(agentracer.AgentracerError, match="the task must be a text"):
            asyncio.run(team.arun(task))
    assert built == []


class _TwoCallTeam:
    """Each step is made by two calls of its agent, a draft then the final answer (as a Magentic-One ledger is made of
    its fact sheet and its plan)."""


class _TwoCallPlugin(_LogbookPlugin):
    name = "two-calls"

    team_type = _TwoCallTeam

    async def arun(self, team, task, run):
        from agentracer.simple import TEXT_CODEC

        async def answer(text):
            return text

        for turn in range(3):
            draft = await run.acall_model("writer", {"messages": [task, turn, "draft"]},
                                          functools.partial(answer, f"draft {turn}"), TEXT_CODEC)
            final = await run.acall_model("writer", {"messages": [task, turn, draft]},
                                          functools.partial(answer, f"final {turn}"), TEXT_CODEC)
            run.add_step("writer", f"{draft} | {final}")
        return "done"


def test_a_step_made_by_several_calls_has_only_its_last_replaced_the_earlier_served():
    from agentracer.plugins import register_plugin

    register_plugin(_TwoCallPlugin())
    team = agentracer.trace(_TwoCallTeam)
    traj = team.run("write")
    assert [len(s.model_calls) for s in traj.steps] == [2, 2, 2]
    new = team.replay(traj, step=1, action="a better final")
    assert new.steps[1].content == "draft 1 | a better final"
    assert [c.source for c in new.steps[1].model_calls] == ["cassette", "replacement"]
    assert new.metadata["replay_stats"] == {"live": 2, "cassette": 3, "replacement": 1, "tools_served": 0}


class _LoopBoundClient:
    """Like openai's HTTP client: bound to the loop it was made in, it closes itself when collected, in whatever loop
    runs then."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def aclose(self) -> None:
        self.loop.call_soon(lambda: None)  # its connections' loop: closed since its run ended

    def __del__(self) -> None:
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self.aclose())


def test_a_client_of_an_earlier_run_closing_itself_in_a_later_one_prints_nothing(caplog):
    import gc

    kept: list[_LoopBoundClient] = []

    async def model(messages):
        if not kept:
            kept.append(_LoopBoundClient())  # made in the first run
        else:
            kept.clear()  # collected in the second
        await asyncio.sleep(0)
        return "ok TERMINATE"

    async def failing_cleanup():
        raise ValueError("a real error in a task nobody awaited")

    async def model_with_a_lost_error(messages):
        asyncio.get_running_loop().create_task(failing_cleanup())
        await asyncio.sleep(0)
        return "ok TERMINATE"

    team = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", model)], max_turns=1, stop_word="TERMINATE"))
    with caplog.at_level("ERROR", logger="asyncio"):
        team.run("first")
        team.run("second")
        gc.collect()
        assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
        agentracer.trace(lambda: SimpleTeam([SimpleAgent("b", model_with_a_lost_error)], max_turns=1,
                                            stop_word="TERMINATE")).run("third")
        gc.collect()
    assert any("a real error in a task nobody awaited" in str(r.exc_info and r.exc_info[1]) for r in caplog.records)


class _ToolWithHelper:
    """Agent "lead" calls a tool that has agent "helper" answer inside it; agent "other" speaks between the call and
    its result outside the tool (as a concurrent worker does)."""


class _ToolWithHelperPlugin(_LogbookPlugin):
    name = "tool-with-helper"

    team_type = _ToolWithHelper

    async def arun(self, team, task, run):
        from agentracer import ToolCall, ToolResult
        from agentracer.simple import TEXT_CODEC

        async def say(text):
            return text

        async def ask(agent, text):
            return await run.acall_model(agent, {"messages": [task, agent]}, functools.partial(say, text), TEXT_CODEC)

        run.add_step("lead", await ask("lead", "CALL lookup"), kind="tool_call",
                     tool_calls=[ToolCall(id="c1", name="lookup", arguments={})])
        how, value = run.tool_plan("lead")
        if how == "live":
            with run.tool_scope("lead"):
                run.add_step("helper", await ask("helper", "helper found 42"))
            value = "42"
        run.add_step("other", await ask("other", "other's own work"))
        run.add_step("lead", value, role="tool", kind="tool_result",
                     tool_results=[ToolResult(call_id="c1", name="lookup", content=value)])
        run.add_step("lead", await ask("lead", f"the answer is {value}"))
        return "done"


def test_a_tool_that_does_not_run_copies_only_the_steps_made_inside_it():
    from agentracer.plugins import register_plugin

    register_plugin(_ToolWithHelperPlugin())
    team = agentracer.trace(_ToolWithHelper)
    traj = team.run("find it")
    assert [(s.agent, s.metadata.get("inside_tool_of")) for s in traj.steps] == [
        ("lead", None), ("helper", "lead"), ("other", None), ("lead", None), ("lead", None)]
    new = team.replay(traj, step=4, action="the answer is 42, surely", serve_tools=True)
    assert [s.content for s in new.steps[:4]] == [s.content for s in traj.steps[:4]]  # helper copied, other made
    assert [c.source for s in new.steps[:4] for c in s.model_calls] == ["cassette"] * 3
    assert new.metadata["replay_stats"]["tools_served"] == 1


def test_tool_calls_in_place_of_a_tool_result_are_refused():
    def factory():
        answers = iter(['CALL add {"x": 2, "y": 2}', "the answer is 4 TERMINATE"])
        return SimpleTeam([SimpleAgent("coder", lambda m: next(answers), tools={"add": lambda x, y: x + y})],
                          max_turns=3)

    team = agentracer.trace(factory)
    traj = team.run("2+2?")
    assert traj.steps[2].kind == "tool_result"
    with pytest.raises(ReplayError, match="step 2 is a tool result: its replacement is what the tool returned"):
        team.replay(traj, step=2, action={"tool_calls": [{"name": "add", "arguments": {"x": 1, "y": 1}}]})


def _stamped_factory(counter: Counter, stamp):
    def factory():
        agents = [SimpleAgent("planner", counter.model("planner"), system_prompt=f"plan ({stamp()})"),
                  SimpleAgent("coder", counter.model("coder"), system_prompt=f"code ({stamp()})")]
        return SimpleTeam(agents, max_turns=4)

    return factory


def test_requests_that_differ_only_in_fresh_uuids_and_times_are_served_and_other_changes_still_diverge():
    import datetime
    import uuid

    from agentracer.replay import differs_only_in_ids_and_times

    counter = Counter()
    team = agentracer.trace(_stamped_factory(
        counter, lambda: f"session {uuid.uuid4()} at {datetime.datetime.now().isoformat()}"))
    traj = team.run("build it")
    counter.calls = 0
    new = team.replay(traj, step=4, action="done")
    assert counter.calls == 0 and [s.content for s in new.steps[:4]] == [s.content for s in traj.steps[:4]]

    runs = iter(range(100))
    team = agentracer.trace(_stamped_factory(counter, lambda: f"session {next(runs)}"))
    traj = team.run("build it")
    with pytest.raises(ReplayDivergence, match="asks something the recording never saw"):
        team.replay(traj, step=3, action="done")

    recorded = {"messages": [{"role": "system", "content": "id 123e4567-e89b-12d3-a456-426614174000 at 2026-11-29 03:30:01"}]}
    assert differs_only_in_ids_and_times(recorded, {"messages": [{"role": "system", "content": (
        "id 9b2f0c1e-0000-4a6b-8c3d-5e6f7a8b9c0d at 2026-11-30T10:00:59.123+01:00")}]})
    assert not differs_only_in_ids_and_times(recorded, recorded)  # equal: an edited hash stays a divergence
    assert differs_only_in_ids_and_times(f"session {uuid.uuid4().hex}", f"session {uuid.uuid4().hex}")
    assert not differs_only_in_ids_and_times(recorded, {"messages": [{"role": "system", "content": (
        "id 9b2f0c1e-0000-4a6b-8c3d-5e6f7a8b9c0d at 2026-11-30 10:00:59, in a hurry")}]})
    saved = {"docs": {"20261129061458.json": {"filename": "20261129061458.json", "content": "{}"}}}
    assert differs_only_in_ids_and_times(saved, json.loads(json.dumps(saved).replace("20261129061458",
                                                                                      "20261129061459")))
    assert not differs_only_in_ids_and_times("order 20261129061458", "order 20261129061499")  # not a time
    assert not differs_only_in_ids_and_times("balance 20120315100000", "balance 20120315100001")  # not a file name
    # an object shown by Python's default repr: another address in every process
    assert differs_only_in_ids_and_times("uses <tools.Helper object at 0x7f3a1c2b4d90>",
                                         "uses <tools.Helper object at 0x7f0011aa22c0>")
    assert not differs_only_in_ids_and_times("pay 0x7f3a1c2b4d90", "pay 0x7f0011aa22c0")  # (an address outside a repr)


def test_requests_that_differ_only_in_their_tool_schemas_enum_and_required_order_are_the_same_offer():
    """A ``Literal`` of a set's members lists them in another order in every process; only the order of a tool schema's
    ``enum`` and ``required`` lists is let go (the AutoGen replay test runs it end to end)."""
    from agentracer.replay import differs_only_in_schema_order

    def request(enum, required=("colour", "wall"), **more):
        colour = {"type": "string", "enum": enum, **more}
        return {"messages": [{"role": "user", "content": "paint"}], "tools": [{"type": "function", "function": {
            "name": "paint", "parameters": {"type": "object", "properties": {"colour": colour, "wall": {}},
                                            "required": list(required)}}}]}

    recorded = request(["red", "green", 3])
    assert differs_only_in_schema_order(recorded, request([3, "green", "red"], ("wall", "colour")))
    assert not differs_only_in_schema_order(recorded, recorded)  # equal: an edited hash stays a divergence
    assert not differs_only_in_schema_order(recorded, request(["red", "green", 3, "blue"]))  # a value added
    assert not differs_only_in_schema_order(recorded, request(["red", "green"]))
    assert not differs_only_in_schema_order(recorded, request(["red", "green", 3], ("colour",)))
    # other lists keep their order: a default or example that is a list, anyOf, a message list
    assert not differs_only_in_schema_order(request(["red"], default=["a", "b"]), request(["red"], default=["b", "a"]))
    assert not differs_only_in_schema_order(request(["red"], default={"enum": ["a", "b"]}),
                                            request(["red"], default={"enum": ["b", "a"]}))  # (data, not a schema)
    assert not differs_only_in_schema_order(request(["red"], anyOf=[{"type": "string"}, {"type": "null"}]),
                                            request(["red"], anyOf=[{"type": "null"}, {"type": "string"}]))
    moved = request(["green", "red", 3])
    moved["messages"] = [{"role": "user", "content": "paint it"}]
    assert not differs_only_in_schema_order(recorded, moved)
    # a parameter named "default" is a schema: its enum's order goes too
    named = request(["red"])
    named["tools"][0]["function"]["parameters"]["properties"]["default"] = {"enum": ["x", "y"]}
    swapped = json.loads(json.dumps(named).replace('["x", "y"]', '["y", "x"]'))
    assert differs_only_in_schema_order(named, swapped)
    assert not differs_only_in_schema_order({"enum": ["a", "b"]}, {"enum": ["b", "a"]})  # (no tools: not a schema)


def test_a_tool_results_action_names_a_tool_by_call_id_when_the_step_holds_two_of_its_calls():
    from agentracer import Step, ToolResult
    from agentracer.replay import ReplayPlan, check_tool_results_action, replaced_tool_result

    results = [ToolResult(call_id="c1", name="add", content="3"), ToolResult(call_id="c2", name="add", content="4")]
    traj = Trajectory(framework="simple", task="t", steps=[
        Step(index=0, agent="calc", kind="tool_result", role="tool", content="3\n4", tool_results=results)])
    with pytest.raises(ReplayError, match=r"holds 2 results of tool 'add': name the one to replace by its call id \(c1, c2\)"):
        check_tool_results_action(traj, ReplayPlan(step=0, action={"tool_results": {"add": "5"}}))
    check_tool_results_action(traj, ReplayPlan(step=0, action={"tool_results": {"c2": "5"}}))
    action = {"tool_results": {"c2": "5"}}
    assert [replaced_tool_result(action, r) for r in results] == [(False, None), (True, "5")]
    assert replaced_tool_result("whole", results[0]) == (True, "whole")



def test_a_divergence_diff_cuts_a_long_line_around_its_real_difference_not_its_fresh_ids():
    import uuid

    from agentracer.replay import request_diff

    def prompt(word: str) -> dict:
        return {"system": f"session {uuid.uuid4()} at 2026-11-29 0{len(word)}:30:01 " + "rule " * 60 + f"Be {word}"}

    diff = request_diff(prompt("helpful"), prompt("careful"))
    assert "Be helpful" in diff and "Be careful" in diff


KEY = "sk-proj-ABCdef0123456789xyzXYZ"


def test_secrets_in_tool_arguments_results_call_errors_metadata_and_a_replays_action_are_never_recorded():
    """A key handed to a tool (its arguments, its result), echoed by a failing model call's error, in the caller's
    metadata, or written into a replay's action reached every store and export as it was."""
    def lookup(service, api_key):
        return {"service": service, "used": api_key, "status": "ok"}

    def coder(messages):
        if messages[-1]["role"] == "tool" or "CALL" in messages[-1]["content"]:
            return "done"
        return f'CALL lookup {json.dumps({"service": "weather", "api_key": KEY})}'

    def failing(messages):
        raise RuntimeError(f"401 Unauthorized: Authorization: Bearer {KEY}")

    def factory():
        return SimpleTeam([SimpleAgent("coder", coder, tools={"lookup": lookup}),
                           SimpleAgent("broken", failing)], max_turns=4)

    team = agentracer.trace(factory, raise_on_error=False)
    traj = team.run("look it up", metadata={"api_key": KEY, "note": f"key {KEY}", "task_id": "t1"})
    text = traj.model_dump_json()
    assert KEY not in text and KEY[8:20] not in text, text
    call = next(s for s in traj.steps if s.tool_calls).tool_calls[0]
    assert call.arguments == {"service": "weather", "api_key": "[REDACTED]"}  # (its value is key-shaped)
    result = next(s for s in traj.steps if s.tool_results).tool_results[0].content  # (the str of the tool's dict)
    assert "'status': 'ok'" in result and "[REDACTED]" in result
    assert any(c.error and "[REDACTED]" in c.error for c in traj.model_calls())
    assert traj.metadata["task_id"] == "t1" and traj.metadata["api_key"] == "[REDACTED]"
    action = {"tool_calls": [{"name": "lookup", "arguments": {"service": "weather", "api_key": KEY}}]}
    again = team.replay(traj, step=1, action=action)
    assert KEY not in again.model_dump_json()
    assert again.replay.action["tool_calls"][0]["arguments"]["api_key"] == "[REDACTED]"


def test_a_tools_credentials_under_secret_named_keys_are_never_recorded_and_the_run_still_replays():
    """A tool that returns a config (a dict, and the same as text) with a password of no known shape: the value goes
    from the recorded result, the requests that carry it and the step contents; a replay that serves the recorded
    result rebuilds the recorded requests (both are redacted by one rule)."""
    secret = "Zq8#kLp2x"

    def read_config(name):
        return {"host": "db.internal", "db_password": secret, "dump": f"DB_PASSWORD={secret}\nPORT=5432"}

    def coder(messages):
        if messages[-1]["role"] == "tool":
            return "connected to " + messages[-1]["content"][:40]
        return f'CALL read_config {json.dumps({"name": "prod"})}'

    def factory():
        return SimpleTeam([SimpleAgent("coder", coder, tools={"read_config": read_config})], max_turns=3)

    team = agentracer.trace(factory)
    traj = team.run("connect")
    assert secret not in traj.model_dump_json()
    result = next(s for s in traj.steps if s.tool_results).tool_results[0].content
    assert "'db_password': '[REDACTED]'" in result and "DB_PASSWORD=[REDACTED]" in result and "5432" in result
    last = len(traj.steps) - 1
    again = team.replay(traj, step=last, action="fixed", serve_tools=True)
    assert again.metadata["replay_stats"]["cassette"] >= 1 and secret not in again.model_dump_json()


@pytest.mark.parametrize("secret", [
    "ghp_" + "a1B2" * 9, "github_pat_" + "A1b2" * 6, "AKIAIOSFODNN7EXAMPLE", "xoxb-123456789012-abcdefABCDEF",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV",
    "bearer 9f8e7d6c5b4a", "Authorization: Token a1b2c3d4e5", "authorization: Basic Ym9iOmh1bnRlcjI=",
    "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/abcdefghijklmnopqrstuvwx",  # (a webhook URL's path)
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "rk_test_" + "51H8aB2cD3eF4gH5iJ6kL7mN",  # (Stripe's)
    "https://discord.com/api/webhooks/123456789012345678/AbCdEf_GhIjKlMnOpQrStUvWxYz-0123456789",
])
def test_more_key_shapes_are_redacted(secret):
    from agentracer.redact import Redactor, redact_text

    out = redact_text(f"use {secret} now", [])
    assert out.startswith("use ") and out.endswith(" now") and "[REDACTED]" in out
    assert secret.split()[-1].rsplit("/", 1)[-1] not in out
    assert Redactor([]).text(f"use {secret} now") == out  # the recorder's fast screen lets none of them through


def test_credentials_in_urls_and_query_strings_are_redacted_and_templates_are_not():
    from agentracer.redact import Redactor, redact_text

    assert Redactor([]).text("GET https://bob:hunter2pw@db.example.com/x") == "GET https://[REDACTED]@db.example.com/x"
    assert redact_text("http://h/v1?api_key=a1b2c3d4e5f6&x=1", []) == "http://h/v1?api_key=[REDACTED]&x=1"
    for kept in ("requests.get(f'{URL}?date={date}&key={API_KEY}')", "https://{user}:{pw}@host", "?key=1",
                 "see https://example.com/a?q=cats"):
        assert redact_text(kept, []) == kept


def test_a_secret_named_key_written_out_in_text_loses_its_value():
    """A tool's output or a config read back writes keys and values as text (``DB_PASSWORD=...``, ``"api_key": ...``):
    the value goes when the key names a secret and the value looks like one; prose, placeholders and code stay."""
    from agentracer.redact import Redactor, redact, redact_text

    leaked = {"DB_PASSWORD=s3cr3t-pass1": "DB_PASSWORD=[REDACTED]",
              'config {"api_key": "a1b2c3d4e5f6g7"} loaded': 'config {"api_key": "[REDACTED]"} loaded',
              "client_secret: abcdefghijklmnopqrstuvwxyz": "client_secret: [REDACTED]",
              "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY":
                  "export AWS_SECRET_ACCESS_KEY=[REDACTED]",
              "OPENAI_API_KEY='proj12345678abc'": "OPENAI_API_KEY='[REDACTED]'",
              "userPassword=Winter2024!, next": "userPassword=[REDACTED], next",
              "mysql -u root --password=S3cr3tPass1 mydb": "mysql -u root --password=[REDACTED] mydb",
              'os.environ["SERPER_API_KEY"] = "a1b2c3d4e5f6g7h8"': 'os.environ["SERPER_API_KEY"] = "[REDACTED]"',
              "'password' => 's3cr3t-pass1',": "'password' => '[REDACTED]',", "DB_PASS=s3cr3t-pass1": "DB_PASS=[REDACTED]",
              "DB_PASSWORD=Xk9:mP2vQ8rTz": "DB_PASSWORD=[REDACTED]",  # (a password may hold ":" or "=")
              "SHOPIFY_ACCESS_TOKEN=shpat_0123456789abcdef0123": "SHOPIFY_ACCESS_TOKEN=[REDACTED]",
              "API_KEY=ABCD_1234_EFGH_5678": "API_KEY=[REDACTED]",
              "db_password_\t=\tabc12345x": "db_password_\t=\t[REDACTED]",  # (a key may end in "_")
              # a command line's long option and its value after a space
              "mysql -u root --password S3cr3tPass1 mydb": "mysql -u root --password [REDACTED] mydb",
              'tool --api-key "abcd1234efgh5678" -v': 'tool --api-key "[REDACTED]" -v',
              "gh auth login --token ghx0123456789abc": "gh auth login --token [REDACTED]",
              "x --client-secret abcdefghijklmnopqrstuvwxyz|y": "x --client-secret [REDACTED]|y",
              # an XML/HTML element named like a secret around its value (a config file read back)
              "<db><password>hunter2hunter</password></db>": "<db><password>[REDACTED]</password></db>",
              "<Password>Tr0ub4dor&3</Password>": "<Password>[REDACTED]</Password>",
              "<api_key> abcd1234efgh5678 </api_key>": "<api_key> [REDACTED] </api_key>",
              # a passphrase or passcode is a password
              "db_passphrase=s3cretValue99": "db_passphrase=[REDACTED]", "WIFI_PASSCODE: 8812-4490-11": "WIFI_PASSCODE: [REDACTED]"}
    for text, expected in leaked.items():
        assert redact_text(text, []) == expected, text
        assert Redactor([]).text(text) == expected, text  # (the screen sends it to redaction)
    kept = ["password: required", "api_key={API_KEY}", "token = get_token(user_id_12345)", "max_token=10245678",
            "password = hashlib.sha256(pw).hexdigest()", "password = self.password1", "token: 5", "password: ********",
            "secret_number = 12345678", "api_key: YOUR_API_KEY_HERE", "my password is hunter22",
            "Authorization: Bearer <YOUR_TOKEN>", 'api_key = "YOUR_GOOGLE_MAPS_API_KEY"', "token=your-token-here-123",
            "Response Headers: {'set-cookie': 'WMF-Last-Access=19-Dec-2024;Path=/'}",  # (a browser's tracking cookie)
            "api_key = api_key_from_config_2", "client_secret = CLIENT_SECRET_2", "S3_KEY=uploads/2024/report.pdf",
            "MAX_TOKEN=100000000", "GOOGLE_APPLICATION_CREDENTIALS=/home/user/gcp/service-account.json",
            "access_token_url: https://github.com/login/oauth/access_token", "api_key_id=key_01HF3Z9Y2K",
            '{"token": "Hello12345", "logprob": -0.1}',  # (a word's token written out)
            "run --password-file /etc/pw --token $GITHUB_TOKEN", "cmd --max-tokens 12345678 --token-limit 12345678",
            "--password YOUR_PASSWORD", "docker login --username bob --password-stdin", "a---password abc12345x",
            "<password>required</password>", "<p>password</p>", "<token>abcdefgh12</token>", "<b>key12345678</b>",
            "<password>a1</password>", "<passphrase>YOUR_PASSPHRASE</passphrase>"]
    for text in kept:
        assert redact_text(text, []) == text and Redactor([]).text(text) == text, text
    # in a request's own fields, whose JSON text is screened first (there the quotes are escaped)
    request = {"messages": [], "extra": {"note": 'settings: {"password": "abc12345"}'}}
    assert Redactor([]).request(request)[0]["extra"] == {"note": 'settings: {"password": "[REDACTED]"}'}
    request = {"system": "DB_HOST\t= db\nDB_PASSWORD\t= s3cr3t-pass1\n", "messages": [{"role": "user", "content": "hi"}]}
    assert Redactor([]).request(request)[0]["system"] == "DB_HOST\t= db\nDB_PASSWORD\t= [REDACTED]\n"
    assert redact({"passphrase": "correct horse", "wifi_passcode": "1234"}, []) == {"passphrase": "[REDACTED]",
                                                                                  "wifi_passcode": "[REDACTED]"}
    # a JSON schema's parameter named like a secret keeps its name and shape; what it holds of the secret goes
    schema = {"properties": {"password": {"type": "string", "description": "yours", "default": "hunter2-2024"},
                             "user": {"type": "string", "default": "ann"}}}
    assert redact(schema, []) == {"properties": {"password": {"type": "string", "description": "yours",
                                                              "default": "[REDACTED]"},
                                                 "user": {"type": "string", "default": "ann"}}}
    assert redact({"settings": {"properties": {"password": {"v": "hunter2-2024"}}}}, []) == {
        "settings": {"properties": {"password": {"v": "[REDACTED]"}}}}
    request = {"messages": [], "metadata": {"Password:": "hunter2-2024"}}  # (a field's name, however it ends)
    assert Redactor([]).request(request)[0]["metadata"] == {"Password:": "[REDACTED]"}
    # a field's own name does not make a word a secret where values are redacted by their values (a logprob's token)
    tokens = {"content": [{"token": "uint32_t"}, {"token": "-" * 32}]}
    assert Redactor([]).own_values(tokens) is tokens
    assert redact({"tool": "printenv", "output": "HOME=/root\nGITHUB_TOKEN=0123456789abcdef\n"}, []) == {
        "tool": "printenv", "output": "HOME=/root\nGITHUB_TOKEN=[REDACTED]\n"}
    # a value that holds another key and value, however deep (each is found; no recursion to run out of)
    assert redact_text("x=DB_PASSWORD=abc12345x", []) == "x=DB_PASSWORD=[REDACTED]"
    assert redact_text("a=" * 5000 + "password=abc12345x", []).endswith("=a=password=[REDACTED]")
    assert redact_text("password=abc123=token=xyz123456 end", []) == "password=[REDACTED] end"
    # an environment variable's name is a secret key in a dict too (not a lower-case field like eos_token)
    assert redact({"GITHUB_TOKEN": "abc", "eos_token": "</s>", "MAX_TOKENS": 5}, []) == {
        "GITHUB_TOKEN": "[REDACTED]", "eos_token": "</s>", "MAX_TOKENS": 5}


def test_ordinary_words_and_keys_that_merely_contain_a_secret_word_are_kept():
    """'Bearer instrument' is finance, not a token; a key ending in another word (password_policy, secret_santa,
    cookie_recipe, authorization_status, credential_type) is no secret."""
    from agentracer.redact import redact, redact_text

    prose = "Bearer requirements: the Bearer instrument clause; bearer bonds"
    assert redact_text(prose, []) == prose
    fields = {"password_policy": "min 8 chars", "secret_santa": "bob", "cookie_recipe": "flour",
              "authorization_status": "ok", "credential_type": "oauth", "max_tokens": 5}
    assert redact(fields, []) == fields
    assert redact({"db_password": "x", "userPassword": "y", "apiSecret": "z", "credentials": "c",
                   "Authorization": "Bearer x", "next_token": "page2", "eos_token": "</s>", "valid_tokens": 7}, []) == {
        "db_password": "[REDACTED]", "userPassword": "[REDACTED]", "apiSecret": "[REDACTED]",
        "credentials": "[REDACTED]", "Authorization": "[REDACTED]", "next_token": "page2", "eos_token": "</s>",
        "valid_tokens": 7}
    code = ('if True: authorization = make_header("bob")\ndef check(authorization: Optional[str] = None): ...\n'
            'curl -H "Authorization: Bearer <YOUR_TOKEN>"; The note is a bearer instrument.')
    assert redact_text(code, []) == code


def test_every_secret_key_is_caught_by_the_fast_screen():
    """A JSON text without a key hint is taken as clean: each key the pattern matches must hold one."""
    from agentracer.redact import _HINTS, Redactor

    redactor = Redactor([])
    for key in ("api_key", "X-API-KEY", "my_api_key_old", "access_token_v2", "id_token", "session-token", "passwd",
                "private_key", "client_secret", "aws_secret_access_key", "AWS_ACCESS_KEY_ID", "secret", "db_password",
                "userPassword", "sessionCookie", "cookie", "credentials", "Authorization", "token", "oauth_token",
                "GITHUB_TOKEN", "GITHUB_PAT", "DB_PASSWD", "DB_PASS", "MYSQL_PWD", "PGPASSWORD"):
        assert redactor._is_secret_key(key), key
        text = json.dumps({key: "v"}).lower()
        assert any(hint in text for hint in _HINTS), key


def test_urls_are_shown_without_credentials_and_their_secrets_in_every_form():
    import base64

    from agentracer.urls import url_secrets, without_credentials

    url = "https://bob:hunter2pw@llm.example.com/v1?api_key=K&region=eu"
    assert without_credentials(url) == "https://llm.example.com/v1?api_key=[REDACTED]&region=eu"
    assert set(url_secrets(url)) == {"hunter2pw", "K", base64.b64encode(b"bob:hunter2pw").decode()}
    assert without_credentials("http://localhost:8000/v1") == "http://localhost:8000/v1"


def test_environment_secrets_by_any_case_and_more_names(monkeypatch):
    from agentracer.redact import env_secrets

    for name, value in (("my_lower_api_key", "lower-secret-1"), ("GITHUB_PAT", "pat-secret-12"),
                        ("PROXY_AUTH", "auth-secret-1")):
        monkeypatch.setenv(name, value)
        assert value in env_secrets(), name
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/home/me/.config/gcloud/adc.json")  # a path, not a secret
    assert "/home/me/.config/gcloud/adc.json" not in env_secrets()


def test_a_structured_answer_is_kept_as_its_fields():
    """A team returning a pydantic model (a structured output) had its repr stored: planet='Mars' count=2."""
    from dataclasses import dataclass

    from pydantic import BaseModel

    class Moons(BaseModel):
        planet: str
        count: int

    @dataclass
    class Pair:
        left: int
        right: str

    for value, kept in ((Moons(planet="Mars", count=2), {"planet": "Mars", "count": 2}),
                        (Pair(1, "b"), {"left": 1, "right": "b"}), (object, str(object))):
        class Answering(SimpleTeam):
            answer: object = None

            async def run(self, task):
                await super().run(task)
                return self.answer

        def factory(answer=value):
            team = Answering([SimpleAgent("a", lambda m: "ok")], max_turns=1)
            team.answer = answer
            return team

        assert agentracer.trace(factory).run("moons?").outcome.answer == kept


def test_a_factory_with_a_task_parameter_is_built_for_each_runs_task():
    """A team that must be built with its task (a CAMEL society's task_prompt) gets it; a task the traced arguments
    give already is left as given."""
    built: list[str] = []

    def make_team(task: str, turns: int = 1) -> SimpleTeam:
        built.append(task)
        return SimpleTeam([SimpleAgent("solver", lambda messages: f"solved: {task}")], max_turns=turns)

    traced = agentracer.trace(make_team)
    first = traced.run("task one")
    asyncio.run(traced.arun("task two"))
    assert built == ["task one", "task two"] and first.steps[-1].content == "solved: task one"
    replayed = traced.replay(first, step=1, action="solved it again")
    assert built[-1] == "task one" and replayed.task == "task one"
    fixed = agentracer.trace(make_team, "always this")  # bound by the traced arguments: not passed again
    fixed.run("another")
    assert built[-1] == "always this"
    agentracer.trace(functools.partial(make_team, task="a partial's own")).run("another")  # (so is a partial's)
    assert built[-1] == "a partial's own"


def test_a_recorded_answer_edited_into_something_no_simple_agent_says_is_refused_when_served():
    """It was served: the team raised AttributeError, and the replay was kept as a failed run that blamed the action."""
    counter = Counter()
    team = agentracer.trace(make_factory(counter))
    traj = team.run("add 2 and 3")
    traj.steps[1].model_calls[0].response = 123
    with pytest.raises(ReplayError, match=r"model call #0 of 'planner' \(step 1\) cannot be served: TypeError"):
        team.replay(traj, step=3, action="x")


class _SharedClient:
    """An HTTP client's pool: bound to the loop of its first request."""

    def __init__(self) -> None:
        self.loop = None

    async def ask(self, messages):
        running = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = running
        if self.loop is not running:
            raise RuntimeError("Event loop is closed")
        await asyncio.sleep(0)
        return f"answer {len(messages)}"


def test_a_client_shared_by_a_factorys_teams_serves_every_sync_run_and_replay():
    """The README's snippet with its client made once, outside the factory: each sync run had a new event loop, and
    the client's connections, bound to the first, failed the second run and every replay ('Event loop is closed')."""
    client = _SharedClient()

    def make(feedback=None):
        return SimpleTeam([SimpleAgent("a", client.ask), SimpleAgent("b", client.ask)], max_turns=4, stop_word=None)

    team = agentracer.trace(make)
    first = team.run("one")
    second = team.run("two")
    fixed = team.replay(first, step=2, action="better")
    assert first.outcome.error is None and second.outcome.error is None and fixed.outcome.error is None
    assert fixed.metadata["replay_stats"]["live"] == 2
    # other traced teams of the thread, a copy with other arguments, the sync calls of refine: the same loop
    assert agentracer.trace(make).run("three").outcome.error is None
    assert team.with_arguments(feedback=None).run("four").outcome.error is None
    for task in ("five", "six"):
        result = agentracer.refine(make, task, lambda t: True, rounds=1)
        assert result.error is None and result.rounds[0].trajectory.outcome.error is None


def test_a_traced_methods_teams_share_the_threads_loop_too():
    class Builder:
        def __init__(self) -> None:
            self.client = _SharedClient()

        @agentracer.trace
        def build(self):
            return SimpleTeam([SimpleAgent("a", self.client.ask)], max_turns=2, stop_word=None)

    builder = Builder()
    assert [builder.build.run(t).outcome.error for t in ("one", "two")] == [None, None]


def test_a_run_stopped_by_ctrl_c_leaves_its_loop_behind_and_the_next_run_works():
    """A task that would not stop held the kept loop: after Ctrl-C, every later run hung at its end."""
    import signal
    import threading as threads

    async def stubborn():
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    async def leaves_a_stubborn_task(messages):
        asyncio.get_running_loop().create_task(stubborn())
        return "ok"

    team = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", leaves_a_stubborn_task)], max_turns=1,
                                               stop_word=None))
    timer = threads.Timer(0.5, signal.pthread_kill, (threads.main_thread().ident, signal.SIGINT))  # (as a terminal)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        team.run("one")  # (it ends, then waits for the stubborn task: Ctrl-C)
    timer.cancel()
    plain = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", lambda m: "ok")], max_turns=1, stop_word=None))
    assert plain.run("two").outcome.error is None


def test_each_sync_call_runs_in_a_copy_of_its_callers_context():
    """All of a thread's sync calls ran in the one context its kept loop first copied: the caller's values (a request
    id, an OpenTelemetry span) were those of the first call, and what a call set leaked into the next."""
    import contextvars

    from agentracer.models import ScriptedModel

    request = contextvars.ContextVar("request", default=None)
    seen = []

    def answer(messages):
        seen.append(request.get())
        request.set("set inside the call")
        return "ok"

    model = ScriptedModel(answer)
    for name in ("req-1", "req-2", "req-3"):
        request.set(name)
        model.complete([{"role": "user", "content": "hi"}])
    assert seen == ["req-1", "req-2", "req-3"] and request.get() == "req-3"


def test_a_calls_left_open_generators_are_closed_when_it_ends_and_a_closing_error_is_reported(caplog):
    closed, kept = [], []

    async def stream():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def broken():
        try:
            yield 1
        finally:
            raise OSError("the stream's socket was gone")

    async def answer(messages):
        for generator in (stream(), broken()):
            await generator.__anext__()
            kept.append(generator)  # (a stream kept past the call)
        return "ok"

    team = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", answer)], max_turns=1, stop_word=None))
    with caplog.at_level("ERROR", logger="asyncio"):
        team.run("one")
    assert closed == [True]
    assert any("closing of asynchronous generator" in r.getMessage() and "socket was gone" in str(r.exc_info[1])
               for r in caplog.records if r.exc_info)


def test_a_batched_request_given_up_in_one_call_does_not_hold_up_the_next():
    """A request that timed out before its batch ran stayed queued: the next call's request found the queue not
    empty, armed no flush, and waited for ever."""
    from agentracer.models import Completion
    from agentracer.models.batching import LocalBatchModel
    from agentracer.team import run_sync

    class Echo(LocalBatchModel):
        name = "echo"
        batch_wait_s = 0.05

        def generate(self, batch, **params):
            return [Completion(text="ok") for _ in batch]

    model = Echo()
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(asyncio.TimeoutError):
        run_sync(asyncio.wait_for(model.acomplete(messages), timeout=0.001))
    assert run_sync(asyncio.wait_for(model.acomplete(messages), timeout=5)).text == "ok"


def test_a_call_stopped_by_ctrl_c_lets_what_it_left_stop_before_its_loop_goes():
    """Its loop was closed with tasks pending: 'Task was destroyed but it is pending!', and their clean-up never ran."""
    import signal
    import threading as threads

    stopped = []

    async def background():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.append(True)
            raise

    async def model(messages):
        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(3600)  # (Ctrl-C comes here)

    team = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", model)], max_turns=1, stop_word=None))
    timer = threads.Timer(0.3, signal.pthread_kill, (threads.main_thread().ident, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        team.run("one")
    assert stopped == [True]


def test_tasks_started_by_left_over_tasks_as_they_stop_are_cancelled_too():
    started: list[asyncio.Task] = []

    async def flush():
        await asyncio.sleep(3600)

    async def background():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            started.append(asyncio.get_running_loop().create_task(flush()))  # (a flush on cancel)
            raise

    async def model(messages):
        asyncio.get_running_loop().create_task(background())
        return "ok"

    agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", model)], max_turns=1, stop_word=None)).run("one")
    assert len(started) == 1 and started[0].cancelled()


def test_what_a_sync_run_leaves_running_is_cancelled_when_it_ends():
    left: list[asyncio.Task] = []

    async def forever():
        await asyncio.sleep(3600)

    async def model(messages):
        left.append(asyncio.get_running_loop().create_task(forever()))  # (a framework's background work)
        return "ok"

    team = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", model)], max_turns=1, stop_word=None))
    team.run("one")
    team.run("two")
    assert len(left) == 2 and all(task.cancelled() for task in left)


def test_a_settled_requests_message_list_is_its_own():
    """Editing one settled request's message list in place changes neither the next request of its conversation nor
    that request's hash."""
    from agentracer.redact import FrozenJSON, RawMessages, Redactor, request_hash

    encodings: dict = {}

    def encode(messages):
        return [encodings.setdefault(m, FrozenJSON(role="user", content=m)) for m in messages]

    redactor = Redactor([])
    first, _ = redactor.request({"messages": RawMessages(["a", "b"], encode)})
    first["messages"][1] = FrozenJSON(role="user", content="EDITED")
    second, digest = redactor.request({"messages": RawMessages(["a", "b", "c"], encode)})
    assert [m["content"] for m in second["messages"]] == ["a", "b", "c"] and digest == request_hash(second)
