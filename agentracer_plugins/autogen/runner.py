"""Run an AutoGen team (or a single agent) under a recording: every message and event becomes a step."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from agentracer import ReplayError, Run, UsageError
from agentracer.replay import TOOL_RESULTS, check_offered_tools, tool_results_example
from agentracer.team import error_summary
from autogen_agentchat.agents import BaseChatAgent
from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import BaseChatMessage
from autogen_agentchat.teams import BaseGroupChat, MagenticOneGroupChat
from autogen_agentchat.tools import AgentTool, TeamTool
from autogen_core import CancellationToken
from pydantic import ValidationError

from .codec import tool_calls_of
from .context import ACTOR, FAILED_RUN, RUN_STATE, Actor, RunState
from .plugin import why_not_replaceable
from .steps import TASK_LEDGER_OPENING, record_message

MAX_TURN_REASONS = ("Maximum number of turns", "Max rounds reached")


def manager_name(team: Any) -> str | None:
    """The group chat manager's name (the Magentic-One orchestrator's, for that team)."""
    return getattr(team, "_group_chat_manager_name", None)


def default_actor(team: Any) -> Actor:
    """Who calls the model outside any agent's turn: the manager (selection: no step) or the orchestrator."""
    if isinstance(team, BaseChatAgent):
        return Actor(team.name)
    name = manager_name(team) or "manager"
    return Actor(name, produces_step=isinstance(team, MagenticOneGroupChat))


def task_for_replay(run: Run, task: str) -> str:
    """Check the replay target before anything runs; the task to run (replaced when step 0 is replaced)."""
    if run.plan is None or run.cassette is None:
        return task
    t, action = run.plan.step, run.plan.action
    steps = run.cassette.trajectory.steps
    target = steps[t]
    if t == 0 and target.agent == "user":
        if not isinstance(action, str):
            raise ReplayError("step 0 is the user's task: its replacement must be a text")
        run.count_substitution()
        return action
    if target.kind == "ledger" and isinstance(action, str) and action.lstrip().startswith(TASK_LEDGER_OPENING):
        raise ReplayError(f"step {t} is a Magentic-One task ledger, and its replacement takes the place of the plan "
                          "(the fact sheet is kept): give the new plan, not a whole ledger")
    if any(c.model == "human" for c in target.model_calls) and not isinstance(action, str):
        raise ReplayError(f"step {t} is a human's input (a UserProxyAgent): its replacement must be a text")
    try:
        calls = tool_calls_of(action)
    except ValueError as exc:
        raise ReplayError(f"the action for step {t} is not a valid tool-call action: {exc}") from None
    if calls:
        check_offered_tools(run.cassette, run.plan)

    if target.kind == "tool_result":
        if len(target.tool_results) != 1 and not (isinstance(action, dict) and TOOL_RESULTS in action):
            raise ReplayError(
                f"step {t} holds {len(target.tool_results)} tool results of parallel tool calls: say which to "
                f"replace, {tool_results_example(target.tool_results[0].call_id)} (the others run), "
                f"or replace the tool call step that asked for them")
        return task
    refused = why_not_replaceable(run.cassette.trajectory, t)
    if refused is not None:
        raise ReplayError(refused)
    return task


RESET_TIMEOUT_S = 10.0  # AutoGen resets a team in milliseconds, or never (after some errors inside it)


async def reset_if_used(team: Any) -> None:
    """Make a traced team object start as it was built: reset it if it ran before, with the agents and teams its
    agents' tools run (``AgentTool``, ``TeamTool``; a ``SocietyOfMindAgent``'s inner team's too), which AutoGen's reset
    leaves as they were (a crew that remembers the last run asks its model what the recording never saw), and give
    each agent back the messages its model context was made with (AutoGen's reset drops them). A team or crew whose
    last run failed inside it cannot start again: ``UsageError``, advising a factory."""
    await _reset_one(team, "this AutoGen team object")
    agents, done = _agents_in(team), {id(team)}
    crews = [(crew, name) for agent in agents for crew, name in tool_crews(agent)]
    while crews:  # (a crew's own agents may run crews of their own)
        crew, name = crews.pop()
        if id(crew) in done:
            continue
        done.add(id(crew))
        await _reset_one(crew, f"the team or agent that the tool {name!r} of this AutoGen team object runs")
        inner = _agents_in(crew)
        agents += inner
        crews += [(more, more_name) for agent in inner for more, more_name in tool_crews(agent)]
    for agent in agents:
        await _restore_initial_messages(agent)


def _agents_in(team: Any) -> list[Any]:
    """The agents of ``team`` (``_members``) and those of each ``SocietyOfMindAgent``'s inner team among them."""
    agents = []
    for member in _members(team):
        agents.append(member)
        inner = getattr(member, "_team", None)  # (a SocietyOfMindAgent's team)
        if isinstance(inner, BaseGroupChat):
            agents += _agents_in(inner)
    return agents


def tool_crews(agent: Any) -> list[tuple[Any, str]]:
    """The agents and teams that ``agent``'s tools run (``AgentTool``, ``TeamTool``; those of its workbenches too), each
    with its tool's name."""
    tools = list(getattr(agent, "_tools", None) or ())
    for bench in getattr(agent, "_workbench", None) or ():
        tools.extend(getattr(bench, "_tools", None) or ())
    crews = [(getattr(tool, "_agent", None) if isinstance(tool, AgentTool) else getattr(tool, "_team", None),
              str(getattr(tool, "name", "?"))) for tool in tools if isinstance(tool, AgentTool | TeamTool)]
    return [(crew, name) for crew, name in crews if crew is not None]


async def _reset_one(team: Any, what: str) -> None:
    """Reset a group chat that ran before, or an agent with a conversation in its model context."""
    # (``getattr``, not ``team.__dict__``: in CPython 3.11 reading an object's ``__dict__`` slows its attribute reads)
    failed = getattr(team, FAILED_RUN, None) if isinstance(team, BaseGroupChat) else None
    if failed is not None:
        raise UsageError(
            f"{what} cannot run again: its last run failed inside the team ({failed}), and AutoGen's team.reset() "
            "leaves such a team stopped (its next run ends at once, as 'The group chat is stopped.'); trace a factory "
            "that builds a fresh team per run")
    if isinstance(team, BaseGroupChat) and getattr(team, "_initialized", False):
        try:
            await asyncio.wait_for(team.reset(), RESET_TIMEOUT_S)
        except Exception as exc:  # the wait timed out, or the reset raised as it was cancelled
            why = f"not done in {RESET_TIMEOUT_S:g} s" if isinstance(exc, TimeoutError) else (
                f"{type(exc).__name__}: {exc}")
            raise UsageError(
                f"{what} could not be reset after its last run ({why}): AutoGen's team.reset() never returns after "
                "some errors inside a team, so it cannot run again; trace a factory that builds a fresh team per "
                "run") from exc
    elif isinstance(team, BaseChatAgent):
        context = getattr(team, "_model_context", None)
        if context is not None and await context.get_messages():
            await team.on_reset(CancellationToken())


async def _restore_initial_messages(agent: Any) -> None:
    """Give an agent whose model context is empty the messages the context was made with (``initial_messages``:
    instructions, examples), which AutoGen's reset drops though a fresh agent has them."""
    context = getattr(agent, "_model_context", None)
    initial = getattr(context, "_initial_messages", None)
    if context is not None and initial and not await context.get_messages():
        for message in initial:
            await context.add_message(message)


def _finish(run: Run, result: TaskResult | None) -> Any:
    if result is None:
        return None
    outcome = run.trajectory.outcome
    outcome.stop_reason = result.stop_reason
    if result.stop_reason and result.stop_reason.startswith(MAX_TURN_REASONS):
        outcome.success = False
        run.trajectory.metadata["max_turns_reached"] = True
    answers = [m for m in result.messages if isinstance(m, BaseChatMessage) and m.source != "user"]
    return answers[-1].to_model_text() if answers else None


def _members(team: Any) -> list[Any]:
    """The agents of ``team``: a single agent, or a group chat's participants (nested teams' included)."""
    if isinstance(team, BaseGroupChat):
        return [agent for member in getattr(team, "_participants", []) for agent in _members(member)]
    return [team]


def check_structured_action(team: Any, run: Run) -> None:
    """A text replacement for an agent with a structured output (``output_content_type``) must parse as that model:
    AutoGen would fail on it inside the team. So must a text in place of its tool call (its answer, then)."""
    if run.plan is None or run.cassette is None or not isinstance(run.plan.action, str | dict):
        return
    t, action = run.plan.step, run.plan.action
    if run.cassette.trajectory.steps[t].kind not in ("message", "tool_call"):
        return
    name = run.cassette.trajectory.steps[t].agent
    agent = next((a for a in _members(team) if getattr(a, "name", None) == name), None)
    model = getattr(agent, "_output_content_type", None)
    if model is None or (isinstance(action, dict) and "tool_calls" in action):
        return
    try:
        model.model_validate_json(action) if isinstance(action, str) else model.model_validate(action)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the whole value"
        raise ReplayError(f"the action for step {t} is not a {model.__name__}, the structured output of {name!r}: "
                          f"{where}: {first.get('msg')}") from None


async def run_team(team: Any, task: str, run: Run) -> Any:
    """Run ``team`` on ``task``, recording each message/event as a step; return the last message's text."""
    task = task_for_replay(run, task)
    check_structured_action(team, run)
    orchestrator = manager_name(team) if isinstance(team, MagenticOneGroupChat) else None
    state = RunState(orchestrators={orchestrator} if orchestrator else set())
    actor_token, state_token = ACTOR.set(default_actor(team)), RUN_STATE.set(state)
    records_itself = isinstance(team, BaseGroupChat)  # the hooks record group chats where messages are made
    # no cancellation token, as ``team.run(task)`` passes none: AutoGen links every future of a run to a token
    stream = team.run_stream(task=task)
    result: TaskResult | None = None
    try:
        async for item in stream:
            if isinstance(item, TaskResult):
                result = item
                continue
            if records_itself is False:  # a single agent: its stream is in step with it
                record_message(run, item, state)
    except BaseException as exc:
        if isinstance(exc, Exception) and isinstance(team, BaseGroupChat):
            setattr(team, FAILED_RUN, error_summary(exc, limit=200))
        with contextlib.suppress(BaseException):
            await stream.aclose()
        raise
    finally:
        RUN_STATE.reset(state_token)
        ACTOR.reset(actor_token)
        # the message cache goes when the run does (contexts AutoGen's tasks copied keep the state until the garbage
        # collector frees them); the recorded requests hold their encoder until the run settles them
        state.messages = None
        state.recorded = {}
        state.manager_actors = {}
    return _finish(run, result)
