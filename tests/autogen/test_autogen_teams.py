"""Selector, Swarm and Magentic-One teams: speaker selection, handoffs, the orchestrator's ledgers."""

from __future__ import annotations

import json

import agentracer
import pytest
from ag_helpers import CountingClient, RuleClient, after_tool, counting, tool_call
from agentracer import ReplayError
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import HandoffTermination, MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import MagenticOneGroupChat, RoundRobinGroupChat, SelectorGroupChat, Swarm

# ----------------------------------------------------------------------------- SelectorGroupChat


def selector_team():
    agents = [AssistantAgent(n, model_client=counting([f"{n} speaks", f"{n} again"]), description=f"the {n}")
              for n in ("planner", "coder", "reviewer")]
    selector = counting(["coder", "planner", "reviewer", "coder"])
    return SelectorGroupChat(agents, model_client=selector, termination_condition=MaxMessageTermination(4))


def test_speaker_selection_is_a_model_call_of_the_manager_not_a_step():
    traj = agentracer.trace(selector_team).run("plan and code")
    assert [(s.agent, s.content) for s in traj.steps] == [
        ("user", "plan and code"), ("coder", "coder speaks"), ("planner", "planner speaks"),
        ("reviewer", "reviewer speaks")]
    for step in traj.steps[1:]:
        (selection,) = [c for c in step.model_calls if not c.produces_step]
        (own,) = [c for c in step.model_calls if c.produces_step]
        assert selection.agent == "SelectorGroupChatManager" and not selection.produces_step
        assert selection.response["content"] == step.agent
        assert "the planner" in selection.request["messages"][-1]["content"] or any(
            "the planner" in m["content"] for m in selection.request["messages"])
        assert own.agent == step.agent and own.produces_step
        assert step.model_calls == [selection, own]  # in the order they were made: the step's own call is last
    assert all(s.agent != "SelectorGroupChatManager" for s in traj.steps)


def test_a_traced_run_stores_nothing_on_the_team_or_its_manager():
    """The manager's actor is kept with the run, not on the manager (in CPython 3.11 writing into an object's
    ``__dict__`` slows every later attribute read of it, and a manager reads its own all through a run)."""
    team = selector_team()
    traj = agentracer.trace(team).run("plan and code")
    assert len(traj.steps) == 4
    manager = team._runtime._instantiated_agents  # the runtime's agents: the manager and the agents' containers
    assert manager and all(not any(str(name).startswith("_agentracer") for name in vars(agent))
                           for agent in manager.values())
    assert not any(name.startswith("_agentracer") for name in vars(team))


def test_selector_replay_serves_the_selection_of_step_t_and_selects_live_after():
    traced = agentracer.trace(selector_team)
    traj = traced.run("plan and code")
    CountingClient.live = 0
    new = traced.replay(traj, step=2, action="REPLACED PLAN")
    assert [s.content for s in new.steps[:2]] == [s.content for s in traj.steps[:2]]
    assert new.steps[2].agent == "planner" and new.steps[2].content == "REPLACED PLAN"
    # live after t: one selection (fresh selector answers "coder") and that agent's answer
    assert CountingClient.live == 2 and new.steps[3].agent == "coder"
    modes = [sorted((c.agent, c.source) for c in s.model_calls) for s in new.steps[1:3]]
    assert modes == [[("SelectorGroupChatManager", "cassette"), ("coder", "cassette")],
                     [("SelectorGroupChatManager", "cassette"), ("planner", "replacement")]]


# ----------------------------------------------------------------------------- Swarm


def swarm_team():
    alice = AssistantAgent("alice", model_client=counting([tool_call("transfer_to_bob")], tools=True),
                           handoffs=["bob"], system_message="You route requests.")
    bob = AssistantAgent("bob", model_client=counting(["bob solved it TERMINATE"], tools=True),
                         handoffs=["alice"])
    return Swarm([alice, bob], termination_condition=TextMentionTermination("TERMINATE"))


def test_swarm_handoffs_are_steps():
    traj = agentracer.trace(swarm_team).run("help me")
    assert [(s.agent, s.kind) for s in traj.steps] == [
        ("user", "message"), ("alice", "tool_call"), ("alice", "tool_result"), ("alice", "handoff"),
        ("bob", "message")]
    handoff = traj.steps[3]
    assert handoff.metadata["target"] == "bob" and "bob" in handoff.content
    assert traj.steps[1].tool_calls[0].name == "transfer_to_bob"
    assert {a.name: a.tools for a in traj.agents} == {"alice": ["transfer_to_bob"], "bob": ["transfer_to_alice"]}


def test_swarm_replay_can_reroute_a_handoff():
    def team():
        alice = AssistantAgent("alice", model_client=counting([tool_call("transfer_to_bob")], tools=True),
                               handoffs=["bob", "user"])
        bob = AssistantAgent("bob", model_client=counting(["bob solved it TERMINATE"], tools=True))
        return Swarm([alice, bob], termination_condition=TextMentionTermination("TERMINATE")
                     | HandoffTermination(target="user"))

    traced = agentracer.trace(team)
    traj = traced.run("help me")
    new = traced.replay(traj, step=1, action={"tool_calls": [{"name": "transfer_to_user", "arguments": {}}]})
    assert [(s.agent, s.kind) for s in new.steps] == [
        ("user", "message"), ("alice", "tool_call"), ("alice", "tool_result"), ("alice", "handoff")]
    assert new.steps[3].metadata["target"] == "user"


# ----------------------------------------------------------------------------- Magentic-One


def _ledger(satisfied: bool, instruction: str) -> str:
    entry = {"reason": "scripted", "answer": None}
    return json.dumps({
        "is_request_satisfied": {**entry, "answer": satisfied},
        "is_in_loop": {**entry, "answer": False},
        "is_progress_being_made": {**entry, "answer": True},
        "next_speaker": {**entry, "answer": "coder"},
        "instruction_or_question": {**entry, "answer": instruction},
    })


def orchestrator_rule(messages):
    prompt = str(messages[-1].content)
    if "pre-survey" in prompt:
        return "FACTS: 2 and 3 are integers."
    if prompt.startswith("Fantastic."):
        return "PLAN: ask the coder to print the sum."
    if "Recall we are working on the following request" in prompt:
        coder_spoke = any(getattr(m, "source", None) == "coder" for m in messages[:-1])
        return _ledger(coder_spoke, "Write Python that prints 2 + 3.")
    return "FINAL: the answer is 5."


def magentic_team():
    coder = AssistantAgent("coder", model_client=counting(["print(2 + 3)", "print(10)"]),
                           description="writes Python")
    return MagenticOneGroupChat([coder], model_client=RuleClient(orchestrator_rule), max_turns=5)


def test_magentic_one_ledger_and_instructions_are_orchestrator_steps():
    traj = agentracer.trace(magentic_team).run("print the sum of 2 and 3")
    orchestrator = "MagenticOneOrchestrator"
    assert [(s.agent, s.kind) for s in traj.steps] == [
        ("user", "message"), (orchestrator, "ledger"), (orchestrator, "instruction"), ("coder", "message"),
        (orchestrator, "message")]
    ledger, instruction, _, final = traj.steps[1:]
    assert "FACTS" in ledger.content and "PLAN" in ledger.content and len(ledger.model_calls) == 2
    assert instruction.content == "Write Python that prints 2 + 3."
    assert instruction.metadata["progress_ledger"]["next_speaker"]["answer"] == "coder"
    assert final.content == "FINAL: the answer is 5." and traj.outcome.answer == final.content
    assert orchestrator in [a.name for a in traj.agents]


def test_magentic_one_replay_replaces_an_instruction_inside_the_ledger():
    traced = agentracer.trace(magentic_team)
    traj = traced.run("print the sum of 2 and 3")
    CountingClient.live = 0
    new = traced.replay(traj, step=2, action="Write Python that prints 2 * 5.")
    assert new.steps[2].kind == "instruction" and new.steps[2].content == "Write Python that prints 2 * 5."
    replaced = new.steps[2].model_calls[0]
    assert replaced.source == "replacement"
    assert json.loads(replaced.response["content"])["next_speaker"]["answer"] == "coder"
    assert new.steps[3].agent == "coder"
    # the coder's live request carries the replaced instruction
    assert "Write Python that prints 2 * 5." in json.dumps(new.steps[3].model_calls[0].request)
    assert [c.source for c in new.steps[1].model_calls] == ["cassette", "cassette"]


def test_magentic_one_replay_of_the_task_ledger_replaces_its_plan_and_keeps_its_fact_sheet():
    """The ledger step is made by two calls, the fact sheet then the plan: the action takes the place of the last."""
    traced = agentracer.trace(magentic_team)
    traj = traced.run("print the sum of 2 and 3")
    new = traced.replay(traj, step=1, action="PLAN: ask the coder to print 2 * 3.")
    assert [c.source for c in new.steps[1].model_calls] == ["cassette", "replacement"]
    ledger = new.steps[1].content
    assert new.steps[1].kind == "ledger" and new.steps[1].replaced
    assert "FACTS: 2 and 3 are integers." in ledger and "PLAN: ask the coder to print 2 * 3." in ledger
    assert "print the sum." not in ledger
    with pytest.raises(ReplayError, match="step 1 is a Magentic-One task ledger.*give the new plan, not a whole ledger"):
        traced.replay(traj, step=1, action=ledger.replace("2 * 3", "2 - 3"))  # the whole ledger, edited


def test_magentic_one_replay_of_the_final_answer_keeps_the_last_ledger_and_the_step_kind():
    """The final answer's step is made by two calls: the last progress ledger (request satisfied, no instruction)
    and the answer itself. Only the answer is replaced: the step stays a message, not an instruction."""
    traced = agentracer.trace(magentic_team)
    traj = traced.run("print the sum of 2 and 3")
    final = len(traj.steps) - 1
    new = traced.replay(traj, step=final, action="FINAL: the answer is 6.")
    assert (new.steps[final].kind, new.steps[final].content) == ("message", "FINAL: the answer is 6.")
    assert new.outcome.answer == "FINAL: the answer is 6."
    last_ledger = [c for c in new.steps[final].model_calls if "is_request_satisfied" in str(c.response)]
    recorded = [c for c in traj.steps[final].model_calls if "is_request_satisfied" in str(c.response)]
    assert last_ledger and [c.response["content"] for c in last_ledger] == [c.response["content"] for c in recorded]


def nested_magentic_one(how: str):
    """A Magentic-One team that is not the traced one: a participant, a SocietyOfMindAgent's team, a TeamTool's."""
    from autogen_agentchat.agents import SocietyOfMindAgent
    from autogen_agentchat.tools import TeamTool

    def build():
        coder = AssistantAgent("coder", model_client=RuleClient(lambda m: "print(2 + 3)"), description="writes Python")
        mag = MagenticOneGroupChat([coder], model_client=RuleClient(orchestrator_rule), max_turns=5, name="mag",
                                   description="the Magentic-One team")
        if how == "participant":
            planner = AssistantAgent("planner", model_client=RuleClient(lambda m: "plan"))
            return RoundRobinGroupChat([planner, mag], max_turns=2)
        if how == "society":
            society = SocietyOfMindAgent("society", team=mag, model_client=RuleClient(lambda m: "summary"))
            return RoundRobinGroupChat([society], max_turns=1)
        tool = TeamTool(mag, name="mag_tool", description="solves", return_value_as_last_message=True)
        client = RuleClient(after_tool(tool_call("mag_tool", task="print the sum"), "boss done"), tools=True)
        return RoundRobinGroupChat([AssistantAgent("boss", model_client=client, tools=[tool])], max_turns=1)

    return build


@pytest.mark.parametrize("how", ["participant", "society", "tool"])
def test_a_nested_magentic_one_orchestrator_makes_its_own_ledger_and_instruction_steps(how):
    """The orchestrator asks its model in its own handlers, not in a speaker selection: its calls are its own (not
    the agent's or team's it runs inside), its steps are ledgers and instructions, and a replay serves them."""
    traced = agentracer.trace(nested_magentic_one(how))
    traj = traced.run("print the sum of 2 and 3")
    orchestrator = "MagenticOneOrchestrator"
    assert traj.unattached_calls == []
    mine = [(s.kind, len(s.model_calls)) for s in traj.steps if s.agent == orchestrator]
    assert mine == [("ledger", 2), ("instruction", 1), ("message", 2)]
    assert all(c.agent == s.agent for s in traj.steps for c in s.model_calls)
    coder = next(s.index for s in traj.steps if s.agent == "coder")
    CountingClient.live = 0
    new = traced.replay(traj, step=coder, action="print(5)")
    assert new.steps[coder].content == "print(5)"
    assert all(c.source == "cassette" for s in new.steps[:coder] for c in s.model_calls)
    instruction = next(s.index for s in traj.steps if s.kind == "instruction")
    new = traced.replay(traj, step=instruction, action="Print 2 * 5.")
    assert (new.steps[instruction].kind, new.steps[instruction].content) == ("instruction", "Print 2 * 5.")


def test_a_magentic_one_orchestrator_that_raises_holds_its_calls_in_an_event_step_a_replay_can_replace():
    """A progress ledger that never parses: AutoGen asks 10 times, then raises. Its calls are at the orchestrator's event
    step; a replay puts a ledger that parses in place of the last retry."""

    def never_json(messages):
        prompt = str(messages[-1].content)
        if "pre-survey" in prompt or prompt.startswith("Fantastic."):
            return orchestrator_rule(messages)
        return "I think the coder should go next."

    def team():
        coder = AssistantAgent("coder", model_client=RuleClient(lambda m: "print(2 + 3)"), description="codes")
        return MagenticOneGroupChat([coder], model_client=RuleClient(never_json))

    traced = agentracer.trace(team, raise_on_error=False)
    traj = traced.run("print the sum of 2 and 3")
    assert "Failed to parse ledger information" in traj.outcome.error and traj.unattached_calls == []
    failed = traj.steps[-1]
    assert (failed.agent, failed.kind, len(failed.model_calls)) == ("MagenticOneOrchestrator", "event", 10)
    assert "Failed to parse ledger information" in failed.content
    new = traced.replay(traj, step=failed.index, action=_ledger(False, "Write Python that prints 2 + 3."))
    assert [c.source for c in new.steps[failed.index].model_calls] == ["cassette"] * 9 + ["replacement"]
    assert (new.steps[failed.index].kind, new.steps[failed.index].content) == (
        "instruction", "Write Python that prints 2 + 3.")
    assert new.steps[failed.index + 1].agent == "coder"


def nested_team():
    client = counting([f"reply {i}" for i in range(20)])
    inner = RoundRobinGroupChat([AssistantAgent("coder", model_client=client),
                                 AssistantAgent("reviewer", model_client=client)],
                                termination_condition=MaxMessageTermination(2), name="inner",
                                description="the coder and the reviewer")
    return RoundRobinGroupChat([AssistantAgent("planner", model_client=client), inner],
                               termination_condition=MaxMessageTermination(5))


def test_a_nested_team_records_the_messages_autogen_reports_once_each():
    """A team that is a participant gets the outer conversation as its task: not recorded a second time."""
    import asyncio

    traj = agentracer.trace(nested_team).run("do it")
    agentracer.uninstrument()
    result = asyncio.run(nested_team().run(task="do it"))
    assert [(s.agent, s.content) for s in traj.steps] == [(m.source, m.content) for m in result.messages]
    assert ("coder", "reply 2") in [(s.agent, s.content) for s in traj.steps]

    CountingClient.live = 0
    t = next(s.index for s in traj.steps if s.agent == "coder")
    new = agentracer.trace(nested_team).replay(traj, step=t, action="REPLACED")
    assert [s.content for s in new.steps[:t]] == [s.content for s in traj.steps[:t]]
    assert new.steps[t].agent == "coder" and new.steps[t].content == "REPLACED"
    assert all(c.source != "live" for s in new.steps[:t] for c in s.model_calls)


def nested_selector_team():
    coder = AssistantAgent("coder", model_client=RuleClient(lambda m: "code"), description="codes")
    tester = AssistantAgent("tester", model_client=RuleClient(lambda m: "tests pass"), description="tests")
    inner = SelectorGroupChat([coder, tester], model_client=RuleClient(lambda m: "coder"), name="devteam",
                              termination_condition=MaxMessageTermination(2), description="the dev team")
    planner = AssistantAgent("planner", model_client=RuleClient(lambda m: "plan"), description="plans")
    return RoundRobinGroupChat([planner, inner], termination_condition=MaxMessageTermination(6))


def test_a_nested_selectors_selection_calls_are_its_managers_and_replays_past_them_serve_them():
    traced = agentracer.trace(nested_selector_team)
    traj = traced.run("build")
    assert traj.unattached_calls == []
    selections = [c for s in traj.steps for c in s.model_calls if c.agent not in ("planner", "coder", "tester")]
    assert selections and all(not c.produces_step for c in selections)
    last = len(traj.steps) - 1
    CountingClient.live = 0
    new = traced.replay(traj, step=last, action="REPLACED")
    assert new.steps[last].content == "REPLACED" and CountingClient.live == 0


def society_of_mind_team():
    from autogen_agentchat.agents import SocietyOfMindAgent

    writer = AssistantAgent("writer", model_client=RuleClient(lambda m: "draft"))
    editor = AssistantAgent("editor", model_client=RuleClient(lambda m: "edited"))
    inner = RoundRobinGroupChat([writer, editor], termination_condition=MaxMessageTermination(3))
    society = SocietyOfMindAgent("society", team=inner, model_client=RuleClient(lambda m: "summary"))
    critic = AssistantAgent("critic", model_client=RuleClient(lambda m: "ok"))
    return RoundRobinGroupChat([society, critic], termination_condition=MaxMessageTermination(3))


def test_a_society_of_mind_agents_inner_team_is_recorded_once_each_message():
    """The society streams its inner team's messages on as its own: they are recorded where they are made."""
    import asyncio

    traj = agentracer.trace(society_of_mind_team).run("write")
    agentracer.uninstrument()
    result = asyncio.run(society_of_mind_team().run(task="write"))
    assert [(s.agent, s.content) for s in traj.steps] == [(m.source, m.content) for m in result.messages]
    assert [[c.agent for c in s.model_calls] for s in traj.steps] == [[], ["writer"], ["editor"], ["society"],
                                                                      ["critic"]]


def graph_flow():
    from autogen_agentchat.teams import DiGraphBuilder, GraphFlow

    writer = AssistantAgent("writer", model_client=RuleClient(lambda m: "draft"))
    editor = AssistantAgent("editor", model_client=RuleClient(lambda m: "edited " + str(m[-1].content)))
    critic = AssistantAgent("critic", model_client=RuleClient(lambda m: "critique of " + str(m[-1].content)))
    builder = DiGraphBuilder()
    builder.add_node(writer).add_node(editor).add_node(critic)
    builder.add_edge(writer, editor).add_edge(editor, critic)
    return GraphFlow([writer, editor, critic], graph=builder.build())


def test_a_graph_flow_is_recorded_as_autogen_streams_it_and_replays_along_its_edges():
    import asyncio

    traced = agentracer.trace(graph_flow)
    traj = traced.run("write")
    agentracer.uninstrument()
    result = asyncio.run(graph_flow().run(task="write"))
    assert [(s.agent, s.content) for s in traj.steps] == [(m.source, m.content) for m in result.messages]
    CountingClient.live = 0
    new = traced.replay(traj, step=2, action="EDITED")
    assert [s.content for s in new.steps] == ["write", "draft", "EDITED", "critique of EDITED"]
    assert CountingClient.live == 1


def test_a_selector_recording_is_refused_by_a_round_robin_team_of_the_same_agents():
    traj = agentracer.trace(selector_team).run("plan and code")
    assert traj.metadata["team_type"] == "SelectorGroupChat"

    def round_robin():
        agents = [AssistantAgent(n, model_client=counting([f"{n} speaks"]), description=f"the {n}")
                  for n in ("planner", "coder", "reviewer")]
        return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(4))

    with pytest.raises(ReplayError, match="recorded with a SelectorGroupChat, this team is a RoundRobinGroupChat"):
        agentracer.trace(round_robin).replay(traj, step=2, action="x")



async def test_a_managers_actor_is_its_own_even_where_an_earlier_managers_memory_is_reused():
    """Managers' actors are kept by the manager's id during a run; a manager gone before the next one is made (a team
    run as a tool, then another) must not lend the next one its name (CPython reuses a freed object's address)."""
    from agentracer.record import Run
    from agentracer.schema import Trajectory

    from agentracer_plugins.autogen.context import ACTOR, RUN_STATE, RunState
    from agentracer_plugins.autogen.hooks import _patch_speaker_selection

    seen = []

    async def selection(self, thread):  # a selection that would ask a model: its actor is the manager
        seen.append(ACTOR.get().name)
        return "x"

    class Manager:
        select_speaker = _patch_speaker_selection(selection)

        def __init__(self, name):
            self._name = name

    names = [f"manager_{i}" for i in range(5)]
    with Run(Trajectory(framework="autogen", task="t")).activate():
        token = RUN_STATE.set(RunState())
        try:
            for name in names:
                await Manager(name).select_speaker([])  # (each manager is freed before the next is made)
        finally:
            RUN_STATE.reset(token)
    assert seen == names
