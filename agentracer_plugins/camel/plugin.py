"""The CAMEL plugin object: recognises ChatAgent, RolePlaying (OWL's society too) and Workforce teams."""

from __future__ import annotations

import sys
from collections.abc import Awaitable
from typing import Any

from agentracer import AgentInfo, ReplayError, Run
from agentracer.replay import check_offered_tools

from . import hooks, runner
from .codec import text
from .naming import team_members
from .options import CamelOptions, Configured
from .streams import streaming_agent


def _camel_classes() -> tuple[Any, Any, Any]:
    from camel.agents import ChatAgent
    from camel.societies import RolePlaying
    from camel.societies.workforce import Workforce

    return ChatAgent, RolePlaying, Workforce


def _from_camel(obj: Any) -> bool:
    return any(cls.__module__.split(".")[0] == "camel" for cls in type(obj).__mro__)


def _agent_info(name: str, agent: Any, description: str | None) -> AgentInfo:
    system = getattr(agent, "system_message", None)
    backend = getattr(agent, "model_backend", None)
    model = getattr(backend, "model_type", None)
    tools = sorted(getattr(agent, "tool_dict", {}) or {}) if agent is not None else []
    prompt = getattr(system, "content", None)
    return AgentInfo(name=name, system_prompt=text(prompt) if prompt is not None else None, description=description,
                     model=text(model) if model is not None else None, tools=tools)


_TASK_AGENTS = (  # (RolePlaying's switch, its kwargs, the role name CAMEL gives the agent, what it does)
    ("with_task_specify", "task_specify_agent_kwargs", "Task Specifier", "rewrites the task before the society runs"),
    ("with_task_planner", "task_planner_agent_kwargs", "Task Planner", "adds a plan to the task before the society runs"),
)


def _task_agents(team: Any) -> list[AgentInfo]:
    """The agents a RolePlaying asks once as it is made (CAMEL keeps no reference to them): their calls are the
    run's first steps, under CAMEL's role names."""
    from camel.societies import RolePlaying

    if not isinstance(team, RolePlaying):
        return []
    found = []
    for switch, kwargs_name, name, does in _TASK_AGENTS:
        if getattr(team, switch, False):
            model = (getattr(team, kwargs_name, None) or {}).get("model") or getattr(team, "model", None)
            model_type = getattr(model, "model_type", None)
            found.append(AgentInfo(name=name, description=f"CAMEL's {name.lower()}: {does}",
                                   model=text(model_type) if model_type is not None else None))
    return found


def _check_streaming_replay(run: Run, streaming: list[str]) -> None:
    """A streaming step runs its tools inside CAMEL's chunk loop, where a replay cannot put a result in place of
    the tool's: with streaming agents, tools run live and only model outputs are replaced."""
    assert run.plan is not None and run.cassette is not None
    if run.plan.serve_tools:
        raise ReplayError(f"agents {streaming} stream (stream=True): their tools always run live, so a replay cannot "
                          "serve recorded tool results; replay without serve_tools")
    target = run.cassette.trajectory.steps[run.plan.step]
    if target.kind == "tool_result" and target.agent in streaming:
        raise ReplayError(f"step {run.plan.step} is a tool result of {target.agent!r}, which streams (stream=True): "
                          "its tools run live, so replace the tool call step before it instead")


class CamelPlugin:
    """agentracer's plugin for camel-ai (>= 0.2.84): ChatAgent, RolePlaying and subclasses, Workforce."""

    name = "camel"

    @staticmethod
    def _unwrap(team: Any) -> tuple[Any, CamelOptions]:
        if isinstance(team, Configured):
            return team.team, team.options
        return team, CamelOptions()

    def matches(self, team: Any) -> bool:
        inner, _ = self._unwrap(team)
        return _from_camel(inner) and isinstance(inner, _camel_classes())

    def instrument(self) -> None:
        hooks.instrument()

    def records_build_calls(self) -> bool:
        """Whether a factory's build may ask CAMEL's models (a RolePlaying's task specifier and planner do, as the
        society is made): then the hooks go in before the factory runs, so the run records those calls."""
        return "camel" in sys.modules

    def uninstrument(self) -> None:
        hooks.uninstrument()

    def team_kind(self, team: Any) -> str:
        """The CAMEL team's class, run options or not."""
        return type(self._unwrap(team)[0]).__qualname__

    def describe(self, team: Any) -> list[AgentInfo]:
        inner, _ = self._unwrap(team)
        return [*_task_agents(inner),
                *(_agent_info(name, agent, description) for name, agent, description in team_members(inner))]

    def shape_agents(self, agents: list[AgentInfo]) -> list[str]:
        """The team's own agents, without the task agents a RolePlaying asks as it is made (recordings made before
        they were described still replay; whether a run asked them shows in its steps, which a replay checks)."""
        task_agents = {name for _, _, name, _ in _TASK_AGENTS}
        return [a.name for a in agents if a.name not in task_agents]

    def fresh(self, team: Any) -> Any:
        """Reset a team object that is traced directly (not through a factory) before a new run."""
        inner, _ = self._unwrap(team)
        chat_agent, _, workforce = _camel_classes()
        if isinstance(inner, chat_agent | workforce):
            inner.reset()
        elif isinstance(getattr(inner, "critic", None), chat_agent):  # (RolePlaying.init_chat resets only the two
            inner.critic.reset()                                     # role-playing agents, never the critic)
        return team

    def arun(self, team: Any, task: str, run: Run) -> Awaitable[Any]:
        """The coroutine that runs ``team`` (returned directly: CAMEL walks the call stack on every agent
        step, so the plugin adds no frame of its own)."""
        inner, options = self._unwrap(team)
        _, role_playing, workforce = _camel_classes()
        members = team_members(inner)
        streaming = [name for name, agent, _ in members if streaming_agent(agent)]
        if streaming and run.plan is not None:
            _check_streaming_replay(run, streaming)
        if run.plan is not None and run.cassette is not None:
            check_offered_tools(run.cassette, run.plan)  # (CAMEL's recorded requests list the tools they offer)
        names = {id(agent): name for name, agent, _ in members if agent is not None}
        if options.loop is not None:
            return runner.run_custom_loop(inner, task, run, options, names)
        if isinstance(inner, role_playing):
            return runner.run_role_playing(inner, task, run, options, names)
        author = runner.task_author([name for name, _, _ in members])
        if isinstance(inner, workforce):
            return runner.run_workforce(inner, task, run, options, names, author)
        return runner.run_chat_agent(inner, task, run, options, names, author)
