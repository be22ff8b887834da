"""Route ``BaseLLM.aask`` (MetaGPT and MaAS alike) through the active run, as plain text calls.

The hook works on any object with MetaGPT's ``aask`` signature; it imports no framework, so the MaAS plugin
shares it. Who is asking comes from ``ACTOR`` (set by the role/operator hooks); the request recorded is the
chat messages ``aask`` sends plus the model name, so a changed prompt before the replayed step is caught.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from contextvars import ContextVar
from typing import Any

from agentracer import ModelCall, Run, Usage, current_run
from agentracer.replay import json_copy
from agentracer.schema import built

ACTOR: ContextVar[str | None] = ContextVar("agentracer_metagpt_actor", default=None)
THINKING: ContextVar[bool] = ContextVar("agentracer_metagpt_thinking", default=False)  # in a role's ``_think``
THINKING_CALLS: weakref.WeakKeyDictionary[Any, set[tuple[str, int]]] = weakref.WeakKeyDictionary()  # by run
ROLE: ContextVar[Any] = ContextVar("agentracer_metagpt_role", default=None)  # the role whose turn it is
# by run: (agent, call index) -> the class of the action the role was doing when it asked (its ``rc.todo``): what a
# role publishes is its last action's (``cause_by``), and that action may ask no model
CALL_ACTIONS: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], type]] = weakref.WeakKeyDictionary()
"""The agent (role profile or operator name) whose turn is running in this asyncio task."""

UNKNOWN_ACTOR = "metagpt"


class TextCodec:
    """``aask`` answers are strings; a replacement action becomes the text the model 'said'."""

    def encode(self, response: Any) -> Any:
        return json_copy(response)

    def decode(self, data: Any) -> Any:
        return data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)

    def replacement(self, action: Any, recorded: ModelCall | None) -> Any:
        if isinstance(action, str):
            return action
        if isinstance(action, dict) and isinstance(action.get("content"), str):
            return action["content"]
        return json.dumps(action, ensure_ascii=False, default=str)


TEXT_CODEC = TextCodec()


def _as_chat_message(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return {"role": item.get("role", "user"), "content": item.get("content")}
    if isinstance(item, str):
        return {"role": "user", "content": item}
    to_dict = getattr(item, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        return {"role": data.get("role", "user"), "content": data.get("content")}
    return {"role": "user", "content": str(item)}


def aask_request(llm: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The chat request an ``aask(msg, system_msgs, format_msgs, images, ...)`` call makes, as JSON."""
    names = ("msg", "system_msgs", "format_msgs", "images")
    bound = dict(zip(names, args, strict=False))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    messages: list[dict[str, Any]] = []
    if getattr(llm, "use_system_prompt", True):
        system = bound.get("system_msgs") or [getattr(llm, "system_prompt", "")]
        messages += [{"role": "system", "content": text} for text in system]
    messages += [_as_chat_message(m) for m in bound.get("format_msgs") or []]
    msg = bound.get("msg")
    if isinstance(msg, list):
        messages += [_as_chat_message(m) for m in msg]
    else:
        messages.append({"role": "user", "content": msg})
    request: dict[str, Any] = {"messages": messages}
    model = model_name(llm)
    if model:
        request["model"] = model
    images = bound.get("images")
    if images:  # each by its URL, or by a digest of its data (a base64 image: a replay must send the same one)
        request["images"] = [_image_key(image) for image in (images if isinstance(images, list) else [images])]
    return request


def _image_key(image: Any) -> str:
    """An image as a request records it: a URL as it is, image data (base64, bytes) by its size and sha256."""
    if isinstance(image, str) and image.startswith(("http://", "https://")) and len(image) <= 2048:
        return image
    data = image if isinstance(image, bytes) else str(image).encode("utf-8")
    return f"image of {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:32]}"


def model_name(llm: Any) -> str | None:
    config = getattr(llm, "config", None)
    name = getattr(config, "model", None) or getattr(llm, "model", None)
    return str(name) if name else None


def traced_aask(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """wrapt wrapper for ``aask``: under an active run the call goes through ``Run.acall_model``."""
    run = current_run()
    if run is None:
        return wrapped(*args, **kwargs)
    agent = ACTOR.get() or UNKNOWN_ACTOR
    if THINKING.get():  # choosing the next action: the call is the role's, but its step is not its answer
        THINKING_CALLS.setdefault(run, set()).add((agent, run.next_call_index(agent)))
    else:
        todo = getattr(getattr(ROLE.get(), "rc", None), "todo", None)
        if todo is not None:  # (its name is made at publish, for the one call that may have made the message)
            CALL_ACTIONS.setdefault(run, {})[(agent, run.next_call_index(agent))] = type(todo)
    produces = not _an_earlier_action_taken_for_the_maker(run, agent, ROLE.get())
    counted: list[int] = []  # the tokens the provider reports for this call (``_update_costs``), summed

    async def ask() -> Any:
        token = _USAGE.set(counted)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _USAGE.reset(token)

    return run.acall_model(
        agent, aask_request(instance, args, kwargs), ask, TEXT_CODEC,
        produces_step=produces, model=model_name(instance), usage_of=lambda _text: _usage(counted),
    )


def _an_earlier_action_taken_for_the_maker(run: Run, agent: str, role: Any) -> bool:
    """Whether a replay's call is the one its recording says made the replaced step, while live it is a BY_ORDER
    role's action before its last: what the role publishes is its last action's, so this call made no message (a
    recording made before a message's maker was its last action's call says otherwise). Such a call is served as
    recorded, and the action goes into the message at publish."""
    rc = getattr(role, "rc", None)
    if rc is None or run.plan is None or run.cassette is None or THINKING.get():
        return False
    mode = getattr(rc, "react_mode", None)
    if str(getattr(mode, "value", mode)) != "by_order":
        return False
    if run.cassette.replaced_call(run.plan.step) != (agent, run.next_call_index(agent)):
        return False
    state, states = getattr(rc, "state", -1), getattr(role, "states", None) or ()
    return isinstance(state, int) and 0 <= state < len(states) - 1


_USAGE: ContextVar[list[int] | None] = ContextVar("agentracer_metagpt_usage", default=None)


def traced_update_costs(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """wrapt wrapper for ``BaseLLM._update_costs(usage, ...)``, where every provider reports a call's tokens (whether
    or not it counts costs): inside a traced ``aask`` they are the call's usage."""
    counted = _USAGE.get()
    if counted is not None:
        usage = args[0] if args else kwargs.get("usage")
        dump = getattr(usage, "model_dump", None)  # (a pydantic CompletionUsage)
        if callable(dump):
            usage = dump()
        if isinstance(usage, dict):
            tokens = [_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))]
            counted[:] = tokens if not counted else [a + b for a, b in zip(counted, tokens, strict=True)]
    return wrapped(*args, **kwargs)


def _count(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def _usage(counted: list[int]) -> Usage | None:
    """The call's usage, None when its provider reported none."""
    return built(Usage, {"prompt_tokens": counted[0], "completion_tokens": counted[1]}) if counted else None
