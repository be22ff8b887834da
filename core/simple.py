"""A framework-free round-robin team of agents that call a model function — and its plugin.

For hand-rolled agents and for tests of the engine itself: each ``SimpleAgent`` asks its ``model``
(any callable from chat messages to text, sync or async) and may call tools; ``SimpleTeam`` runs them in
turn until ``max_turns`` or a message containing ``stop_word``. A message ``CALL name {json}`` runs a tool.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ReplayError
from .plugins import register_plugin
from .record import Run, current_run
from .redact import FrozenJSON
from .replay import json_copy
from .schema import AgentInfo, ModelCall, ToolCall, ToolResult

ModelFn = Callable[[list[dict[str, Any]]], Any]


class _TextCodec:
    """Responses of a simple model are plain text."""

    def encode(self, response: Any) -> Any:
        return json_copy(response)

    def decode(self, data: Any) -> Any:
        if not isinstance(data, str):  # (an edited recording: the team reads text)
            raise TypeError(f"a simple agent's answer is text, not {type(data).__name__}")
        return data

    def replacement(self, action: Any, recorded: ModelCall | None) -> Any:
        if isinstance(action, dict) and "tool_calls" in action:
            call = action["tool_calls"][0]
            return f"CALL {call['name']} {json.dumps(call.get('arguments', {}))}"
        return action if isinstance(action, str) else json.dumps(action)


TEXT_CODEC = _TextCodec()


@dataclass
class SimpleAgent:
    """An agent: a name, a system prompt, a model function and optional tools (name -> callable)."""

    name: str
    model: ModelFn
    system_prompt: str = ""
    tools: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def _system_message(self) -> FrozenJSON:
        """The system message, one object per prompt text, so the recorder hashes it once per run."""
        cached = self.__dict__.get("_system")
        if cached is None or cached["content"] != self.system_prompt:
            cached = self.__dict__["_system"] = FrozenJSON(role="system", content=self.system_prompt)
        return cached

    async def _ask(self, messages: list[dict[str, Any]]) -> str:
        # the model gets copies, traced or not (a run behaves the same either way): one that edited its messages
        # changed the team's history, and what a traced run recorded as sent
        result = self.model([dict(message) for message in messages])
        return await result if inspect.isawaitable(result) else result

    async def respond(self, history: list[dict[str, Any]]) -> str:
        messages: list[dict[str, Any]] = [self._system_message()] if self.system_prompt else []
        messages += history
        run = current_run()
        if run is None:
            return await self._ask(messages)
        return await run.acall_model(self.name, {"messages": messages}, lambda: self._ask(messages), TEXT_CODEC)

    def run_tool(self, name: str, arguments: dict[str, Any] | str) -> Any:
        tool = self.tools.get(name)
        if tool is None:
            return f"error: unknown tool {name!r}"
        if isinstance(arguments, str):  # (as frameworks answer a model whose arguments do not parse)
            return f"error: the arguments of {name} are not a JSON object: {arguments}"
        try:
            return tool(**arguments)
        except Exception as exc:
            return f"error: {type(exc).__name__}: {exc}"


def _arguments(raw: str) -> dict[str, Any] | str:
    """A ``CALL name {json}`` message's arguments: the object, or the text as written when it is not one (the tool
    then answers with an error, and the call stays a step of the run that a replay can replace)."""
    try:
        arguments = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return raw
    return arguments if isinstance(arguments, dict) else raw


@dataclass
class SimpleTeam:
    """Agents speaking in turn over one shared history."""

    agents: Sequence[SimpleAgent]
    max_turns: int = 10
    stop_word: str | None = "TERMINATE"

    async def run(self, task: str) -> str:
        run = current_run()
        action = run.replacement_for_next_step() if run is not None else None
        if run is not None and action is not None:  # the replayed step is the task itself
            task = action if isinstance(action, str) else json.dumps(action)
            run.count_substitution()
        history: list[dict[str, Any]] = [FrozenJSON(role="user", name="user", content=task)]
        if run is not None:
            run.add_step("user", task, role="user")
        last = ""
        for turn in range(self.max_turns):
            agent = self.agents[turn % len(self.agents)]
            text = await agent.respond(history)
            last = text
            history.append(FrozenJSON(role="assistant", name=agent.name, content=text))
            if text.startswith("CALL "):
                name, _, raw = text[5:].partition(" ")
                arguments = _arguments(raw)
                if run is not None:
                    run.add_step(agent.name, text, kind="tool_call",
                                 tool_calls=[ToolCall(id=f"{agent.name}-{turn}", name=name, arguments=arguments)])
                    how, given = await run.atool_plan(agent.name)
                    if how == "live":
                        with run.tool_scope(agent.name):
                            output = agent.run_tool(name, arguments)
                    else:
                        output = given if isinstance(given, str) else json.dumps(given)
                    run.add_step(agent.name, str(output), role="tool", kind="tool_result",
                                 tool_results=[ToolResult(call_id=f"{agent.name}-{turn}", name=name, content=str(output))])
                else:
                    output = agent.run_tool(name, arguments)
                history.append(FrozenJSON(role="tool", name=name, content=str(output)))
                last = str(output)
                continue
            if run is not None:
                run.add_step(agent.name, text)
            if self.stop_word and self.stop_word in text:
                break
        return last


class SimplePlugin:
    """Plugin for ``SimpleTeam``; registered when ``agentracer.simple`` is imported."""

    name = "python"

    def matches(self, team: Any) -> bool:
        return isinstance(team, SimpleTeam)

    def instrument(self) -> None:  # nothing to patch: SimpleTeam calls the recorder itself
        pass

    def uninstrument(self) -> None:
        pass

    def describe(self, team: SimpleTeam) -> list[AgentInfo]:
        return [AgentInfo(name=a.name, system_prompt=a.system_prompt or None, tools=sorted(a.tools))
                for a in team.agents]

    async def arun(self, team: SimpleTeam, task: str, run: Run) -> Any:
        plan = run.plan
        if plan is not None and plan.step == 0 and not isinstance(plan.action, str):
            raise ReplayError("step 0 is the user's task: its replacement must be a text")
        calls = plan.action.get("tool_calls") if plan is not None and isinstance(plan.action, dict) else None
        if plan is not None and isinstance(calls, list) and len(calls) > 1:
            raise ReplayError(f"the action for step {plan.step} makes {len(calls)} tool calls: a simple agent makes "
                              "one per message")
        return await team.run(task)


plugin = register_plugin(SimplePlugin())
