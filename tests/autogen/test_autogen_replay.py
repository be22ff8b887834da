"""Replay from step t: the prefix comes from the recording (no live call), step t carries the replacement."""

from __future__ import annotations

from typing import Annotated, Literal

import agentracer
import pytest
from ag_helpers import TOOL_RUNS, CountingClient, RuleClient, add, after_tool, counting, multiply, tool_call
from agentracer import JsonlStore, ReplayDivergence, ReplayError
from agentracer.simple import SimpleAgent, SimpleTeam
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage

SCRIPT = [f"turn {i}" for i in range(8)]


def make_team(prompt_of_coder="You write code.", names=("planner", "coder", "reviewer"), n=7, stream=False):
    client = counting(SCRIPT)
    prompts = {"coder": prompt_of_coder}
    agents = [AssistantAgent(name, model_client=client, system_message=prompts.get(name, f"You are {name}."),
                             model_client_stream=stream) for name in names]
    return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(n))


@pytest.mark.parametrize("stream", [False, True])
def test_replay_serves_the_prefix_replaces_step_t_and_runs_the_rest_live(stream):
    traced = agentracer.trace(make_team, stream=stream)
    traj = traced.run("build it")
    CountingClient.live = 0
    new = traced.replay(traj, step=3, action="REPLACED")
    assert [s.content for s in new.steps[:3]] == [s.content for s in traj.steps[:3]]
    assert new.steps[3].content == "REPLACED" and new.steps[3].replaced and new.steps[3].agent == "reviewer"
    assert [s.agent for s in new.steps] == [s.agent for s in traj.steps]
    assert CountingClient.live == 3  # steps 4, 5, 6 only
    sources = [c.source for s in new.steps[1:] for c in s.model_calls]
    assert sources == ["cassette", "cassette", "replacement", "live", "live", "live"]
    # later agents saw the replacement: the planner's live request carries it
    assert "REPLACED" in [m["content"] for m in new.steps[4].model_calls[0].request["messages"]]
    assert new.replay.parent_id == traj.id and new.replay.step == 3 and new.replay.action == "REPLACED"
    assert new.metadata["replay_stats"]["live"] == 3


def _tool_team():
    agent = AssistantAgent("calc", model_client=RuleClient(after_tool(tool_call("add", a=2, b=3), "done"), tools=True),
                           tools=[add, multiply], reflect_on_tool_use=True)
    return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(2))


def test_a_replaced_tool_call_runs_its_tool_live():
    traced = agentracer.trace(_tool_team)
    traj = traced.run("compute")
    assert [s.kind for s in traj.steps] == ["message", "tool_call", "tool_result", "message"]
    TOOL_RUNS.clear()
    CountingClient.live = 0
    action = {"tool_calls": [{"name": "multiply", "arguments": {"a": 4, "b": 5}}]}
    new = traced.replay(traj, step=1, action=action)
    assert new.steps[1].kind == "tool_call" and new.steps[1].replaced
    assert new.steps[1].tool_calls[0].name == "multiply" and new.steps[1].tool_calls[0].arguments == {"a": 4, "b": 5}
    assert TOOL_RUNS == [("multiply", {"a": 4, "b": 5})]
    assert new.steps[2].tool_results[0].content == "20"
    assert CountingClient.live == 1  # only the reflection after the replaced step


def test_a_text_action_in_place_of_a_tool_call_becomes_a_message():
    traced = agentracer.trace(_tool_team)
    traj = traced.run("compute")
    TOOL_RUNS.clear()
    new = traced.replay(traj, step=1, action="no tool needed: 5")
    assert [(s.kind, s.content) for s in new.steps] == [("message", "compute"), ("message", "no tool needed: 5")]
    assert TOOL_RUNS == []


def test_serve_tools_serves_recorded_tool_results_before_t():
    def team():
        client = counting([tool_call("add", a=2, b=3), "sum found", "checked"], tools=True)
        agents = [AssistantAgent("calc", model_client=client, tools=[add], reflect_on_tool_use=True),
                  AssistantAgent("checker", model_client=client)]
        return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(3))

    traced = agentracer.trace(team)
    traj = traced.run("compute")
    assert [s.kind for s in traj.steps] == ["message", "tool_call", "tool_result", "message", "message"]
    TOOL_RUNS.clear()
    new = traced.replay(traj, step=4, action="REPLACED", serve_tools=True)
    assert TOOL_RUNS == [] and new.steps[2].content == "5" and new.metadata["replay_stats"]["tools_served"] == 1
    traced.replay(traj, step=4, action="REPLACED")
    assert TOOL_RUNS == [("add", {"a": 2, "b": 3})]  # without serve_tools the tool runs again


def test_replacing_the_task_at_step_0():
    traced = agentracer.trace(make_team)
    traj = traced.run("build it")
    CountingClient.live = 0
    new = traced.replay(traj, step=0, action="build something else")
    assert new.steps[0].content == "build something else" and new.steps[0].replaced
    assert CountingClient.live == len(traj.steps) - 1
    assert new.task == "build something else" and new.metadata["replay_stats"]["replacement"] == 1


def test_a_changed_team_diverges_before_t_with_the_step_agent_and_a_diff(tmp_path):
    traj = agentracer.trace(make_team).run("build it")
    store = JsonlStore(tmp_path / "replays.jsonl")
    changed = agentracer.trace(make_team, "You write Rust.", store=store)
    CountingClient.live = 0
    with pytest.raises(ReplayDivergence) as info:
        changed.replay(traj, step=4, action="REPLACED")
    err = info.value
    assert err.step == 2 and err.agent == "coder"
    assert "You write code." in err.diff and "You write Rust." in err.diff
    assert CountingClient.live == 0 and list(store) == []  # nothing live, nothing written


def test_a_recorded_response_damaged_by_hand_is_a_replay_error_naming_the_call(tmp_path):
    """AutoGen wraps an agent's exceptions in its own: the replay's error still comes out as it was raised."""
    traj = agentracer.trace(make_team).run("build it")
    traj.steps[1].model_calls[0].response = {"weird": 1}
    store = JsonlStore(tmp_path / "replays.jsonl")
    CountingClient.live = 0
    with pytest.raises(ReplayError, match=r"recorded response of model call #0 of 'planner' \(step 1\) cannot be "
                                          r"served: ValidationError"):
        agentracer.trace(make_team, store=store).replay(traj, step=3, action="x")
    assert CountingClient.live == 0 and list(store) == []


def test_bad_replays_are_refused_before_running(tmp_path):
    traced_store = JsonlStore(tmp_path / "replays.jsonl")
    traced = agentracer.trace(make_team, store=traced_store)
    traj = traced.run("build it")
    CountingClient.live = 0
    with pytest.raises(ReplayError, match="out of range"):
        traced.replay(traj, step=len(traj.steps), action="x")
    with pytest.raises(ReplayError, match="out of range"):
        traced.replay(traj, step=-1, action="x")
    other = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", lambda m: "hi")], max_turns=1)).run("t")
    with pytest.raises(ReplayError, match="'python'"):
        traced.replay(other, step=1, action="x")
    with pytest.raises(ReplayError, match="team shape differs"):
        agentracer.trace(make_team, names=("planner", "tester", "reviewer")).replay(traj, step=2, action="x")
    with pytest.raises(ReplayError, match="tool-call action"):
        traced.replay(traj, step=2, action={"tool_calls": [{"arguments": {}}]})
    assert CountingClient.live == 0 and len(list(traced_store)) == 1  # only the original run


def test_a_step_no_model_call_produced_cannot_be_replaced():
    def team():
        agent = AssistantAgent("calc", model_client=RuleClient(lambda m: tool_call("add", a=2, b=3), tools=True),
                               tools=[add])  # no reflection: the tool results are summarised without the model
        return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(2))

    traced = agentracer.trace(team)
    traj = traced.run("compute")
    assert [s.kind for s in traj.steps] == ["message", "tool_call", "tool_result", "summary"]
    CountingClient.live = 0
    with pytest.raises(ReplayError, match=r"step 3 is a summary step of 'calc'.*replace step 1"):
        traced.replay(traj, step=3, action="999")
    assert CountingClient.live == 0


def test_a_replaced_tool_result_is_the_action_and_its_tool_does_not_run():
    traced = agentracer.trace(_tool_team)
    traj = traced.run("compute")
    TOOL_RUNS.clear()
    CountingClient.live = 0
    new = traced.replay(traj, step=2, action="999")
    assert TOOL_RUNS == [] and CountingClient.live == 1  # only the reflection after it
    assert new.steps[2].replaced and new.steps[2].tool_results[0].content == "999"
    assert not new.steps[2].tool_results[0].is_error
    assert "999" in str(new.steps[3].model_calls[0].request["messages"])  # the model read the replaced result
    assert new.metadata["replay_stats"]["replacement"] == 1


def test_a_model_a_tool_asks_itself_is_the_tools_not_its_agents():
    """A summarising tool's own model call was booked as its agent's output: replacing the tool's result put the
    action into the agent's next (live) step too, and serving tools left the agent's calls one off (a divergence)."""
    from autogen_core.models import UserMessage

    def team() -> RoundRobinGroupChat:
        helper = RuleClient(lambda m: "SUMMARY of " + str(m[-1].content))

        async def summarize(text: str) -> str:
            """Summarize text with a model."""
            return (await helper.create([UserMessage(content=f"summarize: {text}", source="tool")])).content

        calc = AssistantAgent("calc", tools=[summarize], reflect_on_tool_use=True, model_client=RuleClient(
            after_tool(tool_call("summarize", text="doc"), "reflection"), tools=True))
        checker = AssistantAgent("chk", model_client=RuleClient(lambda m: "checked"))
        return RoundRobinGroupChat([calc, checker], termination_condition=MaxMessageTermination(3))

    traced = agentracer.trace(team)
    traj = traced.run("go")
    assert [(c.agent, c.produces_step) for c in traj.steps[2].model_calls] == [("calc (tool summarize)", False)]
    assert traj.steps[2].tool_results[0].content == "SUMMARY of summarize: doc"
    given = traced.replay(traj, step=2, action="given")
    assert given.steps[3].content == "reflection" and [c.source for c in given.steps[3].model_calls] == ["live"]
    served = traced.replay(traj, step=4, action="X", serve_tools=True)
    assert served.metadata["replay_stats"]["live"] == 0 and served.steps[2].tool_results[0].content == (
        "SUMMARY of summarize: doc")


def test_a_replay_of_a_replay_that_replaced_a_tool_result_serves_that_result():
    """The tool ran live again in the grandchild, gave its real result where the child had the replaced one, and the
    grandchild diverged at that step (unless serve_tools was given)."""
    traced = agentracer.trace(_tool_team)
    child = traced.replay(traced.run("compute"), step=2, action="999")
    TOOL_RUNS.clear()
    CountingClient.live = 0
    grandchild = traced.replay(child, step=3, action="done, it is 999")
    assert TOOL_RUNS == [] and CountingClient.live == 0
    assert grandchild.steps[2].tool_results[0].content == "999" and grandchild.steps[3].content == "done, it is 999"


def test_one_of_parallel_tool_results_is_replaced_by_its_call_id_and_the_others_run_or_are_served():
    def team():
        both = CreateResult(finish_reason="function_calls", cached=False, usage=RequestUsage(prompt_tokens=1,
                            completion_tokens=1), content=[FunctionCall(id="a", name="add", arguments='{"a": 1, "b": 2}'),
                                                           FunctionCall(id="m", name="multiply", arguments='{"a": 2, "b": 3}')])
        agent = AssistantAgent("calc", model_client=RuleClient(after_tool(both, "done"), tools=True),
                               tools=[add, multiply], reflect_on_tool_use=True)
        return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(2))

    traced = agentracer.trace(team)
    traj = traced.run("compute")
    assert [r.content for r in traj.steps[2].tool_results] == ["3", "6"]
    with pytest.raises(ReplayError, match='step 2 holds 2 tool results.*say which to replace, '
                                          r'\{"tool_results": \{"a": "..."\}\} .*or replace the tool call'):
        traced.replay(traj, step=2, action="999")

    TOOL_RUNS.clear()
    new = traced.replay(traj, step=2, action={"tool_results": {"m": "60"}})
    assert [r.content for r in new.steps[2].tool_results] == ["3", "60"] and new.steps[2].replaced
    assert new.steps[2].metadata["replaced_tool_results"] == ["m"]
    assert [name for name, _ in TOOL_RUNS] == ["add"]  # the other result ran live
    assert "60" in str(new.steps[3].model_calls[0].request["messages"])
    TOOL_RUNS.clear()
    new = traced.replay(traj, step=2, action={"tool_results": {"add": "-1"}}, serve_tools=True)
    assert [r.content for r in new.steps[2].tool_results] == ["-1", "6"] and TOOL_RUNS == []

    for action, error in [({"tool_results": {"x": "1"}}, r"no result of a tool call 'x'; its results: a \(add\), m"),
                          ({"tool_results": {}}, "maps tool call ids"),
                          ({"tool_results": {"a": "1"}, "content": "x"}, "holds nothing else"),
                          ({"tool_results": {"m": "1", "multiply": "2"}}, "names the result of call m twice"),
                          ({"tool_results": {"m": 60}}, "a text or a JSON object .as an action is., got int 60"),
                          ({"tool_results": {"m": {"when": object()}}}, "the result for 'm' is not JSON")]:
        with pytest.raises(ReplayError, match=error):
            traced.replay(traj, step=2, action=action)
    with pytest.raises(ReplayError, match="replaces results of a tool-result step; step 1 is a tool_call step"):
        traced.replay(traj, step=1, action={"tool_results": {"a": "1"}})


def fetch(url: str) -> str:
    """Fetch a page."""
    TOOL_RUNS.append(("fetch", {"url": url}))
    raise ConnectionError("network unreachable")


def test_serve_tools_serves_a_recorded_tool_error_as_an_error():
    def team():
        agent = AssistantAgent("web", model_client=RuleClient(after_tool(tool_call("fetch", url="http://x"),
                                                                         "it failed"), tools=True),
                               tools=[fetch], reflect_on_tool_use=True)
        checker = AssistantAgent("checker", model_client=counting(["noted"] * 3))
        return RoundRobinGroupChat([agent, checker], termination_condition=MaxMessageTermination(3))

    traced = agentracer.trace(team)
    traj = traced.run("fetch it")
    recorded = traj.steps[2].tool_results[0]
    assert recorded.is_error and "network unreachable" in recorded.content
    TOOL_RUNS.clear()
    new = traced.replay(traj, step=4, action="REPLACED", serve_tools=True)  # strict: the prefix is the recording
    assert TOOL_RUNS == []
    assert new.steps[2].tool_results[0] == recorded and new.metadata["replay_stats"]["tools_served"] == 1


def test_a_replacement_tool_call_of_a_tool_the_agent_lacks_is_refused_before_anything_runs():
    traced = agentracer.trace(_tool_team)
    traj = traced.run("compute")
    TOOL_RUNS.clear()
    CountingClient.live = 0
    action = {"tool_calls": [{"name": "multiplyy", "arguments": {"a": 4, "b": 5}}]}
    with pytest.raises(ReplayError, match=r"step 1 calls 'multiplyy', which 'calc' does not have "
                                          r"\(its tools: add, multiply\)"):
        traced.replay(traj, step=1, action=action)
    assert TOOL_RUNS == [] and CountingClient.live == 0


def test_a_tool_call_in_place_of_a_call_offered_no_tools_is_refused_before_anything_runs():
    """The reflection on a tool result is asked without tools (so is a tool-less agent, a Magentic-One orchestrator):
    a tool call there would fail inside AutoGen."""
    traced = agentracer.trace(_tool_team)
    traj = traced.run("compute")
    assert "tools" not in traj.steps[3].model_calls[0].request  # the reflection
    TOOL_RUNS.clear()
    CountingClient.live = 0
    action = {"tool_calls": [{"name": "multiply", "arguments": {"a": 4, "b": 5}}]}
    with pytest.raises(ReplayError, match=r"step 3 calls 'multiply', but the model call it replaces \('calc'\) was "
                                          r"offered no tools: its replacement must be a text"):
        traced.replay(traj, step=3, action=action)
    assert TOOL_RUNS == [] and CountingClient.live == 0


def test_a_team_object_autogen_cannot_reset_after_a_failed_run_is_a_clear_error_not_a_hang(monkeypatch):
    from agentracer import AgentracerError, TeamRunError

    from agentracer_plugins.autogen import runner

    monkeypatch.setattr(runner, "RESET_TIMEOUT_S", 1.0)
    broken = [True]

    def rule(messages):  # a tool call where AutoGen expects the reflection's text: AutoGen raises inside the team
        if type(messages[-1]).__name__ == "FunctionExecutionResultMessage":
            return tool_call("multiply", a=1, b=1) if broken[0] else "done"
        return tool_call("add", a=2, b=3)

    team = RoundRobinGroupChat([AssistantAgent("calc", model_client=RuleClient(rule, tools=True), tools=[add, multiply],
                                               reflect_on_tool_use=True),
                                AssistantAgent("checker", model_client=RuleClient(lambda m: "ok"))],
                               termination_condition=MaxMessageTermination(5))
    traced = agentracer.trace(team)
    with pytest.raises(TeamRunError):
        traced.run("go")
    broken[0] = False
    with pytest.raises(AgentracerError, match="last run failed inside the team.*trace a factory"):
        traced.run("go")


def test_a_team_object_whose_agent_raised_is_refused_not_run_stopped():
    """AutoGen resets such a team without complaint, but its next run stops at once ('The group chat is stopped.'):
    it was recorded as an ordinary two-step run."""
    from agentracer import AgentracerError

    def rule(messages):
        if sum(type(m).__name__ == "AssistantMessage" for m in messages) >= 1:
            raise RuntimeError("model exploded")
        return "fine"

    team = RoundRobinGroupChat([AssistantAgent("a", model_client=RuleClient(rule)),
                                AssistantAgent("b", model_client=RuleClient(lambda m: "b ok"))],
                               termination_condition=MaxMessageTermination(6))
    traced = agentracer.trace(team, raise_on_error=False)
    assert "model exploded" in traced.run("go").outcome.error
    with pytest.raises(AgentracerError, match="last run failed inside the team .*model exploded.*trace a factory"):
        traced.run("go")


def test_a_replacement_that_is_not_the_agents_structured_output_is_refused_before_anything_runs():
    import json

    from autogen_agentchat.messages import StructuredMessage
    from autogen_core.models import ModelInfo
    from pydantic import BaseModel

    class Plan(BaseModel):
        steps: list[str]
        done: bool

    def team():
        client = RuleClient(lambda m: json.dumps({"steps": ["a"], "done": False}), tools=True)
        client._model_info = ModelInfo(vision=False, function_calling=True, json_output=True, family="unknown",
                                       structured_output=True)
        planner = AssistantAgent("planner", model_client=client, output_content_type=Plan)
        checker = AssistantAgent("checker", model_client=RuleClient(lambda m: "ok"))
        return RoundRobinGroupChat([planner, checker], termination_condition=MaxMessageTermination(3),
                                   custom_message_types=[StructuredMessage[Plan]])

    traced = agentracer.trace(team)
    traj = traced.run("plan")
    new = traced.replay(traj, step=1, action={"steps": ["X"], "done": True})
    assert json.loads(new.steps[1].content) == {"steps": ["X"], "done": True}
    CountingClient.live = 0
    for bad, where in (("not json", "the whole value: Invalid JSON"), ({"steps": "bad"}, "steps: Input should be")):
        with pytest.raises(ReplayError, match=f"step 1 is not a Plan, the structured output of 'planner': {where}"):
            traced.replay(traj, step=1, action=bad)
    assert CountingClient.live == 0
    # a text in place of its tool call is its answer, so a Plan too (it failed inside the team, naming no step)

    def with_a_tool():
        client = RuleClient(after_tool(tool_call("add", a=1, b=2), json.dumps({"steps": ["a"], "done": True})),
                            tools=True)
        client._model_info = ModelInfo(vision=False, function_calling=True, json_output=True, family="unknown",
                                       structured_output=True)
        planner = AssistantAgent("planner", model_client=client, output_content_type=Plan, tools=[add],
                                 reflect_on_tool_use=True)
        return RoundRobinGroupChat([planner, AssistantAgent("checker", model_client=RuleClient(lambda m: "ok"))],
                                   termination_condition=MaxMessageTermination(3),
                                   custom_message_types=[StructuredMessage[Plan]])

    tooled = agentracer.trace(with_a_tool)
    run = tooled.run("plan")
    assert run.steps[1].kind == "tool_call"
    CountingClient.live = 0
    with pytest.raises(ReplayError, match="step 1 is not a Plan, the structured output of 'planner'"):
        tooled.replay(run, step=1, action="not a plan")
    assert CountingClient.live == 0
    assert json.loads(tooled.replay(run, step=1, action='{"steps": ["b"], "done": true}').steps[1].content)["steps"] == [
        "b"]


def _overridden_team():
    from autogen_core.tools import FunctionTool, StaticWorkbench, ToolOverride

    workbench = StaticWorkbench([FunctionTool(add, description="Add."), FunctionTool(multiply, description="Mul.")],
                                tool_overrides={"add": ToolOverride(name="plus")})
    calc = AssistantAgent("calc", model_client=RuleClient(after_tool(tool_call("plus", a=2, b=3), "done"), tools=True),
                          workbench=workbench, reflect_on_tool_use=True)
    return RoundRobinGroupChat([calc], termination_condition=MaxMessageTermination(3))


def test_a_tool_a_workbench_renames_is_described_and_replaced_by_its_offered_name():
    """StaticWorkbench(tool_overrides=...) offers "plus" for add: the agent was described with "add", and no
    replacement could call the tool (by its offered name: "not one of its tools"; by its own: "not offered")."""
    traced = agentracer.trace(_overridden_team)
    run = traced.run("go")
    assert run.agents[0].tools == ["plus", "multiply"]
    assert [tool["name"] for tool in run.steps[1].model_calls[0].request["tools"]] == ["plus", "multiply"]
    fixed = traced.replay(run, step=1, action={"tool_calls": [{"name": "plus", "arguments": {"a": 4, "b": 5}}]})
    assert fixed.steps[2].tool_results[0].content == "9"


def test_an_agent_whose_workbench_lists_its_tools_only_when_asked_can_have_them_called_by_a_replacement():
    """A workbench without a tool list of its own (an MCP server's) and handoffs: the agent was described with its
    handoffs alone, and a replacement calling the workbench's tool was refused as not one of its tools."""
    from autogen_agentchat.conditions import TextMentionTermination
    from autogen_agentchat.teams import Swarm
    from autogen_core.tools import TextResultContent, ToolResult, Workbench

    class ServerBench(Workbench):
        async def list_tools(self):
            return [{"name": "lookup", "description": "Look up.",
                     "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}}]

        async def call_tool(self, name, arguments=None, cancellation_token=None, call_id=None):
            return ToolResult(name=name, result=[TextResultContent(content=f"{name}:{arguments}")])

        async def start(self): pass
        async def stop(self): pass
        async def reset(self): pass
        async def save_state(self): return {}
        async def load_state(self, state): pass
        def _to_config(self): raise NotImplementedError

        @classmethod
        def _from_config(cls, config): raise NotImplementedError

    def team():
        alice = AssistantAgent("alice", model_client=RuleClient(after_tool(tool_call("lookup", word="x"),
                                                                           "found TERMINATE"), tools=True),
                               workbench=ServerBench(), handoffs=["bob"], reflect_on_tool_use=True)
        bob = AssistantAgent("bob", model_client=RuleClient(lambda m: "bob TERMINATE", tools=True))
        return Swarm([alice, bob], termination_condition=TextMentionTermination("TERMINATE"))

    traced = agentracer.trace(team)
    run = traced.run("go")
    fixed = traced.replay(run, step=1, action={"tool_calls": [{"name": "lookup", "arguments": {"word": "y"}}]})
    assert "lookup:{'word': 'y'}" in fixed.steps[2].tool_results[0].content
    with pytest.raises(agentracer.ReplayError, match="was offered only"):  # (the recorded offer still judges)
        traced.replay(run, step=1, action={"tool_calls": [{"name": "nope", "arguments": {}}]})


def test_a_workbench_schema_is_recorded_as_sent_each_call():
    """Schemas were kept by the object's id for the run: one changed in place (a budget in its description) was
    recorded as first sent, and the fresh dicts a workbench lists on every call piled up held for the run."""
    from agentracer_plugins.autogen.codec import ToolSchemas

    tools = ToolSchemas()
    schema = {"name": "budget", "description": "calls left: 3",
              "parameters": {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["b", "a"]}}
    first = tools([schema])
    schema["description"] = "calls left: 2"
    second = tools([schema])
    assert [first[0]["description"], second[0]["description"]] == ["calls left: 3", "calls left: 2"]
    assert first[0]["parameters"]["required"] == ["b", "a"] and not tools._held  # (as sent: its order kept)


def _login_team(hint: str):
    from autogen_core.tools import FunctionTool

    def login(user: str, password: str) -> str:
        return f"{user} logged in"

    login.__annotations__ = {"user": str, "password": Annotated[str, hint], "return": str}  # (the hint as given)

    calc = AssistantAgent("calc", model_client=RuleClient(after_tool(tool_call("login", user="ann", password="x"),
                                                                     "in"), tools=True),
                          tools=[FunctionTool(login, description="Log in.")], reflect_on_tool_use=True)
    return RoundRobinGroupChat([calc], termination_condition=MaxMessageTermination(3))


def test_a_parameter_named_like_a_secret_keeps_its_schema_and_a_change_to_it_diverges():
    """A parameter "password" had its whole schema recorded as "[REDACTED]": a changed description (or type) of it
    was served from the recording. Recordings made that way still replay (their hashes are checked both ways)."""
    from agentracer.redact import Redactor

    traced = agentracer.trace(_login_team, "the user's password")
    run = traced.run("go")
    offered = run.steps[1].model_calls[0].request["tools"][0]["parameters"]["properties"]
    assert offered["password"]["description"] == "the user's password"
    with pytest.raises(ReplayDivergence, match="step 1"):
        agentracer.trace(_login_team, "a 4-digit PIN").replay(run, step=3, action="changed")
    before = run.model_copy(deep=True)  # (as recorded before parameter names were kept)
    for call in before.model_calls():
        call.request, call.request_hash = Redactor([], parameter_names_secret=True).request(call.request)
    assert before.steps[1].model_calls[0].request["tools"][0]["parameters"]["properties"]["password"] == "[REDACTED]"
    assert traced.replay(before, step=3, action="changed").steps[3].content == "changed"


COLOURS = ("red", "green", "blue", "white")  # (as ``tuple(a_set)`` lists them in one process)


def paint(colour: Literal[COLOURS], wall: int) -> str:  # type: ignore[valid-type]
    return f"wall {wall} is {colour}"


def unlock(password: str) -> str:
    return "unlocked"


def _paint_team():
    from autogen_core.tools import FunctionTool

    calc = AssistantAgent("calc", model_client=RuleClient(after_tool(tool_call("paint", colour="red", wall=1),
                                                                     "painted"), tools=True),
                          tools=[FunctionTool(paint, description="Paint a wall."),
                                 FunctionTool(unlock, description="Unlock the shed.")], reflect_on_tool_use=True)
    return RoundRobinGroupChat([calc], termination_condition=MaxMessageTermination(2))


def test_a_tool_schema_recorded_by_another_process_with_its_enum_in_another_order_is_served_a_new_value_diverges():
    """A ``Literal`` of a set's members lists them in another order in every process (hash randomisation): a replay in
    a new process diverged at a tool it was offered alike. Its ``enum`` (and ``required``) order is let go, only on a
    mismatch (hashes stay as recorded); a value added still diverges."""
    from agentracer.redact import Redactor

    traced = agentracer.trace(_paint_team)
    run = traced.run("paint it")
    offered = run.steps[1].model_calls[0].request["tools"][0]["parameters"]
    assert offered["properties"]["colour"]["enum"] == list(COLOURS) and offered["required"] == ["colour", "wall"]

    def recorded_with(enum, required, *, names_secret=False):
        other = run.model_copy(deep=True)  # (as another process records it: its own order, its own hash)
        for call in other.model_calls():
            if call.request.get("tools"):
                parameters = call.request["tools"][0]["parameters"]
                parameters["properties"]["colour"]["enum"], parameters["required"] = enum, required
                call.request, call.request_hash = Redactor([], parameter_names_secret=names_secret).request(
                    call.request)
        assert other.steps[1].model_calls[0].request_hash != run.steps[1].model_calls[0].request_hash
        return other

    CountingClient.live = 0
    new = traced.replay(recorded_with(list(reversed(COLOURS)), ["wall", "colour"]), step=3, action="changed")
    assert new.steps[3].content == "changed" and CountingClient.live == 0
    assert new.steps[1].model_calls[0].source == "cassette"
    assert new.steps[1].model_calls[0].request_hash == run.steps[1].model_calls[0].request_hash  # (hashed as ever)
    # (recorded before parameter names were kept: unlock's "password" schema redacted whole)
    before = recorded_with(list(reversed(COLOURS)), ["wall", "colour"], names_secret=True)
    assert before.steps[1].model_calls[0].request["tools"][1]["parameters"]["properties"]["password"] == "[REDACTED]"
    assert traced.replay(before, step=3, action="changed").steps[1].model_calls[0].source == "cassette"
    with pytest.raises(ReplayDivergence, match="step 1") as info:
        traced.replay(recorded_with([*reversed(COLOURS), "black"], ["wall", "colour"]), step=3, action="changed")
    assert "black" in info.value.diff
    with pytest.raises(ReplayDivergence, match="step 1"):  # (a parameter no longer required: another offer)
        traced.replay(recorded_with(list(reversed(COLOURS)), ["wall"]), step=3, action="changed")
