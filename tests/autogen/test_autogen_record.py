"""Recording real AutoGen teams: every message and event is a step, every model call is attached to one."""

from __future__ import annotations

import asyncio
import concurrent.futures

import agentracer
import pytest
from ag_helpers import CountingClient, add, counting, tool_call
from agentracer import AgentracerError, JsonlStore, TeamRunError, Trajectory
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import RoundRobinGroupChat

SCRIPT = ["plan: add 2 and 3", "code: print(2 + 3)", "review: correct", "plan: done", "code: done"]


def make_team(script=SCRIPT, n_messages=6, **team_kwargs):
    client = counting(script)
    agents = [AssistantAgent(name, model_client=client, system_message=f"You are the {name}.")
              for name in ("planner", "coder", "reviewer")]
    return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(n_messages), **team_kwargs)


def test_round_robin_records_each_message_as_a_step_with_its_model_call():
    traj = agentracer.trace(make_team).run("add 2 and 3")
    assert traj.framework == "autogen"
    assert [(s.agent, s.role, s.content) for s in traj.steps] == [
        ("user", "user", "add 2 and 3"),
        ("planner", "assistant", SCRIPT[0]), ("coder", "assistant", SCRIPT[1]),
        ("reviewer", "assistant", SCRIPT[2]), ("planner", "assistant", SCRIPT[3]), ("coder", "assistant", SCRIPT[4]),
    ]
    assert traj.steps[0].model_calls == []
    for step in traj.steps[1:]:
        (call,) = step.model_calls
        assert call.agent == step.agent and call.produces_step and call.step == step.index
        assert call.response["content"] == step.content
        assert call.request["messages"][0] == {"type": "SystemMessage", "content": f"You are the {step.agent}."}
    # the coder's second call sees the whole conversation so far
    last = traj.steps[5].model_calls[0].request["messages"]
    assert [m["content"] for m in last[1:]] == ["add 2 and 3", *SCRIPT[:4]]
    assert traj.steps[5].model_calls[0].call_index == 1
    assert {a.name: a.system_prompt for a in traj.agents} == {
        "planner": "You are the planner.", "coder": "You are the coder.", "reviewer": "You are the reviewer."}
    assert traj.outcome.stop_reason.startswith("Maximum number of messages")
    assert traj.outcome.answer == SCRIPT[4]
    assert CountingClient.live == 5
    Trajectory.from_json(traj.to_json())  # the record is valid JSON of the schema


def _tool_team(reflect: bool, stream: bool = False):
    script = [tool_call("add", a=2, b=3), "the sum is 5"] if reflect else [tool_call("add", a=2, b=3)]
    agent = AssistantAgent("calc", model_client=counting(script, tools=True), tools=[add],
                           reflect_on_tool_use=reflect, model_client_stream=stream)
    return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(2))


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_request_execution_and_summary_are_steps(stream):
    traj = agentracer.trace(_tool_team, False, stream).run("what is 2 + 3?")
    kinds = [(s.kind, s.agent) for s in traj.steps]
    assert kinds == [("message", "user"), ("tool_call", "calc"), ("tool_result", "calc"), ("summary", "calc")]
    call_step, result_step, summary = traj.steps[1:]
    assert call_step.tool_calls[0].name == "add" and call_step.tool_calls[0].arguments == {"a": 2, "b": 3}
    assert call_step.content == [{"name": "add", "arguments": {"a": 2, "b": 3}}]
    assert result_step.role == "tool" and result_step.tool_results[0].content == "5"
    assert result_step.tool_results[0].call_id == "call-1"
    assert summary.content == "5"
    assert len(call_step.model_calls) == 1 and result_step.model_calls == [] and summary.model_calls == []
    [offered] = call_step.model_calls[0].request["tools"]  # (what the model was told of the tool)
    assert offered["name"] == "add" and offered["description"] == "Add two integers."
    assert set(offered["parameters"]["properties"]) == {"a", "b"}
    assert traj.agents[0].tools == ["add"]


def _described_tool_team(description: str):
    from autogen_core.tools import FunctionTool

    script = [tool_call("add", a=2, b=3), "the sum is 5"]
    agent = AssistantAgent("calc", model_client=counting(script, tools=True),
                           tools=[FunctionTool(add, description=description, name="add")], reflect_on_tool_use=True)
    return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(2))


def test_a_tool_described_otherwise_than_in_the_recording_is_a_divergence_not_served():
    recorded = agentracer.trace(_described_tool_team, "Add two integers.").run("what is 2 + 3?")
    changed = agentracer.trace(_described_tool_team, "Subtract b from a.")
    with pytest.raises(agentracer.ReplayDivergence, match="step 1") as diverged:
        changed.replay(recorded, step=3, action="the sum is 6")
    assert "Subtract b from a." in str(diverged.value)


def test_a_recording_that_named_its_tools_only_still_replays():
    """Recordings made before tools' schemas were recorded list names and hashed them: a replay hashes alike."""
    from agentracer.redact import request_hash

    traced = agentracer.trace(_described_tool_team, "Add two integers.")
    recorded = traced.run("what is 2 + 3?")
    for call in recorded.model_calls():
        if call.request.get("tools"):
            call.request["tools"] = [tool["name"] for tool in call.request["tools"]]
            call.request_hash = request_hash(call.request)
    replayed = traced.replay(recorded, step=3, action="the sum is 6")
    assert replayed.steps[3].content == "the sum is 6" and replayed.steps[1].model_calls[0].source == "cassette"


def test_reflection_after_a_tool_is_a_message_with_its_own_model_call():
    traj = agentracer.trace(_tool_team, True).run("what is 2 + 3?")
    assert [s.kind for s in traj.steps] == ["message", "tool_call", "tool_result", "message"]
    assert traj.steps[3].content == "the sum is 5"
    assert traj.steps[3].model_calls[0].call_index == 1
    # the reflection request carries the tool result back to the model
    sent = traj.steps[3].model_calls[0].request["messages"]
    assert sent[-1]["type"] == "FunctionExecutionResultMessage" and sent[-1]["content"][0]["content"] == "5"


def test_streaming_client_is_recorded_whole_and_chunks_are_not_steps():
    def team():
        client = counting(["alpha beta gamma", "delta epsilon"])
        agents = [AssistantAgent(n, model_client=client, model_client_stream=True) for n in ("a", "b")]
        return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(3))

    traj = agentracer.trace(team).run("go")
    assert [s.content for s in traj.steps] == ["go", "alpha beta gamma", "delta epsilon"]
    for step in traj.steps[1:]:
        (call,) = step.model_calls
        assert call.request["stream"] is True and call.response["content"] == step.content


def test_single_assistant_agent():
    @agentracer.trace
    def agent():
        return AssistantAgent("solo", model_client=counting(["4"]), system_message="Answer briefly.")

    traj = agent.run("2 + 2?")
    assert [(s.agent, s.content) for s in traj.steps] == [("user", "2 + 2?"), ("solo", "4")]
    assert traj.steps[1].model_calls[0].agent == "solo"
    assert traj.agents[0].system_prompt == "Answer briefly." and traj.outcome.answer == "4"


async def test_a_traced_team_object_is_reset_between_runs():
    # an AutoGen team object belongs to the event loop it first ran in: in async code, reuse it in one loop
    traced = agentracer.trace(make_team(script=SCRIPT * 2, n_messages=3))
    first, second = await traced.arun("first"), await traced.arun("second")
    assert [s.content for s in first.steps] == ["first", SCRIPT[0], SCRIPT[1]]
    assert [s.content for s in second.steps] == ["second", SCRIPT[2], SCRIPT[3]]
    # reset: the planner's second run does not see the first conversation
    assert [m["content"] for m in second.steps[1].model_calls[0].request["messages"][1:]] == ["second"]


def test_a_traced_team_object_runs_and_replays_again_and_again_in_sync_code():
    """Sync runs of one team object share an event loop kept for it (AutoGen binds the team's queues to the loop
    it first ran in: a new loop per run failed on the second run)."""
    traced = agentracer.trace(make_team(script=SCRIPT * 4, n_messages=3))
    first, second = traced.run("first"), traced.run("second")
    assert [s.content for s in first.steps] == ["first", SCRIPT[0], SCRIPT[1]]
    assert [s.content for s in second.steps] == ["second", SCRIPT[2], SCRIPT[3]]
    fixed = traced.replay(second, step=1, action="replaced")
    assert [s.content for s in fixed.steps][:2] == ["second", "replaced"]
    assert fixed.metadata["replay_stats"]["live"] == 1  # the coder's turn after the replaced step
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # threads take turns with the one team
        third, fourth = pool.map(traced.run, ["third", "fourth"])
    assert {third.steps[0].content, fourth.steps[0].content} == {"third", "fourth"}
    assert all(len(t.steps) == 3 and t.outcome.error is None for t in (third, fourth))


async def test_gathered_async_runs_of_one_team_object_take_turns():
    """AutoGen refuses a second run of a team while one is going ("The group chat is currently running"): runs of
    one traced team object in one loop wait for each other."""
    traced = agentracer.trace(make_team(script=SCRIPT * 3, n_messages=3))
    runs = await asyncio.gather(*(traced.arun(f"task {i}") for i in range(3)))
    assert sorted(t.steps[0].content for t in runs) == ["task 0", "task 1", "task 2"]
    assert all(len(t.steps) == 3 and t.outcome.error is None for t in runs)


async def test_two_traced_wrappers_of_one_team_object_take_turns_too():
    """Each wrapper kept its own turns: gathered, the second run met AutoGen's "currently running" refusal."""
    team = make_team(script=SCRIPT * 2, n_messages=3)
    one, other = agentracer.trace(team), agentracer.trace(team)
    runs = await asyncio.gather(one.arun("task 0"), other.arun("task 1"))
    assert sorted(t.steps[0].content for t in runs) == ["task 0", "task 1"]
    assert all(len(t.steps) == 3 and t.outcome.error is None for t in runs)


def test_two_traced_wrappers_of_one_team_object_share_its_loop_in_sync_code():
    team = make_team(script=SCRIPT * 3, n_messages=3)
    one, other = agentracer.trace(team), agentracer.trace(team)
    assert one.run("first").outcome.error is None
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # (the second wrapper's runs: the object's kept loop)
        second, third = pool.map(lambda traced, task: traced.run(task), [other, one], ["second", "third"])
    assert {second.steps[0].content, third.steps[0].content} == {"second", "third"}
    assert all(len(t.steps) == 3 and t.outcome.error is None for t in (second, third))


def test_a_team_object_run_in_sync_code_refuses_an_async_run_in_another_loop_up_front():
    traced = agentracer.trace(make_team(script=SCRIPT * 3, n_messages=3))
    traced.run("first")
    CountingClient.live = 0
    with pytest.raises(AgentracerError, match=r"already runs in run\(\)/replay\(\).*trace a factory"):
        asyncio.run(traced.arun("second"))
    assert CountingClient.live == 0
    assert traced.run("third").steps[0].content == "third"  # its own loop still serves it


def test_a_group_chat_object_run_in_a_closed_loop_refuses_another_up_front_and_still_runs_in_none():
    """asyncio.run twice: AutoGen's queues stay bound to the first, closed loop; the second run failed inside the
    team, which was then marked failed, and every later run refused ('its last run failed')."""
    from agentracer import UsageError

    traced = agentracer.trace(make_team(script=SCRIPT * 3, n_messages=3))
    asyncio.run(traced.arun("first"))
    CountingClient.live = 0
    for again in (lambda: asyncio.run(traced.arun("second")), lambda: traced.run("third")):
        with pytest.raises(UsageError, match=r"ran in another event loop, closed since.*trace a factory"):
            again()
    assert CountingClient.live == 0
    # a single agent is bound to no loop: it runs in each
    solo = agentracer.trace(AssistantAgent("solo", model_client=counting(["4", "5"])))
    assert [asyncio.run(solo.arun(task)).steps[-1].content for task in ("2 + 2?", "2 + 3?")] == ["4", "5"]


def test_an_exception_inside_an_agent_is_the_outcome_and_is_reraised(tmp_path):
    store = JsonlStore(tmp_path / "runs.jsonl")
    traced = agentracer.trace(make_team, ["only one answer"], 6, store=store)
    with pytest.raises(TeamRunError) as info:
        traced.run("task")
    traj = info.value.trajectory
    assert [(s.agent, s.kind) for s in traj.steps] == [("user", "message"), ("planner", "message"),
                                                       ("coder", "event")]  # the coder's model raised
    assert traj.steps[2].model_calls[0].error and traj.steps[2].metadata == {"failed_model_call": True}
    assert traj.outcome.success is False and "No more mock responses" in traj.outcome.error
    assert "Traceback" not in traj.outcome.error  # AutoGen folds it into the message: the exception keeps it
    assert [t.id for t in store] == [traj.id]  # saved even though the team failed

    quiet = agentracer.trace(make_team, ["only one answer"], 6, raise_on_error=False)
    traj = quiet.run("task")
    assert traj.outcome.success is False and "No more mock responses" in traj.outcome.error


def test_termination_by_max_turns_is_a_failed_outcome():
    traj = agentracer.trace(make_team, SCRIPT, 50, max_turns=2).run("task")
    assert len(traj.steps) == 3
    assert traj.outcome.stop_reason.startswith("Maximum number of turns")
    assert traj.outcome.success is False and traj.metadata["max_turns_reached"] is True


def test_text_termination_is_not_a_failure():
    def team():
        agents = [AssistantAgent(n, model_client=counting(["working", "done TERMINATE"])) for n in ("a",)]
        return RoundRobinGroupChat(agents, termination_condition=TextMentionTermination("TERMINATE"))

    traj = agentracer.trace(team).run("task")
    assert traj.outcome.success is None and "TERMINATE" in traj.outcome.stop_reason
    assert [s.content for s in traj.steps] == ["task", "working", "done TERMINATE"]


def test_a_thought_is_kept_with_the_output_it_came_with():
    from autogen_core.models import CreateResult, RequestUsage

    answer = CreateResult(finish_reason="stop", content="42", cached=False, thought="6 * 7 is 42",
                          usage=RequestUsage(prompt_tokens=1, completion_tokens=1))

    def team():
        return RoundRobinGroupChat([AssistantAgent("deep", model_client=counting([answer]))],
                                   termination_condition=MaxMessageTermination(2))

    traced = agentracer.trace(team)
    traj = traced.run("6 * 7?")
    assert [(s.kind, s.content) for s in traj.steps] == [("message", "6 * 7?"), ("message", "42")]
    assert traj.steps[1].metadata["thought"] == "6 * 7 is 42" and len(traj.steps[1].model_calls) == 1
    assert traj.steps[1].model_calls[0].response["thought"] == "6 * 7 is 42"
    new = traced.replay(traj, step=1, action="41")
    assert new.steps[1].content == "41" and "thought" not in new.steps[1].metadata


def test_a_text_response_is_encoded_screened_as_redaction_would_leave_it():
    from agentracer.redact import Redactor
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage

    from agentracer_plugins.autogen.codec import CODEC

    usage = RequestUsage(prompt_tokens=3, completion_tokens=4)
    redactor = Redactor(secrets=["my-own-secret-value"])
    for content, thought in (("all fine", None), ("key sk-abcdefghijklmnop1234", "thinking"),
                             ("a secret: my-own-secret-value", "Bearer abcdefghijkl.mnop")):
        response = CreateResult(finish_reason="stop", content=content, usage=usage, cached=False, thought=thought)
        screened = CODEC.encode_screened(response, redactor.text)
        assert screened == redactor(CODEC.encode(response))
        assert ("sk-abcdefghijklmnop" not in str(screened) and "my-own-secret-value" not in str(screened)
                and "abcdefghijkl.mnop" not in str(screened))
    calls = CreateResult(finish_reason="function_calls", content=[FunctionCall(id="1", name="add", arguments="{}")],
                         usage=usage, cached=False)
    assert CODEC.encode_screened(calls, redactor.text) is None  # redacted whole by the recorder


def test_a_secret_in_a_model_response_never_reaches_the_trajectory():
    secret = "sk-abcdefghijklmnopqrstuvwxyz0123"
    traj = agentracer.trace(make_team, [f"use {secret}", "ok", "ok", "ok", "ok"], 3).run("go")
    text = traj.model_dump_json()
    assert secret not in text and "[REDACTED]" in text
    assert traj.steps[1].model_calls[0].response["content"] == "use [REDACTED]"


def test_a_returned_trajectory_is_freed_as_soon_as_its_user_drops_it():
    """AutoGen leaves each run's tasks (and the contexts they copied, which hold the active run) in reference
    cycles: the ended run lets go of its trajectory, so dropping the trajectory frees it without a collection."""
    import gc
    import weakref

    traced = agentracer.trace(make_team)
    traced.run("warm up")
    gc.collect()
    gc.disable()
    try:
        traj = traced.run("add 2 and 3")
        refs = [weakref.ref(traj), weakref.ref(traj.steps[1]), weakref.ref(traj.steps[1].model_calls[0])]
        del traj
        assert [ref() for ref in refs] == [None, None, None]
    finally:
        gc.enable()


def test_an_agent_without_a_model_that_raises_gets_the_failed_step():
    """A deterministic agent's own error (no model call of its own failed) must show at that agent: before, the run
    ended at the last good message and a tracer blamed its author."""
    from autogen_agentchat.agents import BaseChatAgent
    from autogen_agentchat.messages import TextMessage

    class Checker(BaseChatAgent):
        @property
        def produced_message_types(self):
            return (TextMessage,)

        async def on_messages(self, messages, cancellation_token):
            raise ValueError("the checker broke")

        async def on_reset(self, cancellation_token):
            pass

    def team():
        planner = AssistantAgent("planner", model_client=counting(SCRIPT))
        return RoundRobinGroupChat([planner, Checker("checker", "checks")],
                                   termination_condition=MaxMessageTermination(6))

    with pytest.raises(TeamRunError, match="the checker broke") as info:
        agentracer.trace(team).run("task")
    traj = info.value.trajectory
    assert [(s.agent, s.kind) for s in traj.steps] == [("user", "message"), ("planner", "message"),
                                                       ("checker", "event")]
    assert "the checker broke" in traj.steps[2].content and traj.steps[2].metadata == {"failed_turn": True}
    assert "Traceback" not in str(info.value)


def test_autogen_logs_no_error_tracebacks_for_a_traced_run_that_raised(caplog):
    """The run records the error and raises it once; AutoGen's own tracebacks of it (and of the GroupChatError it
    sets off in the other agents) made some 70 lines on stderr: they go to DEBUG, where they are still found."""
    import logging

    caplog.set_level(logging.DEBUG, logger="autogen_core")
    with pytest.raises(TeamRunError):
        agentracer.trace(make_team, ["only one answer"], 6).run("task")
    ours = [r for r in caplog.records if r.name.startswith("autogen") and r.exc_info]
    assert ours and all(r.levelno == logging.DEBUG for r in ours)
    caplog.clear()
    printed: list[logging.LogRecord] = []

    class Everything(logging.Handler):  # as basicConfig(level=INFO) makes: a handler of level NOTSET
        def emit(self, record):
            printed.append(record)

    logger, handler = logging.getLogger("autogen_core"), Everything()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        with pytest.raises(TeamRunError):
            agentracer.trace(make_team, ["only one answer"], 6).run("task")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not [r for r in printed if r.exc_info]
    with pytest.raises(Exception, match="No more mock responses"):  # untraced, AutoGen logs as it always does
        asyncio.run(make_team(["only one answer"], 6).run(task="task"))
    assert any(r.levelno == logging.ERROR for r in caplog.records if r.name.startswith("autogen") and r.exc_info)
