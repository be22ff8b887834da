"""The AutoGen plugin object: recognises AutoGen teams and agents, describes them, runs them recorded."""

from __future__ import annotations

import sys
from typing import Any

from agentracer import AgentInfo, Run, Step, Trajectory

from .hooks import HOOKS


def _model(agent: Any) -> str | None:
    client = getattr(agent, "_model_client", None)
    if client is None:
        return None
    create_args = getattr(client, "_create_args", None)
    if isinstance(create_args, dict) and create_args.get("model"):
        return str(create_args["model"])
    return type(client).__name__


def _tool_names(agent: Any) -> list[str]:
    """The names an agent's model is offered its tools by (a workbench's overrides applied, handoffs too); none
    where a workbench shows its tools only when asked (an MCP server's): then they are not known here, and a
    replacement's tools are judged by the recorded request's offer alone."""
    names = []
    for workbench in getattr(agent, "_workbench", None) or []:
        tools = getattr(workbench, "_tools", None)
        if tools is None:
            return []
        overrides = getattr(workbench, "_tool_overrides", None) or {}
        names += [getattr(overrides.get(tool.name), "name", None) or tool.name for tool in tools]
    names += [tool.name for tool in getattr(agent, "_handoff_tools", None) or []]
    return names


def why_not_replaceable(trajectory: Trajectory, t: int) -> str | None:
    """Why no action can be put at step ``t`` of an AutoGen run, or None: AutoGen replay replaces what a model
    call produced (a message, tool calls) and tool results; a step no model call of its agent produced (a
    ``ToolCallSummaryMessage`` of an agent that does not reflect on tool use) follows from earlier steps."""
    steps = trajectory.steps
    target = steps[t]
    if target.kind == "tool_result" or (t == 0 and target.agent == "user"):
        return None
    if _produced(target):
        return None
    earlier = [s.index for s in steps[:t] if s.agent == target.agent and _produced(s)]
    hint = f"; replace step {earlier[-1]}, the model output that led to it" if earlier else ""
    return (f"step {t} is a {target.kind} step of {target.agent!r} that no model call produced: AutoGen "
            f"replay replaces model outputs (messages and tool calls) and tool results{hint}")


def _produced(step: Step) -> bool:
    return any(c.produces_step and c.agent == step.agent for c in step.model_calls)


def agent_info(agent: Any) -> AgentInfo:
    """An AutoGen agent (or nested team) as AgentInfo: name, description, system prompt, model, tools."""
    prompts = [str(m.content) for m in getattr(agent, "_system_messages", None) or []]
    return AgentInfo(
        name=str(agent.name), description=getattr(agent, "description", None) or None,
        system_prompt="\n".join(prompts) or None, model=_model(agent), tools=_tool_names(agent),
    )


class AutoGenPlugin:
    """agentracer plugin for autogen-agentchat >= 0.7 group chats and single agents."""

    name = "autogen"

    def matches(self, team: Any) -> bool:
        if "autogen_agentchat" not in sys.modules:  # an AutoGen object implies AutoGen is imported
            return False
        from autogen_agentchat.agents import BaseChatAgent
        from autogen_agentchat.teams import BaseGroupChat

        return isinstance(team, BaseGroupChat | BaseChatAgent)

    def instrument(self) -> None:
        """Install the hooks (idempotent; modules imported later are patched on import)."""
        HOOKS.install()

    def uninstrument(self) -> None:
        """Restore AutoGen's original functions."""
        HOOKS.remove()

    def describe(self, team: Any) -> list[AgentInfo]:
        from autogen_agentchat.teams import MagenticOneGroupChat

        participants = getattr(team, "_participants", None)
        infos = [agent_info(a) for a in (participants if participants is not None else [team])]
        if isinstance(team, MagenticOneGroupChat):
            infos.append(AgentInfo(
                name=team._group_chat_manager_name, model=_model(team),
                description="Magentic-One orchestrator: keeps the task and progress ledgers, instructs agents",
            ))
        return infos

    def why_not_replaceable(self, trajectory: Trajectory, step: int) -> str | None:
        """See ``why_not_replaceable`` (the module's)."""
        return why_not_replaceable(trajectory, step)

    def keeps_its_loop(self, team: Any) -> bool:
        """Whether ``team`` stays bound to the event loop it first ran in, once that loop is closed too: a group chat
        does (its runtime's queues), and fails in any other."""
        from autogen_agentchat.teams import BaseGroupChat

        return isinstance(team, BaseGroupChat)

    def fresh(self, team: Any) -> Any:
        """The team itself (``areset`` resets it in the run's event loop)."""
        return team

    async def areset(self, team: Any) -> None:
        """Reset a traced team object that ran before; ``UsageError`` when AutoGen cannot."""
        from .runner import reset_if_used

        await reset_if_used(team)

    async def arun(self, team: Any, task: str, run: Run) -> Any:
        from .runner import run_team

        return await run_team(team, task, run)
