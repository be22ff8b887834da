"""CAMEL's model responses are OpenAI ``ChatCompletion`` objects: turn them into JSON, back, and into replacements."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from agentracer import ModelCall, ToolCall, Usage
from agentracer.conversations import Conversations
from agentracer.redact import FrozenJSON, fill_missing
from agentracer.replay import json_copy
from agentracer.schema import built


def text(obj: Any) -> str:
    """``obj`` as a plain ``str`` (CAMEL's model types are str subclasses that pydantic cannot serialise)."""
    if type(obj) is str:
        return obj
    return str(obj).encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")


_STRINGS: set[type] = {str}  # str and the str subclasses met in messages (CAMEL's prompt types)


def _all_strings(message: dict[Any, Any]) -> bool:
    """Whether every key and value of ``message`` is a ``str`` (at C speed once its types were met)."""
    if _STRINGS.issuperset(map(type, message.values())) and _STRINGS.issuperset(map(type, message)):
        return True
    kinds = {*map(type, message.values()), *map(type, message)}
    if all(issubclass(kind, str) for kind in kinds):
        _STRINGS.update(kinds)
        return True
    return False


def _items(message: dict[Any, Any]) -> tuple[tuple[Any, Any], ...]:
    return tuple(message.items())  # TypeError for a message that is not a dict of hashable values


class MessageCopies:
    """One run's OpenAI-format messages as JSON. CAMEL rebuilds the whole conversation's dicts for every model
    call: a message of strings is copied once per distinct value into a ``FrozenJSON`` (plain ``str`` also from
    str subclasses) and that same object comes back for every equal message, so each request costs a lookup per
    message and the recorder digests each distinct message once. Other messages go through a JSON round trip."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[tuple[str, str], ...], FrozenJSON] = {}
        # CAMEL's dicts are new on every call: a conversation is known by its first message's items
        self._conversations = Conversations(self._copy_each, key=_items)

    def copy_all(self, messages: Sequence[Any]) -> list[Any]:
        """The messages of one request, each as ``copy`` gives it: a conversation re-sent with new messages at
        its end costs a comparison of the known ones (equal dicts) and a copy of the new ones."""
        return self._conversations.derived(messages)

    def _copy_each(self, messages: Sequence[Any]) -> list[Any]:
        try:
            found = list(map(self._by_value.get, map(tuple, map(dict.items, messages))))
        except TypeError:  # not all dicts, or a value that can't be hashed: one by one
            return [self.copy(m) for m in messages]
        fill_missing(found, messages, self._copy_new)
        return found

    def copy(self, message: Any) -> Any:
        if type(message) is not dict:
            return json_copy(message)
        try:
            found = self._by_value.get(tuple(message.items()))  # only messages of strings are kept
        except TypeError:  # a value that can't be hashed (a list of content parts, tool calls)
            return json_copy(message)
        return found if found is not None else self._copy_new(message)

    def _copy_new(self, message: dict[Any, Any]) -> Any:
        """A message no equal one was kept for (its items hashable): kept when it holds only strings."""
        if not _all_strings(message):
            return json_copy(message)
        copied = self._by_value[tuple(message.items())] = FrozenJSON(
            zip(map(str.__str__, message), map(str.__str__, message.values()), strict=True))
        return copied


def build_request(backend: Any, messages: Any, response_format: Any, tools: Any,
                  copies: MessageCopies | None = None) -> dict[str, Any]:
    """The request a model backend was asked, as JSON: messages, tool schemas, response format, model."""
    request: dict[str, Any] = {"model": text(getattr(backend, "model_type", "")),
                               "messages": (copies or MessageCopies()).copy_all(messages or [])}
    if tools:
        request["tools"] = json_copy(tools)
    if response_format is not None:
        request["response_format"] = getattr(response_format, "__name__", text(response_format))
    return request


def usage_of(response: Any) -> Usage | None:
    """Token usage of a ChatCompletion."""
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    return built(Usage, {"prompt_tokens": int(usage.prompt_tokens or 0),
                         "completion_tokens": int(usage.completion_tokens or 0)})


def _tool_call(index: int, name: str, arguments: Any, call_id: str | None = None) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments or {}, ensure_ascii=False)
    return {"id": call_id or f"call_{index}", "type": "function", "function": {"name": name, "arguments": args}}


def completion(content: str | None, tool_calls: list[dict[str, Any]] | None = None, *, model: str = "agentracer",
               usage: tuple[int, int] = (0, 0), response_id: str = "agentracer-replacement") -> Any:
    """A ChatCompletion holding ``content`` or ``tool_calls`` ({"name", "arguments"[, "id"]} dicts)."""
    from camel.types import ChatCompletion

    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [_tool_call(i, c["name"], c.get("arguments", {}), c.get("id"))
                                 for i, c in enumerate(tool_calls)]
    return ChatCompletion.model_validate({
        "id": response_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop",
                     "logprobs": None}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    })


def _pieces(text: str, count: int) -> list[str]:
    """``text`` cut into ``count`` parts (fewer for a short text; none for an empty one)."""
    size = max(1, -(-len(text) // max(count, 1)))
    return [text[i:i + size] for i in range(0, len(text), size)]


def chunks_of(response: Any, *, pieces: int = 1) -> list[Any]:
    """A ChatCompletion as the ``ChatCompletionChunk`` stream a model with ``stream=True`` sends: its text (and each
    tool call's arguments) in ``pieces`` parts, a chunk with the finish reason, and one with the usage. A replay
    serves recorded and replaced answers to a streaming agent this way."""
    from camel.types import ChatCompletionChunk

    choice = response.choices[0]
    message = choice.message
    base = {"id": response.id, "object": "chat.completion.chunk", "created": response.created, "model": response.model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": ""})]
    reasoning = getattr(message, "reasoning_content", None)
    if isinstance(reasoning, str) and reasoning:
        out += [chunk({"reasoning_content": part}) for part in _pieces(reasoning, pieces)]
    out += [chunk({"content": part}) for part in _pieces(message.content or "", pieces)]
    for index, call in enumerate(message.tool_calls or []):
        for number, part in enumerate(_pieces(call.function.arguments or "", pieces) or [""]):
            function: dict[str, Any] = {"arguments": part}
            delta_call: dict[str, Any] = {"index": index, "function": function}
            if number == 0:
                delta_call.update(id=call.id, type="function")
                function["name"] = call.function.name
            out.append(chunk({"tool_calls": [delta_call]}))
    out.append(chunk({}, choice.finish_reason or "stop"))
    if response.usage is not None:
        out.append({**base, "choices": [], "usage": response.usage.model_dump(mode="json", exclude_none=True)})
    return [ChatCompletionChunk.model_validate(c) for c in out]


def assemble(chunks: Sequence[Any]) -> Any:
    """The ChatCompletion a stream of ``ChatCompletionChunk`` adds up to (its first choice, the one CAMEL reads):
    the text, the tool calls put together by their index, the finish reason and the usage the stream reported."""
    from camel.types import ChatCompletion

    if not chunks:
        raise ValueError("the model's stream ended before its first chunk")
    first, text, reasoning, finish, usage = chunks[0], [], [], None, None
    calls: dict[int, dict[str, Any]] = {}
    for piece in chunks:
        if getattr(piece, "usage", None) is not None:
            usage = piece.usage.model_dump(mode="json", exclude_none=True)
        for choice in piece.choices or []:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
            thought = getattr(delta, "reasoning_content", None)
            if isinstance(thought, str) and thought:
                reasoning.append(thought)
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function is not None:
                    slot["name"] = call.function.name or slot["name"]  # sent whole, once
                    slot["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [_tool_call(i, slot["name"], slot["arguments"], slot["id"] or f"call_{i}")
                                 for i, slot in sorted(calls.items())]
    data: dict[str, Any] = {
        "id": first.id, "object": "chat.completion", "created": first.created, "model": first.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish or ("tool_calls" if calls else "stop"),
                     "logprobs": None}],
    }
    if usage is not None:
        data["usage"] = usage
    return ChatCompletion.model_validate(data)


def tool_calls_of(response: Any) -> list[ToolCall]:
    """The tool calls a ChatCompletion asks for (arguments parsed from JSON where possible)."""
    message = response.choices[0].message
    calls = []
    for call in message.tool_calls or []:
        raw = call.function.arguments
        try:
            arguments = json.loads(raw) if raw else {}
        except (TypeError, ValueError):
            arguments = raw
        calls.append(ToolCall(id=call.id or "", name=call.function.name, arguments=arguments))
    return calls


class ChatCompletionCodec:
    """Encode/decode ChatCompletions; ``replacement`` makes one from a text or a tool-call action."""

    def encode(self, response: Any) -> Any:
        """The response as JSON without the fields at their defaults (``decode`` restores them): a completion
        holds about twice as many ``None`` fields as values, each stored, screened for secrets and shown."""
        return response.model_dump(mode="json", warnings=False, exclude_defaults=True)

    def decode(self, data: Any) -> Any:
        from camel.types import ChatCompletion

        return ChatCompletion.model_validate(data)

    def replacement(self, action: Any, recorded: ModelCall | None) -> Any:
        model = "agentracer"
        if recorded is not None and isinstance(recorded.response, dict):
            model = recorded.response.get("model") or model
        if isinstance(action, dict) and ("tool_calls" in action or "content" in action) and set(action) <= MESSAGE_KEYS:
            calls = action.get("tool_calls") or []
            for call in calls:
                if not isinstance(call, dict) or "name" not in call:
                    raise ValueError(f"a replacement tool call needs a 'name': {call!r}")
            content = action.get("content")
            # ids of their own: a model numbers its calls from call_0 in every answer, and CAMEL's memory would take a
            # replaced call for an earlier one of the same id (the earlier call's result went to the new call)
            calls = [call if call.get("id") else {**call, "id": f"call_replaced_{i}"} for i, call in enumerate(calls)]
            return completion(content, calls, model=model, usage=_replaced_usage(recorded, _size(content, calls)))
        text = action if isinstance(action, str) else json.dumps(action, ensure_ascii=False, default=str)
        return completion(text, model=model, usage=_replaced_usage(recorded, _size(text, None)))


MESSAGE_KEYS = frozenset({"content", "tool_calls"})  # a dict of only these is an answer; any other, structured output


def _size(content: Any, tool_calls: Any) -> int:
    """How much an answer says, in characters: its text and its tool calls."""
    return len(content if isinstance(content, str) else "") + (len(json.dumps(tool_calls, default=str))
                                                             if tool_calls else 0)


def _replaced_usage(recorded: ModelCall | None, size: int) -> tuple[int, int]:
    """The usage a replaced answer reports: the recorded prompt's tokens (the same prompt was asked), and the recorded
    answer's tokens scaled to the replacement's length. CAMEL counts its context from the usage its model reports,
    and decides when to summarise or cut its memory by that count: zeros would make it decide otherwise."""
    if recorded is None or recorded.usage is None:
        return 0, 0
    prompt, answer = recorded.usage.prompt_tokens, recorded.usage.completion_tokens
    message = (recorded.response or {}).get("choices", [{}])[0].get("message", {}) if isinstance(
        recorded.response, dict) else {}
    before = _size(message.get("content"), message.get("tool_calls"))
    return prompt, (round(answer * size / before) if before else answer)


CODEC = ChatCompletionCodec()
