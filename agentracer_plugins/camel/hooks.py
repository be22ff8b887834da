"""The patches: CAMEL's model backend, what a ChatAgent does in a step (model calls, tools, context summaries),
Workforce worker nodes, and the thread pool CAMEL runs sync tools in.

Installed with wrapt on the classes themselves (the pool: a module attribute), through post-import hooks (import
order does not matter), guarded by CAMEL's version, idempotent, and removed by ``uninstrument`` which puts back
the exact original attributes. Every hook is a pass-through when no agentracer run is active in its context.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import functools
import json
import logging
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn

import wrapt
from agentracer import AgentracerError, RecordedModelError, ReplayError, ToolResult, current_run
from agentracer.record import INSIDE_TOOL_OF
from agentracer.schema import tool_calls_content

from . import _context, streams
from .codec import CODEC, MessageCopies, build_request, tool_calls_of, usage_of

MIN_CAMEL = (0, 2, 84)

_lock = threading.RLock()
_wanted = False
_hooks_registered = False
_originals: dict[tuple[Any, str], Any] = {}  # (class or module, attribute) -> the original
_loggers_seen = [-1]  # how many loggers there were when the CAMEL ones were last given the filter


# ---------------------------------------------------------------------- helpers
def _arg(args: tuple, kwargs: dict, position: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else default


def _result_content(result: Any) -> Any:
    """A tool's result as recorded: CAMEL hands the model ``str(result)``, so the result is kept as a JSON value only
    where that value renders the same (a number, a dict of text keys); else as the text the model saw (a tuple, a
    dict with number keys). A served result is handed back to CAMEL as recorded and reads to the model as it did."""
    if result is None or type(result) in (str, int, float, bool):
        return result
    rendered = str(result)
    try:
        copy = json.loads(json.dumps(result, ensure_ascii=False))
    except (TypeError, ValueError):
        return rendered
    return copy if str(copy) == rendered else rendered


def _step_content(response: Any) -> Any:
    message = response.choices[0].message
    if message.tool_calls and not (message.content or "").strip():
        return tool_calls_content(tool_calls_of(response))
    return message.content or ""


def _record_response(run: Any, agent: str, response: Any) -> None:
    """Each model response of an agent is a step: a message, or the tool calls it requests."""
    choices = getattr(response, "choices", None)
    if not choices:
        return
    metadata = {"finish_reason": str(choices[0].finish_reason)}
    if not choices[0].message.tool_calls:
        run.add_step(agent, choices[0].message.content or "", metadata=metadata)
        return
    run.add_step(agent, _step_content(response), kind="tool_call", tool_calls=tool_calls_of(response),
                 metadata=metadata)


# ---------------------------------------------------------------------- model backend
_SERVED_FAILURE = "recorded model call failed: "  # (how a RecordedModelError reads: core's ``Run._served``)


def _raise_as_recorded(exc: RecordedModelError) -> NoReturn:
    """Raise a served failed model call's error named as the recorded exception read (``RuntimeError: rate
    limited``), a RecordedModelError still: CAMEL writes ``type(e).__name__: e`` into what it asks next (a
    Workforce's analysis of a failed task), and a replay whose error read otherwise would ask something the recording
    never saw. (Caught where each call is made: a context manager around every call cost every run's calls more.)"""
    name, _, message = str(exc).removeprefix(_SERVED_FAILURE).partition(": ")
    if type(exc) is not RecordedModelError or not str(exc).startswith(_SERVED_FAILURE) or not name.isidentifier():
        raise exc
    raise type(name, (RecordedModelError,), {"__module__": __name__})(message) from exc


def _request(run: Any, backend: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    copies = run.plugin_state.get("camel_messages")
    if copies is None:
        copies = run.plugin_state["camel_messages"] = MessageCopies()
    return build_request(backend, _arg(args, kwargs, 0, "messages"), _arg(args, kwargs, 1, "response_format"),
                         _arg(args, kwargs, 2, "tools"), copies)


def _model_run(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    run = current_run()
    if run is None:
        return wrapped(*args, **kwargs)
    agent = _context.current_agent()
    request = _request(run, instance, args, kwargs)  # its "model" is the backend's model type as text
    name = agent or f"model:{request['model']}"
    if streams.streaming_backend(instance):  # recorded whole: see ``streams``
        request["stream"] = True
        seen = streams.LiveAnswer()
        try:
            response = run.call_model(name, request, lambda: streams.read(wrapped(*args, **kwargs), seen), CODEC,
                                      produces_step=agent is not None, model=request["model"], usage_of=usage_of)
        except RecordedModelError as exc:
            _raise_as_recorded(exc)
        if agent is not None:
            _record_response(run, agent, response)
        return streams.handed_back(response, seen, _arg(args, kwargs, 1, "response_format"))
    try:
        response = run.call_model(name, request, lambda: wrapped(*args, **kwargs), CODEC,
                                  produces_step=agent is not None, model=request["model"], usage_of=usage_of)
    except RecordedModelError as exc:
        _raise_as_recorded(exc)
    if agent is not None:
        _record_response(run, agent, response)
    return response


async def _model_arun(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    run = current_run()
    if run is None:
        return await wrapped(*args, **kwargs)
    agent = _context.current_agent()
    request = _request(run, instance, args, kwargs)  # its "model" is the backend's model type as text
    name = agent or f"model:{request['model']}"
    if streams.streaming_backend(instance):  # recorded whole: see ``streams``
        request["stream"] = True
        seen = streams.LiveAnswer()

        async def live() -> Any:
            return await streams.aread(await wrapped(*args, **kwargs), seen)

        try:
            response = await run.acall_model(name, request, live, CODEC, produces_step=agent is not None,
                                             model=request["model"], usage_of=usage_of)
        except RecordedModelError as exc:
            _raise_as_recorded(exc)
        if agent is not None:
            _record_response(run, agent, response)
        return streams.ahanded_back(response, seen, _arg(args, kwargs, 1, "response_format"))
    try:
        response = await run.acall_model(name, request, lambda: wrapped(*args, **kwargs), CODEC,
                                         produces_step=agent is not None, model=request["model"],
                                         usage_of=usage_of)
    except RecordedModelError as exc:
        _raise_as_recorded(exc)
    if agent is not None:
        _record_response(run, agent, response)
    return response


# ---------------------------------------------------------------------- Workforce
async def _graceful_shutdown(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """A Workforce whose task failed for good keeps running ``graceful_shutdown_timeout`` (15 s) for the user to
    look at it; a replay that diverged ends at once (the divergence is what it reports)."""
    run = current_run()
    if run is not None and run.divergence is not None:
        return None
    return await wrapped(*args, **kwargs)


# ---------------------------------------------------------------------- ChatAgent
# ``astep`` itself is not patched: CAMEL walks the whole call stack (``inspect.stack()``) on every agent step,
# and a frame of ours around the step would cost every step. The agent is made the acting one where it asks its
# model, runs a tool or summarises its context, below the walk. The sync ``step`` keeps a patch: it marks what a
# timed-out step recorded late (its ``step_timeout`` worker thread gets the context from ``_ContextCarryingPool``).
def _agent_step(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    if current_run() is None:
        return wrapped(*args, **kwargs)
    tokens = _context.enter_agent(instance)
    run, started = current_run(), time.time()
    first = len(run.trajectory.steps)
    try:
        return wrapped(*args, **kwargs)
    except TimeoutError:
        _mark_late(run, first, _context.current_agent(), started + (getattr(instance, "step_timeout", None) or 0.0))
        raise
    finally:
        _context.leave_agent(tokens)


def _mark_late(run: Any, first: int, agent: str | None, gave_up_at: float) -> None:
    """The sync step timed out: CAMEL raised ``TimeoutError`` to its caller, but only once its worker thread had
    finished, and what that thread recorded after the timeout never reached the team. Those steps become events,
    marked ``after_step_timeout`` (a tracer or ``show`` would otherwise read the late answer as one the team got)."""
    for step in run.trajectory.steps[first:]:
        mine = step.agent == agent or step.metadata.get(INSIDE_TOOL_OF) == agent  # (not a concurrent agent's)
        if mine and step.ended_at is not None and step.ended_at > gave_up_at and step.kind != "event":
            step.kind = "event"
            step.metadata = {**step.metadata, "after_step_timeout": True}


def _acting(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """The agent is the acting one while this (sync) method runs."""
    if current_run() is None:
        return wrapped(*args, **kwargs)
    tokens = _context.enter_agent(instance)
    try:
        return wrapped(*args, **kwargs)
    finally:
        _context.leave_agent(tokens)


async def _aacting(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """The agent is the acting one while this coroutine method runs."""
    if current_run() is None:
        return await wrapped(*args, **kwargs)
    tokens = _context.enter_agent(instance)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        _context.leave_agent(tokens)


def _acting_stream(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """A streaming step (``ChatAgent._stream``) runs when its caller reads it, maybe after ``step`` returned: each
    resumption runs with the agent acting, under the name it had when the step began."""
    steps = wrapped(*args, **kwargs)
    if current_run() is None:
        return steps
    return _resumed_as(steps, instance, _context.acting_as(instance))


def _resumed_as(steps: Any, agent: Any, acting: tuple[int, str] | None) -> Iterator[Any]:
    try:
        while True:
            tokens = _context.resume_agent(agent, acting)
            try:
                item = next(steps)
            except StopIteration as stop:
                return stop.value
            finally:
                _context.leave_agent(tokens)
            yield item
    finally:
        steps.close()


def _aacting_stream(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """``ChatAgent._astream``, as ``_acting_stream``."""
    steps = wrapped(*args, **kwargs)
    if current_run() is None:
        return steps
    return _aresumed_as(steps, instance, _context.acting_as(instance))


async def _aresumed_as(steps: Any, agent: Any, acting: tuple[int, str] | None) -> AsyncIterator[Any]:
    try:
        while True:
            tokens = _context.resume_agent(agent, acting)
            try:
                item = await steps.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _context.leave_agent(tokens)
            yield item
    finally:
        await steps.aclose()


def _tool_override(instance: Any, request: Any) -> tuple[bool, Any]:
    """(True, result) when this tool call must not run: the replaced step, or a served recorded result."""
    run, agent = current_run(), _context.current_agent()
    return _overridden(*run.tool_plan(agent)) if run is not None and agent is not None else (False, None)


async def _atool_override(instance: Any, request: Any) -> tuple[bool, Any]:
    """``_tool_override`` in an event loop (a result not run waits there for its recorded turn)."""
    run, agent = current_run(), _context.current_agent()
    return _overridden(*await run.atool_plan(agent)) if run is not None and agent is not None else (False, None)


def _overridden(how: str, value: Any) -> tuple[bool, Any]:
    if how == "replaced":
        return True, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return how in ("served", "failed"), value  # (CAMEL reports a tool's error as its result text)


def _tool_scope() -> Any:
    """The running tool's scope in the run: steps of agents it runs itself are marked as its own."""
    run, agent = current_run(), _context.current_agent()
    return run.tool_scope(agent) if run is not None and agent is not None else contextlib.nullcontext()


def _record_without_running(instance: Any, request: Any, result: Any) -> Any:
    return instance._record_tool_calling(request.tool_name, request.args, result, request.tool_call_id,
                                         extra_content=getattr(request, "extra_content", None))


def _execute_tool(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    if current_run() is None:
        return wrapped(*args, **kwargs)
    request = _arg(args, kwargs, 0, "tool_call_request")
    tokens = _context.enter_agent(instance)  # agents the tool steps are named as themselves
    try:
        skip, result = _tool_override(instance, request)
        if skip:
            return _record_without_running(instance, request, result)
        with _tool_scope():
            return wrapped(*args, **kwargs)
    finally:
        _context.leave_agent(tokens)


async def _aexecute_tool(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    if current_run() is None:
        return await wrapped(*args, **kwargs)
    request = _arg(args, kwargs, 0, "tool_call_request")
    tokens = _context.enter_agent(instance)
    try:
        skip, result = await _atool_override(instance, request)
        if skip:
            return _record_without_running(instance, request, result)
        with _tool_scope():
            return await wrapped(*args, **kwargs)
    finally:
        _context.leave_agent(tokens)


_FAILED_TOOL = re.compile(r"(Tool execution failed: )?(Error executing (async )?tool '.*'|Tool '.*' not found in "
                          r"registered tools)", re.DOTALL)


def is_failed_tool_result(result: Any) -> bool:
    """Whether a tool result is CAMEL's own report of a failure: it catches a tool's exception (and a call of a tool
    it does not have) and hands the model ``"Tool execution failed: ..."``, or ``{"error": ...}`` when streaming."""
    if isinstance(result, dict) and list(result) == ["error"]:
        result = result["error"]
    return isinstance(result, str) and _FAILED_TOOL.match(result) is not None


def _as_recorded_before(run: Any, agent: str, call_id: str, result: Any, content: Any) -> Any:
    """In a replay of a recording made when every result was kept as its JSON copy (a tuple as a list), a result
    kept as text now is given that copy back, so the replay finds its recorded step as it was."""
    cassette = run.cassette
    if cassette is None or not call_id or not isinstance(content, str) or isinstance(result, str):
        return content
    number = cassette.tool_result_number(agent, call_id)
    found = cassette.tool_result(agent, number) if number is not None else None
    if found is None or isinstance(found[1].content, str):
        return content
    try:
        copy = json.loads(json.dumps(result, ensure_ascii=False))
    except (TypeError, ValueError):
        return content
    return copy if found[1].content == copy else content


def _record_tool_result(run: Any, instance: Any, record: Any) -> None:
    agent = _context.current_agent() or _context.agent_name(instance)
    content = _as_recorded_before(run, agent, record.tool_call_id or "", record.result, _result_content(record.result))
    failed = is_failed_tool_result(record.result)
    run.add_step(agent, content, role="tool", kind="tool_result",
                 tool_results=[ToolResult(call_id=record.tool_call_id or "", name=record.tool_name, content=content,
                                          is_error=failed)])


def _record_tool_calling(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    record = wrapped(*args, **kwargs)
    run = current_run()
    if run is not None:
        _record_tool_result(run, instance, record)
    return record


# A streaming step runs its tools through these (not ``_execute_tool``), recording each result itself. A replay of a
# streaming team always runs tools live: the plugin refuses served tool results and replaced tool results up front.
def _stream_tool(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    run = current_run()  # (in a thread of the streaming step's own pool: see ``_ContextCarryingPool``)
    if run is None:
        return wrapped(*args, **kwargs)
    tokens = _context.enter_agent(instance)
    try:
        record = wrapped(*args, **kwargs)
        if record is not None:  # (None: CAMEL could not read the call and logged why)
            _record_tool_result(run, instance, record)
        return record
    finally:
        _context.leave_agent(tokens)


async def _astream_tool(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    run = current_run()
    if run is None:
        return await wrapped(*args, **kwargs)
    tokens = _context.enter_agent(instance)
    try:
        record = await wrapped(*args, **kwargs)
        if record is not None:
            _record_tool_result(run, instance, record)
        return record
    finally:
        _context.leave_agent(tokens)


# ---------------------------------------------------------------------- Workforce workers
async def _worker_process_single_task(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    run = current_run()
    if run is None:
        return await wrapped(*args, **kwargs)
    from .naming import worker_name

    name = worker_name(instance)
    token = _context.WORKER_NAME.set(name)
    try:
        outcome = await wrapped(*args, **kwargs)
    finally:
        _context.WORKER_NAME.reset(token)
    # A model call that raised failed the task and CAMEL caught it: the failed turn is a step now, before the
    # Workforce goes on with the returned task (a replay serves the failure in its turn, not at a later retry's).
    run.add_failed_call_steps(name)
    return outcome


# ---------------------------------------------------------------------- sync tools' threads
class _ContextCarryingExecutor:
    """CAMEL runs a sync tool of an async step in a shared thread pool, where no context variable is set: under
    an active run, work is submitted inside a copy of the caller's context, so an agent the tool steps is
    recorded too. Everything else is the original executor's."""

    def __init__(self, executor: Any) -> None:
        self._executor = executor

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Any:
        if current_run() is None:
            return self._executor.submit(fn, *args, **kwargs)
        return self._executor.submit(contextvars.copy_context().run, fn, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._executor, name)


class _ContextCarryingPool(concurrent.futures.ThreadPoolExecutor):
    """The pool a ChatAgent makes for one step (``step_timeout``) or one streamed turn's sync tools: under an active
    run, each piece of work runs in a copy of the context it was submitted from, so it is recorded in that call's run
    as that agent. (Handed over per agent, a helper agent stepped by concurrent runs at once ran in another's.)"""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Any:
        if current_run() is None:
            return super().submit(fn, *args, **kwargs)
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


class _FuturesWithContext:
    """``concurrent.futures`` with ``_ContextCarryingPool`` as its ``ThreadPoolExecutor``."""

    ThreadPoolExecutor = _ContextCarryingPool

    def __init__(self, futures: Any) -> None:
        self._futures = futures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._futures, name)


class _ConcurrentWithContext:
    """What ``camel.agents.chat_agent`` sees as ``concurrent``: the package, with ``_FuturesWithContext``."""

    def __init__(self, package: Any) -> None:
        self._package = package
        self.futures = _FuturesWithContext(package.futures)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._package, name)


# ---------------------------------------------------------------------- install / remove
_PATCHES: dict[str, list[tuple[str, str, Callable]]] = {
    "camel.models.base_model": [("BaseModelBackend", "run", _model_run), ("BaseModelBackend", "arun", _model_arun)],
    "camel.agents.chat_agent": [
        ("ChatAgent", "step", _agent_step),
        ("ChatAgent", "_get_model_response", _acting), ("ChatAgent", "_aget_model_response", _aacting),
        ("ChatAgent", "_get_context_with_summarization", _acting),
        ("ChatAgent", "_get_context_with_summarization_async", _aacting),
        ("ChatAgent", "_execute_tool", _execute_tool), ("ChatAgent", "_aexecute_tool", _aexecute_tool),
        ("ChatAgent", "_record_tool_calling", _record_tool_calling),
        ("ChatAgent", "_stream", _acting_stream), ("ChatAgent", "_astream", _aacting_stream),
        ("ChatAgent", "_execute_tool_from_stream_data", _stream_tool),
        ("ChatAgent", "_aexecute_tool_from_stream_data", _astream_tool),
        ("", "concurrent", _ConcurrentWithContext),  # a module attribute: the pools of its steps carry the context
    ],
    "camel.societies.workforce.worker": [("Worker", "_process_single_task", _worker_process_single_task)],
    "camel.societies.workforce.workforce": [("Workforce", "_graceful_shutdown", _graceful_shutdown)],
    # a module attribute (no class): the replacement is built from the original
    "camel.toolkits.function_tool": [("", "_SYNC_TOOL_EXECUTOR", _ContextCarryingExecutor)],
}


_PATCH_COUNT = sum(len(patches) for patches in _PATCHES.values())


@functools.cache
def camel_version() -> tuple[int, ...]:
    """The installed camel-ai version as a tuple (read once: package metadata is slow to read)."""
    from importlib.metadata import version

    parts = []
    for piece in version("camel-ai").split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _patch_module(module: Any) -> None:
    with _lock:
        if not _wanted:
            return
        for class_name, attribute, wrapper in _PATCHES[module.__name__]:
            cls = getattr(module, class_name, None) if class_name else module
            if cls is None or attribute not in vars(cls):
                raise AgentracerError(
                    f"camel-ai {'.'.join(map(str, camel_version()))}: "
                    f"{'.'.join(filter(None, (module.__name__, class_name, attribute)))} "
                    "is missing; this agentracer supports the camel-ai 0.2.8x layout"
                )
            key = (cls, attribute)
            if key in _originals:
                continue
            original = vars(cls)[attribute]
            _originals[key] = original
            setattr(cls, attribute, wrapt.FunctionWrapper(original, wrapper) if class_name else wrapper(original))


class _QuietReplayErrors(logging.Filter):
    """Drops CAMEL's logged errors about a replay's own error (a divergence raised in a model call: CAMEL logs it with
    its traceback, then re-raises it) and about what it sets off afterwards: the run raises the error itself, in one
    line, where the user called it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ReplayError):
            return False
        if record.levelno < logging.ERROR:
            return True
        run = current_run()
        return run is None or run.divergence is None


_QUIET = _QuietReplayErrors()
_quieted: set[str] = set()  # the CAMEL loggers (one per module) that carry the filter


def _quiet_camel_loggers() -> None:
    """Put the filter on every CAMEL logger there is (a logger's filter sees only its own records)."""
    names = [name for name in list(logging.root.manager.loggerDict) if name.startswith("camel")]
    for name in names:
        if name not in _quieted:
            logging.getLogger(name).addFilter(_QUIET)
            _quieted.add(name)


def _unquiet_camel_loggers() -> None:
    for name in _quieted:
        logging.getLogger(name).removeFilter(_QUIET)
    _quieted.clear()


def instrument() -> None:
    """Install every CAMEL hook now or when its module is imported (idempotent)."""
    global _wanted, _hooks_registered
    if len(logging.root.manager.loggerDict) != _loggers_seen[0]:  # new modules, new loggers
        _loggers_seen[0] = len(logging.root.manager.loggerDict)
        _quiet_camel_loggers()
    if _wanted and len(_originals) == _PATCH_COUNT:
        return  # every hook is in place already: the common case, once per traced run
    found = camel_version()
    if found < MIN_CAMEL:
        raise AgentracerError(
            f"camel-ai {'.'.join(map(str, found))} is too old: agentracer's CAMEL plugin needs >= 0.2.84"
        )
    with _lock:
        _wanted = True
        first = not _hooks_registered
        _hooks_registered = True
    for module_name in _PATCHES:
        if first:
            wrapt.register_post_import_hook(_patch_module, module_name)
        elif module_name in sys.modules:
            _patch_module(sys.modules[module_name])


def uninstrument() -> None:
    """Put back the exact original attributes; hooks registered for later imports do nothing."""
    global _wanted
    with _lock:
        _wanted = False
        for (cls, attribute), original in _originals.items():
            setattr(cls, attribute, original)
        _originals.clear()
        _unquiet_camel_loggers()
        _loggers_seen[0] = -1


def instrumented() -> bool:
    with _lock:
        return bool(_originals)


def instrumented_names() -> list[str]:
    """The attributes patched now, e.g. ``ChatAgent.step`` (a module attribute: its bare name)."""
    with _lock:
        return [f"{getattr(owner, '__name__', owner)}.{name}" if isinstance(owner, type) else name
                for owner, name in _originals]
