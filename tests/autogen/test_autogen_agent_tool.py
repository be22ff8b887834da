"""An agent run as a tool (``AgentTool``): its model calls are its own, so its steps replay like any agent's."""

from __future__ import annotations

import agentracer
import pytest
from ag_helpers import CountingClient, RuleClient, tool_call
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_agentchat.tools import AgentTool
from autogen_core.models import FunctionExecutionResultMessage

CAPITALS = {"Switzerland": "Bern", "Denmark": "Copenhagen"}


def browser(messages):
    query = str(messages[-1].content)
    if "flag" in query:
        return "Switzerland"
    return next((city for country, city in CAPITALS.items() if country in query), "not found")


def researcher(messages):
    last = messages[-1]
    if not isinstance(last, FunctionExecutionResultMessage):
        return tool_call("Browser", "c1", task="the flag that is red with a white cross")
    found = last.content[0].content.split()[-1]
    if found in CAPITALS:
        return tool_call("Browser", "c2", task=f"the capital of {found}")
    return f"The capital is {found}."


def make_researcher():
    browsing = AssistantAgent("Browser", model_client=RuleClient(browser), description="Browses the web.")
    agent = AssistantAgent("Researcher", model_client=RuleClient(researcher, tools=True), tools=[AgentTool(browsing)],
                           max_tool_iterations=3)
    return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(6))


def test_the_tool_agents_model_calls_are_its_own_and_its_message_can_be_replaced():
    traced = agentracer.trace(make_researcher)
    traj = traced.run("Which capital?")
    shape = [(s.agent, s.kind) for s in traj.steps[:10]]
    assert shape == [("user", "message"), ("Researcher", "tool_call"), ("user", "message"), ("Browser", "message"),
                     ("Researcher", "tool_result"), ("Researcher", "tool_call"), ("user", "message"),
                     ("Browser", "message"), ("Researcher", "tool_result"), ("Researcher", "message")]
    made_by = [[c.agent for c in s.model_calls] for s in traj.steps[:10]]
    assert made_by == [[], ["Researcher"], [], ["Browser"], [], ["Researcher"], [], ["Browser"], [], ["Researcher"]]

    CountingClient.live = 0
    new = traced.replay(traj, step=3, action="Denmark")
    assert new.steps[3].replaced and new.steps[3].model_calls[0].source == "replacement"
    assert [c.source for s in new.steps[:3] for c in s.model_calls] == ["cassette"]
    assert new.steps[4].content == "Browser: Denmark" and new.steps[7].content == "Copenhagen"
    assert new.steps[9].content == "The capital is Copenhagen."



def test_an_agent_tools_result_can_be_replaced_or_served_and_the_run_keeps_its_length():
    """The tool agent is not asked; its recorded steps are copied and streamed on as it streamed them, so the team's
    message-count termination ends the replay where it ended the run."""
    traced = agentracer.trace(make_researcher)
    traj = traced.run("Which capital?")
    CountingClient.live = 0
    new = traced.replay(traj, step=4, action="Browser: Denmark")
    assert (new.steps[4].content, new.steps[4].replaced) == ("Browser: Denmark", True)
    assert [s.content for s in new.steps[2:4]] == [s.content for s in traj.steps[2:4]]  # copied, not asked again
    assert new.steps[-1].content == "The capital is Copenhagen." and len(new.steps) == len(traj.steps)
    assert CountingClient.live == 3 and new.metadata["replay_stats"]["replacement"] == 1
    new = traced.replay(traj, step=8, action="Browser: Oslo", serve_tools=True)
    assert new.metadata["replay_stats"]["tools_served"] == 1 and new.steps[4].content == "Browser: Switzerland"
    assert new.steps[-1].content == "The capital is Oslo." and len(new.steps) == len(traj.steps)


def make_summarizing_searcher():
    """The tool agent's last message is a ToolCallSummaryMessage (it does not reflect on its tool's result)."""
    def boss_rule(messages):
        if isinstance(messages[-1], FunctionExecutionResultMessage):
            return "Final: " + messages[-1].content[0].content
        return tool_call("Searcher", "o1", task="find the capital")

    inner = AssistantAgent("Searcher", model_client=RuleClient(lambda m: tool_call("lookup", "i1", q="France"),
                                                               tools=True), tools=[lookup], description="searches")
    agent = AssistantAgent("Boss", model_client=RuleClient(boss_rule, tools=True), tools=[AgentTool(inner)],
                           reflect_on_tool_use=True)
    other = AssistantAgent("Other", model_client=RuleClient(lambda m: f"other {len(m)}"))
    return RoundRobinGroupChat([agent, other], termination_condition=MaxMessageTermination(5))


@pytest.mark.parametrize("serve_tools", [False, True])
def test_a_given_agent_tool_result_streams_on_every_message_the_tool_agent_made(serve_tools):
    """Not only its text messages: its tool call summary too, which the team's message count counts."""
    traced = agentracer.trace(make_summarizing_searcher)
    traj = traced.run("go")
    assert [(s.agent, s.kind) for s in traj.steps][3:7] == [
        ("Searcher", "tool_call"), ("Searcher", "tool_result"), ("Searcher", "summary"), ("Boss", "tool_result")]
    new = traced.replay(traj, step=6, action="Searcher: result for France", serve_tools=serve_tools)
    assert [(s.agent, s.kind, s.content) for s in new.steps] == [(s.agent, s.kind, s.content) for s in traj.steps]


def test_copied_steps_are_rebuilt_as_the_autogen_messages_and_events_they_were():
    from agentracer.schema import Step, ToolCall, ToolResult
    from autogen_agentchat.messages import (
        HandoffMessage,
        StopMessage,
        TextMessage,
        ThoughtEvent,
        ToolCallExecutionEvent,
        ToolCallRequestEvent,
        ToolCallSummaryMessage,
    )

    from agentracer_plugins.autogen.context import RunState
    from agentracer_plugins.autogen.steps import copied_messages

    def step(i, kind, content, type_, **extra):
        metadata = {"type": type_, **extra.pop("metadata", {})}
        return Step(index=i, agent="A", role="assistant", kind=kind, content=content, metadata=metadata, **extra)

    steps = [
        step(0, "tool_call", "", "ToolCallRequestEvent", tool_calls=[ToolCall(id="c", name="f", arguments={"x": 1})],
             metadata={"thought": "hmm"}),
        step(1, "tool_result", "2", "ToolCallExecutionEvent", tool_results=[ToolResult(call_id="c", name="f",
                                                                                        content="2")]),
        step(2, "summary", "2", "ToolCallSummaryMessage"),
        step(3, "handoff", "to B", "HandoffMessage", metadata={"target": "B"}),
        step(4, "event", "done", "StopMessage"),
        step(5, "message", "hi", "TextMessage"),
        step(6, "message", "{}", "StructuredMessage[Answer]"),  # its model is not known here: left out
    ]
    state = RunState()
    messages = copied_messages(steps, state)
    assert [type(m) for m in messages] == [ThoughtEvent, ToolCallRequestEvent, ToolCallExecutionEvent,
                                           ToolCallSummaryMessage, HandoffMessage, StopMessage, TextMessage]
    assert messages[1].content[0].arguments == '{"x": 1}' and messages[2].content[0].content == "2"
    assert messages[3].tool_calls == messages[1].content and messages[3].results == messages[2].content
    assert messages[4].target == "B" and all(id(m) in state.recorded for m in messages)


def lookup(q: str) -> str:
    """Look something up."""
    return f"result for {q}"


def searcher(messages):
    if isinstance(messages[-1], FunctionExecutionResultMessage):
        return "found: " + messages[-1].content[0].content
    return tool_call("lookup", "i1", q="capital of france")


def boss(messages):
    if isinstance(messages[-1], FunctionExecutionResultMessage):
        return "Final: " + messages[-1].content[0].content
    return tool_call("Searcher", "o1", task="find the capital")


def make_boss():
    inner = AssistantAgent("Searcher", model_client=RuleClient(searcher, tools=True), tools=[lookup],
                           reflect_on_tool_use=True, description="searches")
    agent = AssistantAgent("Boss", model_client=RuleClient(boss, tools=True), tools=[AgentTool(inner)],
                           reflect_on_tool_use=True)
    return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(2))


def test_each_model_call_of_a_tool_agent_is_on_the_step_it_made():
    traced = agentracer.trace(make_boss)
    traj = traced.run("go")
    made = [(s.agent, s.kind, [c.call_index for c in s.model_calls]) for s in traj.steps]
    assert made == [("user", "message", []), ("Boss", "tool_call", [0]), ("user", "message", []),
                    ("Searcher", "tool_call", [0]), ("Searcher", "tool_result", []), ("Searcher", "message", [1]),
                    ("Boss", "tool_result", []), ("Boss", "message", [1])]
    new = traced.replay(traj, step=3, action={"tool_calls": [{"name": "lookup", "arguments": {"q": "Spain"}}]})
    assert new.outcome.answer == "Final: Searcher: found: result for Spain"  # the reflection ran live after it
    new = traced.replay(traj, step=5, action="found: Paris")
    assert new.outcome.answer == "Final: Searcher: found: Paris"


def test_a_team_run_as_a_tool_is_recorded_once_in_the_order_autogen_streams_it():
    import asyncio

    from autogen_agentchat.tools import TeamTool

    def crew_boss(messages):
        if isinstance(messages[-1], FunctionExecutionResultMessage):
            return "Final: " + messages[-1].content[0].content
        return tool_call("Crew", "c1", task="Write a haiku")

    def make():
        writer = AssistantAgent("Writer", model_client=RuleClient(lambda m: "haiku draft"))
        editor = AssistantAgent("Editor", model_client=RuleClient(lambda m: "edited: " + str(m[-1].content)))
        crew = RoundRobinGroupChat([writer, editor], termination_condition=MaxMessageTermination(3))
        tool = TeamTool(crew, name="Crew", description="writing crew", return_value_as_last_message=True)
        agent = AssistantAgent("Boss", model_client=RuleClient(crew_boss, tools=True), tools=[tool],
                               reflect_on_tool_use=True)
        return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(2))

    traced = agentracer.trace(make)
    traj = traced.run("compute")
    agentracer.uninstrument()
    streamed = asyncio.run(make().run(task="compute")).messages
    assert [s.agent for s in traj.steps] == [m.source for m in streamed]
    assert [s.kind for s in traj.steps][2:5] == ["message", "message", "message"]
    assert [[c.agent for c in s.model_calls] for s in traj.steps[3:5]] == [["Writer"], ["Editor"]]
    new = traced.replay(traj, step=3, action="a better haiku")
    assert new.outcome.answer == "Final: edited: a better haiku"


def test_either_of_two_agents_run_as_tools_in_parallel_can_be_replaced():
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage

    def both(messages):
        if isinstance(messages[-1], FunctionExecutionResultMessage):
            return "Final: " + " | ".join(r.content for r in messages[-1].content)
        return CreateResult(finish_reason="function_calls", cached=False, usage=RequestUsage(prompt_tokens=1,
                            completion_tokens=1), content=[FunctionCall(id="a", name="Alpha", arguments='{"task": "a"}'),
                                                           FunctionCall(id="b", name="Beta", arguments='{"task": "b"}')])

    def make():
        alpha = AssistantAgent("Alpha", model_client=RuleClient(lambda m: "alpha says hi"), description="a")
        beta = AssistantAgent("Beta", model_client=RuleClient(lambda m: "beta says hi"), description="b")
        agent = AssistantAgent("Boss", model_client=RuleClient(both, tools=True),
                               tools=[AgentTool(alpha), AgentTool(beta)])
        return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(3))

    traced = agentracer.trace(make)
    traj = traced.run("go")
    for name in ("Alpha", "Beta"):
        t = next(s.index for s in traj.steps if s.agent == name)
        new = traced.replay(traj, step=t, action=f"{name} REPLACED")
        assert new.steps[t].content == f"{name} REPLACED" and new.steps[t].replaced
        assert f"{name} REPLACED" in new.steps[-2].content  # the tool result the caller got


class _WeatherAndHelper:
    """A boss agent calling a plain ``weather`` tool and a helper agent run as a tool in parallel, through a loopback
    OpenAI-compatible server (with latency: its calls wait), ``turns`` times (the ids the server gives repeat)."""

    def __init__(self, turns: int) -> None:
        from agentracer.testing.openai_server import OpenAIServer

        self.turns, self.ran = turns, []
        self.server = OpenAIServer(self.answer, latency=0.02)

    def weather(self, city: str) -> str:
        self.ran.append(city)
        return f"sunny in {city}"

    def answer(self, request):
        messages = request["messages"]
        if messages[0]["content"].startswith("You help"):
            return "helper says 4"
        done = sum(1 for m in messages if m["role"] == "tool") // 2
        if done == self.turns:
            return "done: " + " | ".join(str(m["content"]) for m in messages if m["role"] == "tool")
        city = ("Rome", "Paris")[done]
        return {"tool_calls": [{"name": "weather", "arguments": {"city": city}},
                               {"name": "helper", "arguments": {"task": f"2+2 in {city}"}}]}

    def make(self):
        from autogen_core.tools import FunctionTool
        from autogen_ext.models.openai import OpenAIChatCompletionClient

        def client(**options):
            return OpenAIChatCompletionClient(model="gpt-4o-mini-2024-07-18", base_url=self.server.base_url,
                                              api_key="sk-test", **options)

        helper = AssistantAgent("helper", model_client=client(), system_message="You help", description="helps")
        weather = FunctionTool(self.weather, description="The weather of a city.", name="weather")
        return AssistantAgent("boss", model_client=client(parallel_tool_calls=True), system_message="You lead",
                              tools=[weather, AgentTool(helper)], reflect_on_tool_use=True,
                              max_tool_iterations=self.turns)


def test_a_plain_tool_and_an_agent_run_as_a_tool_in_parallel_each_get_their_own_recorded_result():
    """The agent run as a tool streams, and reaches the recorder before the plain tool listed ahead of it: results are
    matched by their tool call's id (by order, the agent's tool took the weather's result, and a replay replacing
    the weather's result replaced the agent's; copying the agent's steps for a tool that did not run made them twice)."""
    team = _WeatherAndHelper(turns=1)
    with team.server:
        traced = agentracer.trace(team.make)
        traj = traced.run("go")
        t = next(s.index for s in traj.steps if s.agent == "boss" and s.kind == "tool_result")
        recorded = [(r.name, r.content) for r in traj.steps[t].tool_results]
        assert recorded == [("weather", "sunny in Rome"), ("helper", "helper: helper says 4")]
        weather_call = next(c.id for s in traj.steps for c in s.tool_calls if c.name == "weather")
        team.ran.clear()
        new = traced.replay(traj, step=t, action={"tool_results": {weather_call: "hail in Rome"}})
        assert [(r.name, r.content) for r in new.steps[t].tool_results] == [
            ("weather", "hail in Rome"), ("helper", "helper: helper says 4")]
        assert team.ran == [] and [s.agent for s in new.steps] == [s.agent for s in traj.steps]  # (helper ran live)
        served = traced.replay(traj, step=len(traj.steps) - 1, action="final", serve_tools=True)
        assert [(r.name, r.content) for r in served.steps[t].tool_results] == recorded and team.ran == []


def test_parallel_tools_whose_call_ids_repeat_in_every_turn_still_get_their_own_results():
    """Servers reuse tool call ids across turns (``call_0`` each time; the loopback server names them by position and
    tool): the second turn's results are matched to its calls, not the first's."""
    team = _WeatherAndHelper(turns=2)
    with team.server:
        traced = agentracer.trace(team.make)
        traj = traced.run("go")
        results = [s.index for s in traj.steps if s.agent == "boss" and s.kind == "tool_result"]
        assert len(results) == 2
        first_ids = [r.call_id for r in traj.steps[results[0]].tool_results]
        assert first_ids == [r.call_id for r in traj.steps[results[1]].tool_results]  # (the ids repeat)
        second = traj.steps[results[1]]
        team.ran.clear()
        new = traced.replay(traj, step=results[1], action={"tool_results": {second.tool_results[0].call_id: "hail"}})
        assert [(r.name, r.content) for r in new.steps[results[1]].tool_results] == [
            ("weather", "hail"), ("helper", second.tool_results[1].content)]
        assert team.ran == ["Rome"]  # (the first turn's tools run live, as a replay's prefix does unless serve_tools)
        team.ran.clear()
        served = traced.replay(traj, step=len(traj.steps) - 1, action="final", serve_tools=True)
        assert [[(r.name, r.content) for r in served.steps[t].tool_results] for t in results] == [
            [(r.name, r.content) for r in traj.steps[t].tool_results] for t in results] and team.ran == []


def test_a_replay_diverging_inside_an_agent_tool_says_so_without_opentelemetrys_traceback(caplog):
    """AutoGen's span of the agent run as a tool was closed outside its context as the divergence unwound it:
    'Failed to detach context' and a 40-line traceback came before the one-line error."""
    import pytest
    from agentracer import ReplayDivergence

    traced = agentracer.trace(make_researcher)
    traj = traced.run("Which capital?")
    edited = traj.model_copy(deep=True)
    edited.steps[3].content = "Browser: Elsewhere"
    with caplog.at_level("ERROR"), pytest.raises(ReplayDivergence, match="diverged at step 3, agent 'Browser'"):
        traced.replay(edited, step=8, action="x")
    assert not [r for r in caplog.records if "detach" in r.getMessage()]


def _requests(trajectory):
    return [(c.agent, c.request) for c in trajectory.model_calls()]


def test_a_traced_team_object_runs_its_tool_agent_afresh_each_time_so_its_runs_replay():
    """AutoGen's reset leaves the agent an ``AgentTool`` runs with its conversation: the second run's tool agent
    would ask its model with the first run's messages too, and a replay of it would diverge."""
    traced = agentracer.trace(make_researcher())  # the object, not its factory
    first, second = traced.run("Which capital?"), traced.run("Which capital?")
    assert _requests(second) == _requests(first)
    new = traced.replay(second, step=3, action="Denmark")
    assert new.steps[-1].content == "The capital is Copenhagen."


def test_a_traced_team_object_runs_its_tool_team_afresh_each_time_so_its_runs_replay():
    from autogen_agentchat.tools import TeamTool

    def crew_boss(messages):
        if isinstance(messages[-1], FunctionExecutionResultMessage):
            return "Final: " + messages[-1].content[0].content
        return tool_call("Crew", "c1", task="Write a haiku")

    writer = AssistantAgent("Writer", model_client=RuleClient(lambda m: f"haiku draft {len(m)}"))
    editor = AssistantAgent("Editor", model_client=RuleClient(lambda m: "edited: " + str(m[-1].content)))
    crew = RoundRobinGroupChat([writer, editor], termination_condition=MaxMessageTermination(3))
    tool = TeamTool(crew, name="Crew", description="writing crew", return_value_as_last_message=True)
    boss = AssistantAgent("Boss", model_client=RuleClient(crew_boss, tools=True), tools=[tool],
                          reflect_on_tool_use=True)
    traced = agentracer.trace(RoundRobinGroupChat([boss], termination_condition=MaxMessageTermination(2)))
    first, second = traced.run("compute"), traced.run("compute")
    assert _requests(second) == _requests(first) and second.outcome.answer == "Final: edited: haiku draft 2"
    new = traced.replay(second, step=3, action="a better haiku")
    assert new.outcome.answer == "Final: edited: a better haiku"


def test_a_traced_team_object_resets_the_tool_agents_of_a_society_of_minds_inner_team():
    """A ``SocietyOfMindAgent`` resets its inner team, and AutoGen's reset stops there: the agents its members' tools
    run are reset too, wherever the society stands (a participant or the traced agent itself)."""
    from autogen_agentchat.agents import SocietyOfMindAgent

    def build(single: bool):
        browsing = AssistantAgent("Browser", model_client=RuleClient(lambda m: f"browser saw {len(m)} messages"))
        agent = AssistantAgent("Researcher", model_client=RuleClient(researcher, tools=True),
                               tools=[AgentTool(browsing)], max_tool_iterations=3)
        inner = RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(2))
        society = SocietyOfMindAgent("Society", team=inner, model_client=RuleClient(lambda m: "summary"))
        return society if single else RoundRobinGroupChat([society], termination_condition=MaxMessageTermination(2))

    for single in (False, True):
        traced = agentracer.trace(build(single))
        first, second = traced.run("Which capital?"), traced.run("Which capital?")
        assert _requests(second) == _requests(first), single
        browser = next(s.index for s in second.steps if s.agent == "Browser")
        traced.replay(second, step=browser, action="Denmark")  # (no divergence)


def test_a_tool_agent_keeps_the_messages_its_model_context_was_made_with():
    """AutoGen's reset empties a model context, initial messages too: the reset gives them back, as a fresh agent
    (a factory's) has them on every run."""
    from autogen_core.model_context import UnboundedChatCompletionContext
    from autogen_core.models import AssistantMessage, UserMessage

    def build():
        seed = [UserMessage(content="Answer in French.", source="user"), AssistantMessage(content="D'accord.",
                                                                                          source="Browser")]
        browsing = AssistantAgent("Browser", model_client=RuleClient(lambda m: f"browser saw {len(m)} messages"),
                                  model_context=UnboundedChatCompletionContext(initial_messages=seed))
        agent = AssistantAgent("Researcher", model_client=RuleClient(researcher, tools=True),
                               tools=[AgentTool(browsing)], max_tool_iterations=1)
        return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(3))

    fresh = agentracer.trace(build).run("Which capital?")
    traced = agentracer.trace(build())
    first, second = traced.run("Which capital?"), traced.run("Which capital?")
    assert _requests(first) == _requests(second) == _requests(fresh)
    assert "browser saw 4 messages" in fresh.steps[3].content  # (its two initial messages, the system's, the task)


def test_a_team_object_whose_tool_team_failed_inside_is_refused_with_advice():
    """An agent raising inside a ``TeamTool``'s team is the tool's error result, and AutoGen's reset leaves that team
    stopped: the traced team object's next run refuses it, naming the tool, rather than run it cut short."""
    from autogen_agentchat.tools import TeamTool

    def writer(messages):
        if len(messages) > 2:
            raise RuntimeError("model exploded")
        return "draft"

    def crew_boss(messages):
        if isinstance(messages[-1], FunctionExecutionResultMessage):
            return "Final: " + messages[-1].content[0].content[:40]
        return tool_call("Crew", "c1", task="Write a haiku")

    crew = RoundRobinGroupChat([AssistantAgent("Writer", model_client=RuleClient(writer)),
                                AssistantAgent("Editor", model_client=RuleClient(lambda m: "edited"))],
                               termination_condition=MaxMessageTermination(4))
    boss = AssistantAgent("Boss", model_client=RuleClient(crew_boss, tools=True),
                          tools=[TeamTool(crew, name="Crew", description="writing crew")], reflect_on_tool_use=True)
    traced = agentracer.trace(RoundRobinGroupChat([boss], termination_condition=MaxMessageTermination(2)))
    failed = traced.run("compute")
    assert any(r.is_error and "model exploded" in r.content for s in failed.steps for r in s.tool_results)
    with pytest.raises(agentracer.AgentracerError, match=r"the tool 'Crew'.*model exploded.*trace a factory"):
        traced.run("compute")


def test_the_result_of_a_tool_agent_that_runs_a_tool_agent_of_its_own_can_be_replaced():
    """Boss runs Researcher as a tool, which runs Browser as its own: replacing the outer result copies every step the
    outer tool made, its inner tool's too (they were marked as the inner tool's), and asks none of them."""
    def asks(tool):
        def rule(messages):
            if isinstance(messages[-1], FunctionExecutionResultMessage):
                return "research: " + messages[-1].content[0].content
            return tool_call(tool, "c1", task="look")
        return rule

    def build():
        browsing = AssistantAgent("Browser", model_client=RuleClient(lambda m: f"browser saw {len(m)} messages"))
        researcher = AssistantAgent("Researcher", model_client=RuleClient(asks("Browser"), tools=True),
                                    tools=[AgentTool(browsing)], reflect_on_tool_use=True)
        boss = AssistantAgent("Boss", model_client=RuleClient(asks("Researcher"), tools=True),
                              tools=[AgentTool(researcher)], reflect_on_tool_use=True)
        return RoundRobinGroupChat([boss], termination_condition=MaxMessageTermination(2))

    traced = agentracer.trace(build)
    traj = traced.run("go")
    outer = next(s.index for s in traj.steps if s.agent == "Boss" and s.kind == "tool_result")
    assert {"Researcher", "Browser"} <= {s.agent for s in traj.steps[:outer]}
    CountingClient.live = 0
    new = traced.replay(traj, step=outer, action="X")
    assert [s.content for s in new.steps[:outer]] == [s.content for s in traj.steps[:outer]]
    assert new.outcome.answer == "research: X" and CountingClient.live == 1  # (Boss's reflection alone)
