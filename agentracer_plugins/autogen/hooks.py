"""The AutoGen hooks, installed through (wrapt's) post-import hooks and removable exactly.

- ``ChatCompletionClient.create`` / ``create_stream`` (and every subclass's override): under an active run
  the call goes through ``Run.acall_model`` (live, served from the cassette, or the replacement). A stream
  is recorded whole and served as a stream that yields the final ``CreateResult``.
- ``ChatAgentContainer.handle_request``: the agent whose turn it is becomes the actor of its model calls;
  ``BaseGroupChatManager.select_speaker``: the manager is the actor of its speaker selection's calls;
  ``MagenticOneOrchestrator.handle_start`` / ``_orchestrate_step``: the orchestrator is the actor of its ledgers' calls.
- ``ChatAgentContainer._log_message`` and the group chat manager's ``publish_message`` to the output topic:
  each message or event is recorded as a step where it is produced, before its agent goes on, so the model
  calls waiting for that agent are exactly the ones that produced it.
- ``TaskRunnerTool.run_stream`` (``AgentTool``, ``TeamTool``): an agent run as a tool is the actor of its calls and
  its messages are recorded as it makes them; the caller streams them on later as its own, and they are not
  recorded twice (a team run as a tool records itself, as every team does).
- ``UserProxyAgent._get_input``: a human's input is a call of model ``"human"`` (served and replaced like any).
- ``BaseTool.run_json``: in a replay, the tool result of the replaced step is the action, and recorded results (and
  errors) are served when the replay asks for ``serve_tools``; the steps an agent run as a tool made are copied then.

Without an active run every hook calls straight through.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import wrapt
from agentracer import AgentracerError, ReplayError, current_run
from agentracer.team import error_summary

from .context import ACTOR, FAILED_RUN, IN_MODEL_CALL, RUN_STATE, Actor, RunState, current_actor
from .patches import ClassTreePatch

MIN_VERSION = (0, 7)


class _Parts:
    """The plugin's AutoGen-importing modules, loaded on the first traced call (importing the plugin must not
    import AutoGen; a traced call means AutoGen is loaded) and then read without an import statement."""

    codec: Any = None
    steps: Any = None
    team_type: Any = None
    orchestrator_type: Any = None

    @classmethod
    def is_orchestrator(cls, manager: Any) -> bool:
        """Whether ``manager`` is a Magentic-One orchestrator (whose model calls make steps)."""
        return isinstance(manager, cls.orchestrator_type)


def _parts() -> type[_Parts]:
    if _Parts.team_type is None:
        from autogen_agentchat.base import Team
        from autogen_agentchat.teams._group_chat._magentic_one._magentic_one_orchestrator import (
            MagenticOneOrchestrator,
        )

        from . import codec, steps

        _Parts.codec, _Parts.steps, _Parts.orchestrator_type = codec, steps, MagenticOneOrchestrator
        _Parts.team_type = Team
    return _Parts

# --------------------------------------------------------------------------- model calls


def _model_name(client: Any) -> str:
    create_args = getattr(client, "_create_args", None)
    if isinstance(create_args, dict) and create_args.get("model"):
        return str(create_args["model"])
    return type(client).__name__


def _request(codec: Any, run: Any, state: RunState | None, args: Any, kwargs: Any, stream: bool) -> dict[str, Any]:
    if state is None:
        return codec.encode_request(args, kwargs, stream=stream)
    if state.messages is None:
        state.messages = codec.MessageCache()
    if state.tools is None:  # (a replay of a recording that named its tools only names them too)
        cassette = run.cassette
        state.tools = codec.ToolSchemas(by_name=cassette is not None
                                        and codec.recorded_tools_by_name(cassette.trajectory))
    return codec.encode_request(args, kwargs, stream=stream, cache=state.messages, tools_of=state.tools)


def _patch_create(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is None or IN_MODEL_CALL.get():
            return await original(self, *args, **kwargs)
        live = functools.partial(original, self, *args, **kwargs)
        return await _route_model_call(run, self, args, kwargs, live, stream=False)

    return create


async def _route_model_call(run: Any, client: Any, args: Any, kwargs: Any,
                            live: Callable[[], Awaitable[Any]], *, stream: bool) -> Any:
    """Route one model call of the current actor through the run (served, substituted or live) and note it.

    Calls the live client makes inside (a subclass's ``super().create``, a client wrapping another) pass
    straight through."""
    actor, state = current_actor(), RUN_STATE.get()
    codec = _parts().codec
    token = IN_MODEL_CALL.set(True)
    try:
        result = await run.acall_model(
            actor.name, _request(codec, run, state, args, kwargs, stream), live, codec.CODEC,
            produces_step=actor.produces_step, model=_model_name(client), usage_of=codec.usage_of,
        )
    finally:
        IN_MODEL_CALL.reset(token)
    if state is not None and state.orchestrators and actor.name in state.orchestrators:  # its ledger?
        ledger = codec.parse_ledger(getattr(result, "content", None))
        if ledger is not None:
            state.last_ledgers[actor.name] = ledger
    return result


def _wrap_create_stream(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = current_run()
    if run is None or IN_MODEL_CALL.get():
        return wrapped(*args, **kwargs)
    return _traced_stream(run, wrapped, instance, args, kwargs)


def _patch_create_stream(original: Callable[..., Any]) -> Any:
    # a proxy keeps the original async generator untouched when no run is active
    return wrapt.FunctionWrapper(original, _wrap_create_stream)


async def _traced_stream(run: Any, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> AsyncIterator[Any]:
    from autogen_core.models import CreateResult

    chunks: list[Any] = []

    async def live() -> Any:
        final = None
        async for item in wrapped(*args, **kwargs):
            if isinstance(item, CreateResult):
                final = item
            else:
                chunks.append(item)
        if final is None:
            raise RuntimeError("the model stream ended without a final CreateResult")
        return final

    result = await _route_model_call(run, instance, args, kwargs, live, stream=True)
    for chunk in chunks:
        yield chunk
    yield result


# --------------------------------------------------------------------------- agents' turns


_ACTORS: dict[str, Actor] = {}  # an agent's name -> its (immutable) actor


def _agent_actor(name: str) -> Actor:
    """The (cached, immutable) actor of the agent ``name``."""
    actor = _ACTORS.get(name)
    if actor is None:
        actor = _ACTORS[name] = Actor(name)
    return actor


def _in_participant_turn() -> bool:
    """Whether this context is inside a participant's turn (the patched ``handle_request``): a group chat
    manager running here belongs to a team nested in the recorded one. (The runner's own actor for a team's
    manager is never one of these cached objects.)"""
    actor = ACTOR.get()
    return actor is not None and _ACTORS.get(actor.name) is actor


def _patch_agent_turn(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def handle_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(getattr(self, "_agent", None), "name", None)
        if current_run() is None or name is None:
            return await original(self, *args, **kwargs)
        actor = _agent_actor(str(name))
        token = ACTOR.set(actor)
        try:
            return await original(self, *args, **kwargs)
        except Exception as exc:  # the agent's turn raised: the team stops; the failure is at this agent's step
            run = current_run()
            if run is not None and not isinstance(exc, ReplayError) and not _is_team(self._agent):
                run.add_failed_turn_step(str(name), error_summary(exc))
            raise
        finally:
            ACTOR.reset(token)

    return handle_request


def _recording_patch(record: Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], None]) -> Any:
    """A patch factory: under an active run, ``record(run, self, args, kwargs)`` before the original runs."""

    def factory(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(original)
        async def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
            run = current_run()
            if run is not None:
                record(run, self, args, kwargs)
            return await original(self, *args, **kwargs)

        return patched

    return factory


_IS_TEAM: dict[type, bool] = {}  # an agent's class -> whether it is a nested team (``Team`` is a slow isinstance)


def _is_team(agent: Any) -> bool:
    kind = type(agent)
    found = _IS_TEAM.get(kind)
    if found is None:
        found = _IS_TEAM[kind] = isinstance(agent, _parts().team_type)
    return found


def _record_agent_message(run: Any, container: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if not _is_team(getattr(container, "_agent", None)):
        _parts().steps.record_message(run, args[0] if args else kwargs["message"], RUN_STATE.get())


def _record_manager_output(run: Any, manager: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    topic = args[1] if len(args) > 1 else kwargs.get("topic_id")
    if getattr(topic, "type", None) == getattr(manager, "_output_topic_type", ""):
        _parts().steps.record_output(run, args[0] if args else kwargs["message"], RUN_STATE.get(),
                                     nested=_in_participant_turn())


# speaker selections that ask no model (turn order, handoffs, a graph's edges): left unwrapped, as a wrapper around each
# turn's selection costs more than the rest of the manager's hooks together
MODEL_FREE_SELECTION = frozenset({
    ("autogen_agentchat.teams._group_chat._round_robin_group_chat", "RoundRobinGroupChatManager.select_speaker"),
    ("autogen_agentchat.teams._group_chat._swarm_group_chat", "SwarmGroupChatManager.select_speaker"),
    ("autogen_agentchat.teams._group_chat._graph._digraph_group_chat", "GraphFlowManager.select_speaker"),
})


def _patch_speaker_selection(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A group chat manager is the actor of the model calls its speaker selection makes (no step), also when its
    team runs inside another team's participant, whose actor it would otherwise inherit. AutoGen's selections that
    ask no model are left as they are (``MODEL_FREE_SELECTION``; a subclass that overrides one is wrapped)."""
    if (getattr(original, "__module__", None), getattr(original, "__qualname__", None)) in MODEL_FREE_SELECTION:
        return original

    @functools.wraps(original)
    async def select_speaker(self: Any, *args: Any, **kwargs: Any) -> Any:
        if current_run() is None:
            return await original(self, *args, **kwargs)
        token = ACTOR.set(_manager_actor(self, RUN_STATE.get()))
        try:
            return await original(self, *args, **kwargs)
        finally:
            ACTOR.reset(token)

    return select_speaker


def _manager_actor(manager: Any, state: RunState | None) -> Actor:
    """The actor of a group chat manager (kept for the run: see ``RunState.manager_actors``); an orchestrator's calls
    make its steps, another manager's (speaker selection) make none."""
    known = state.manager_actors.get(id(manager)) if state is not None else None
    if known is not None:
        return known[1]
    actor = Actor(str(getattr(manager, "_name", "manager")), _parts().is_orchestrator(manager))
    if state is not None:
        state.manager_actors[id(manager)] = (manager, actor)  # (the manager held: its id stays its own)
    return actor


def _patch_orchestrator(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A Magentic-One orchestrator asks its model as it plans (``handle_start``) and as it orchestrates each turn
    (``_orchestrate_step``: the progress ledger, a new plan, the final answer), not in ``select_speaker``. It is the
    actor of those calls also where its team runs inside another team's participant, an agent or a tool, whose actor it
    would otherwise inherit; its name is noted so that its ledgers and instructions are steps of those kinds. Where
    its own code raises (a progress ledger that never parses), an ``event`` step holds the calls it made, as for an
    agent whose turn raised: a replay can put another answer in place of the last."""

    @functools.wraps(original)
    async def orchestrate(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is None:
            return await original(self, *args, **kwargs)
        state = RUN_STATE.get()
        actor = _manager_actor(self, state)
        if ACTOR.get() is actor:  # inside the orchestrator's own handler (``handle_start`` orchestrates its first turn)
            return await original(self, *args, **kwargs)
        if state is not None:
            state.orchestrators.add(actor.name)
        token = ACTOR.set(actor)
        try:
            return await original(self, *args, **kwargs)
        except Exception as exc:  # before the team hears of it: its run ends on the error
            if not isinstance(exc, ReplayError):
                run.add_failed_turn_step(actor.name, error_summary(exc))
            raise
        finally:
            ACTOR.reset(token)

    return orchestrate


def _patch_human_input(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A ``UserProxyAgent``'s input is a call of model ``"human"`` that produces its step: a replay serves the recorded
    answers before step t (nobody is asked again) and puts the action in at t, as for any agent."""

    @functools.wraps(original)
    async def _get_input(self: Any, prompt: str, *args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is None:
            return await original(self, prompt, *args, **kwargs)
        live = functools.partial(original, self, prompt, *args, **kwargs)
        codec = _parts().codec
        return await run.acall_model(str(self.name), {"prompt": prompt}, live, codec.HUMAN_CODEC, model=HUMAN)

    return _get_input


HUMAN = "human"  # the model name of a UserProxyAgent's input calls

# --------------------------------------------------------------------------- tools


class RecordedToolError(Exception):
    """A tool that failed in the recording fails again, with the recorded text, when its replay serves it (AutoGen's
    workbench reports the exception's text as the tool's error result)."""


class GivenResult(str):
    """A tool result a replay gives instead of running the tool (recorded, or the replacement), as its text: the
    tool's ``return_value_as_string`` passes it through (an ``AgentTool``'s would expect a ``TaskResult``)."""


def _call_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The tool call a ``run_json``/``run_json_stream`` call answers (``args, cancellation_token, call_id``)."""
    found = kwargs.get("call_id", args[2] if len(args) > 2 else None)
    return found if isinstance(found, str) and found else None


async def _given(run: Any, call_id: str | None = None) -> tuple[bool, Any]:
    """(True, result) when the current agent's tool (answering ``call_id``) must not run in this replay; raises a
    recorded error."""
    how, value = await run.atool_plan(current_actor().name, call_id)
    if how == "live":
        return False, None
    if how == "failed":
        raise RecordedToolError(value)
    return True, GivenResult(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str))


def _patch_run_json(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def run_json(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is None:
            return await original(self, *args, **kwargs)
        call_id = _call_id(args, kwargs)
        skip, result = await _given(run, call_id) if run.plan is not None else (False, None)
        if skip:
            return result
        agent = current_actor().name
        # a model the tool asks itself (a summarising tool) is the tool's, not its agent's: its answer is no step of
        # the agent's, and it is not numbered among the agent's own calls (a replay that does not run the tool would
        # find them one off)
        token = ACTOR.set(Actor(f"{agent} (tool {getattr(self, 'name', type(self).__name__)})", produces_step=False))
        try:
            with run.tool_scope(agent, call_id):
                return await original(self, *args, **kwargs)
        finally:
            ACTOR.reset(token)

    return run_json


def _patch_run_json_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    """A streaming tool (``AgentTool``, ``TeamTool``): the same plan as ``run_json``. A given result comes after the
    messages and events of the steps copied for it from the recording, as the tool streamed them: the caller passes
    them on, and a termination condition counts them as it did in the recorded run (they are steps already)."""

    @functools.wraps(original)
    async def run_json_stream(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        run = current_run()
        if run is None:
            async for item in original(self, *args, **kwargs):
                yield item
            return
        first = run.next_index
        call_id = _call_id(args, kwargs)
        skip, result = await _given(run, call_id) if run.plan is not None else (False, None)
        if not skip:
            with run.tool_scope(current_actor().name, call_id):
                async for item in original(self, *args, **kwargs):
                    yield item
            return
        for message in _parts().steps.copied_messages(run.trajectory.steps[first:run.next_index], RUN_STATE.get()):
            yield message
        yield result

    return run_json_stream


def _patch_return_value_as_string(original: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(original)
    def return_value_as_string(self: Any, value: Any) -> str:
        return str(value) if isinstance(value, GivenResult) else original(self, value)

    return return_value_as_string


def _patch_task_runner_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    """An agent run as a tool (``AgentTool``) is the actor of its own model calls: it runs inside the turn of the
    agent that called the tool, which would otherwise be named as their maker (its steps are its own already)."""

    @functools.wraps(original)
    async def run_stream(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        run = current_run()
        runner = getattr(self, "_task_runner", None)
        name = getattr(runner, "name", None)
        if run is None or not isinstance(name, str):
            async for item in original(self, *args, **kwargs):
                yield item
            return
        team = _is_team(runner)
        if team:  # a team: its managers and agents are actors themselves, and its task is new, not nested
            actor = Actor(name, produces_step=False)
        else:
            actor = _agent_actor(name)
        token = ACTOR.set(actor)
        try:
            async for item in original(self, *args, **kwargs):
                if not team and item is not None:  # (a team's messages are recorded where it makes them)
                    _parts().steps.record_tool_run_item(run, item, RUN_STATE.get())
                yield item
        except Exception as exc:  # the tool's error result: a team it ran stays stopped (a traced team object's next
            if team and not isinstance(exc, ReplayError):  # run refuses it rather than run it cut short)
                setattr(runner, FAILED_RUN, error_summary(exc, limit=200))
            raise
        finally:
            with contextlib.suppress(ValueError):  # (closed from another context: that context never saw it set)
                ACTOR.reset(token)

    return run_stream


# --------------------------------------------------------------------------- install / remove


def check_version() -> str:
    """The installed autogen-agentchat version; ``AgentracerError`` when it is older than 0.7."""
    try:
        found = version("autogen-agentchat")
    except PackageNotFoundError as exc:
        raise AgentracerError("autogen-agentchat is not installed: pip install 'agentracer[autogen]'") from exc
    parts = tuple(int(p) for p in found.split(".")[:2] if p.isdigit())
    if parts < MIN_VERSION:
        raise AgentracerError(f"autogen-agentchat {found} is too old: agentracer's AutoGen plugin needs >= 0.7")
    return found


# (module, class, the factory of each method's replacement)
TARGETS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("autogen_core.models", "ChatCompletionClient",
     {"create": _patch_create, "create_stream": _patch_create_stream}),
    ("autogen_agentchat.teams._group_chat._chat_agent_container", "ChatAgentContainer",
     {"handle_request": _patch_agent_turn, "_log_message": _recording_patch(_record_agent_message)}),
    ("autogen_agentchat.teams._group_chat._base_group_chat_manager", "BaseGroupChatManager",
     {"publish_message": _recording_patch(_record_manager_output), "select_speaker": _patch_speaker_selection}),
    ("autogen_core.tools", "BaseTool", {"run_json": _patch_run_json, "run_json_stream": _patch_run_json_stream,
                                        "return_value_as_string": _patch_return_value_as_string}),
    ("autogen_agentchat.teams._group_chat._magentic_one._magentic_one_orchestrator", "MagenticOneOrchestrator",
     {"handle_start": _patch_orchestrator, "_orchestrate_step": _patch_orchestrator}),
    ("autogen_agentchat.tools._task_runner_tool", "TaskRunnerTool", {"run_stream": _patch_task_runner_stream}),
    ("autogen_agentchat.agents._user_proxy_agent", "UserProxyAgent", {"_get_input": _patch_human_input}),
)


class _QuietReplayErrors(logging.Filter):
    """Drops AutoGen's logged tracebacks of a replay's own errors (a divergence raised in a handler) and of what they
    set off in the team afterwards: the run raises the error itself, in one line, where the user called it. Within a
    traced run, AutoGen's other tracebacks (an agent that raised, and the ``GroupChatError`` it sets off in every
    other agent: some 70 lines) go to DEBUG: the run records the error and raises it where it was called, with the
    agent's exception as its cause."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info:
            return True
        if isinstance(record.exc_info[1], ReplayError):
            return False
        run = current_run()
        if run is None:
            return True
        if run.divergence is not None:
            return False
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False  # (a handler of level NOTSET would print a record only relabelled)
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return True


class _QuietAfterDivergence(logging.Filter):
    """OpenTelemetry's 'Failed to detach context' as a diverged replay unwinds an agent run as a tool: AutoGen's span
    of it is closed outside the context it was opened in. The run raises the divergence itself, in one line; the
    traceback of that unwinding says nothing more. Outside a diverged replay every record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        run = current_run()
        return not (record.exc_info and run is not None and run.divergence is not None)


AUTOGEN_LOGGERS = ("autogen_core", "autogen_agentchat")
_QUIET = _QuietReplayErrors()
OTEL_CONTEXT_LOGGER = "opentelemetry.context"
_QUIET_AFTER_DIVERGENCE = _QuietAfterDivergence()


class Hooks:
    """Every AutoGen patch; ``install`` applies them as their modules are imported, ``remove`` undoes them."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._patches: dict[str, ClassTreePatch] = {}
        self._registered = False
        self.enabled = False

    def install(self) -> None:
        with self._lock:
            if self.enabled:
                return
            check_version()
            self.enabled = True
            for name in AUTOGEN_LOGGERS:
                logging.getLogger(name).addFilter(_QUIET)
            logging.getLogger(OTEL_CONTEXT_LOGGER).addFilter(_QUIET_AFTER_DIVERGENCE)
            if not self._registered:
                for module, _cls, _wrappers in TARGETS:
                    wrapt.register_post_import_hook(self._on_import, module)
                self._registered = True
            else:  # hooks fired already once: patch modules that are loaded now
                for module, _cls, _wrappers in TARGETS:
                    loaded = sys.modules.get(module)
                    if loaded is not None:
                        self._on_import(loaded)

    def _on_import(self, module: Any) -> None:
        with self._lock:
            if not self.enabled:
                return
            for name, cls_name, wrappers in TARGETS:
                if name != module.__name__:
                    continue
                patch = self._patches.get(name)
                if patch is None:
                    patch = self._patches[name] = ClassTreePatch(getattr(module, cls_name), wrappers)
                patch.install()

    def remove(self) -> None:
        with self._lock:
            for patch in self._patches.values():
                patch.remove()
            for name in AUTOGEN_LOGGERS:
                logging.getLogger(name).removeFilter(_QUIET)
            logging.getLogger(OTEL_CONTEXT_LOGGER).removeFilter(_QUIET_AFTER_DIVERGENCE)
            self.enabled = False

    def patched(self) -> dict[tuple[type, str], Any]:
        """The original functions currently replaced, by (class, method name)."""
        with self._lock:
            found: dict[tuple[type, str], Any] = {}
            for patch in self._patches.values():
                found.update(patch.originals())
            return found


HOOKS = Hooks()
