"""AutoGen model traffic as JSON: requests (for hashing and diffs) and ``CreateResult`` responses (both ways).

The codec also builds the replacement response for the replaced step: a text, a tool-call list
(``{"tool_calls": [{"name": ..., "arguments": {...}}]}``), or, for a Magentic-One progress ledger, the
recorded ledger with its instruction replaced so the orchestrator still parses it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentracer import ModelCall, ReplayError, Usage
from agentracer.redact import FrozenJSON, RawMessages
from agentracer.schema import built
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, FunctionExecutionResult, RequestUsage

LEDGER_INSTRUCTION_KEY = "instruction_or_question"


def _content(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return [_part(item) for item in value]
    return str(value)


def _part(item: Any) -> Any:
    if isinstance(item, str):
        return item
    if isinstance(item, FunctionCall):
        return {"id": item.id, "name": item.name, "arguments": item.arguments}
    if isinstance(item, FunctionExecutionResult):
        return {"call_id": item.call_id, "name": item.name, "content": item.content, "is_error": item.is_error}
    return f"<{type(item).__name__}>"


_MESSAGE_FIELDS = ("type", "content", "source", "thought")


def _fields(message: Any) -> dict[str, Any]:
    """The fields of an ``LLMMessage``: a pydantic model keeps them in ``__dict__`` (and asking it for a field
    a message type lacks, e.g. a ``UserMessage``'s thought, costs an exception)."""
    fields = getattr(message, "__dict__", None)
    return fields if isinstance(fields, dict) else {k: getattr(message, k, None) for k in _MESSAGE_FIELDS}


def encode_message(message: Any) -> dict[str, Any]:
    """One ``LLMMessage`` as a small JSON object (type, source, content, thought), never changed afterwards."""
    return _encode_fields(message, _fields(message))


def _encode_fields(message: Any, fields: dict[str, Any]) -> dict[str, Any]:
    data = FrozenJSON(type=fields.get("type") or type(message).__name__, content=_content(fields.get("content", "")))
    source = fields.get("source")
    if source is not None:
        data["source"] = source
    thought = fields.get("thought")
    if thought:
        data["thought"] = thought
    return data


def _tool_name(tool: Any) -> str:
    if isinstance(tool, Mapping):
        return str(tool.get("name", ""))
    return str(getattr(tool, "name", tool))


def tool_schema(tool: Any) -> dict[str, Any] | str:
    """What a request records of a tool it offers: its name, description and parameters (a changed description or
    argument is a changed prompt, which a replay must notice), as JSON; its name when it has no schema."""
    schema = tool if isinstance(tool, Mapping) else getattr(tool, "schema", None)
    if not isinstance(schema, Mapping):
        return _tool_name(tool)
    kept = {key: schema[key] for key in ("name", "description", "parameters", "strict") if key in schema}
    return json.loads(json.dumps(kept, default=str))


class ToolSchemas:
    """The tools of a run's requests, each tool's schema made once (a request offers the same tools every call).
    ``by_name``: as recordings made before schemas were recorded list them (a replay of one hashes its requests
    alike)."""

    def __init__(self, *, by_name: bool = False) -> None:
        self.by_name = by_name
        self._made: dict[int, dict[str, Any] | str] = {}
        self._held: list[Any] = []  # holding a tool keeps its id unique

    def __call__(self, tools: Sequence[Any]) -> list[Any]:
        if self.by_name:
            return [_tool_name(tool) for tool in tools]
        out = []
        for tool in tools:
            if isinstance(tool, Mapping):  # (a workbench's schema, made afresh on every call: read as it is now)
                out.append(tool_schema(tool))
                continue
            found = self._made.get(id(tool))
            if found is None:  # (a tool object's schema is built from its signature: once per run)
                found = self._made[id(tool)] = tool_schema(tool)
                self._held.append(tool)
            out.append(found)
        return out


def recorded_tools_by_name(trajectory: Any) -> bool:
    """Whether a recording lists its requests' tools by name alone (made before schemas were recorded)."""
    for call in trajectory.model_calls():
        tools = call.request.get("tools") if isinstance(call.request, dict) else None
        if tools:
            return all(isinstance(tool, str) for tool in tools)
    return False


class MessageCache:
    """Encoded messages by identity, then by value: a conversation's history is re-sent on every call (often
    as fresh copies of the same messages), so each distinct message is encoded once and the same encoded
    object comes back, which lets the recorder's redactor reuse its digest too. A request keeps its messages
    as ``RawMessages`` with ``encode_all``: the recorder encodes the ones each conversation adds when it settles."""

    def __init__(self) -> None:
        self._seen: dict[int, dict[str, Any]] = {}  # id of a message -> its encoding
        self._held: list[Any] = []
        self._by_value: dict[tuple[Any, ...], dict[str, Any]] = {}

    def encode_all(self, messages: list[Any]) -> list[dict[str, Any]]:
        """The encoding of each message: the one made before for this object or an equal one, else a new one."""
        seen, by_value, held, out = self._seen, self._by_value, self._held, []
        for message in messages:
            found = seen.get(id(message))
            if found is None:
                fields = _fields(message)
                content = fields.get("content")
                if type(content) is str:
                    key = (type(message), fields.get("source"), content, fields.get("thought"))
                    found = by_value.get(key)
                    if found is None:
                        found = by_value[key] = _encode_fields(message, fields)
                else:
                    found = _encode_fields(message, fields)
                seen[id(message)] = found
                held.append(message)  # holding the message keeps its id unique
            out.append(found)
        return out


def encode_request(args: Sequence[Any], kwargs: Mapping[str, Any], *, stream: bool,
                   cache: MessageCache | None = None, tools_of: ToolSchemas | None = None) -> dict[str, Any]:
    """The request of a ``create``/``create_stream`` call: messages, tools' schemas and output options (with a run's
    ``cache``, its messages are ``RawMessages``, encoded when the run settles its requests; with its ``tools_of``,
    each tool's schema is made once)."""
    messages = args[0] if args else kwargs.get("messages", [])
    request: dict[str, Any] = {
        "messages": RawMessages(list(messages), cache.encode_all) if cache is not None
        else [encode_message(m) for m in messages]}
    tools = kwargs.get("tools") or (args[1] if len(args) > 1 else None)
    if tools:
        request["tools"] = tools_of(tools) if tools_of is not None else [tool_schema(t) for t in tools]
    tool_choice = kwargs.get("tool_choice")
    if tool_choice not in (None, "auto"):
        request["tool_choice"] = tool_choice if isinstance(tool_choice, str) else _tool_name(tool_choice)
    json_output = kwargs.get("json_output")
    if json_output is not None:
        request["json_output"] = json_output if isinstance(json_output, bool) else getattr(
            json_output, "__name__", str(json_output))
    extra = kwargs.get("extra_create_args")
    if extra:
        request["extra_create_args"] = json.loads(json.dumps(dict(extra), default=str))
    if stream:
        request["stream"] = True
    return request


def usage_of(result: Any) -> Usage | None:
    """Token usage of a ``CreateResult``."""
    usage = getattr(result, "usage", None)
    if usage is None:
        return None
    return built(Usage, {"prompt_tokens": int(usage.prompt_tokens or 0),
                         "completion_tokens": int(usage.completion_tokens or 0)})


def parse_ledger(text: Any) -> dict[str, Any] | None:
    """A Magentic-One progress ledger (a JSON object with an instruction), or None."""
    if not isinstance(text, str) or LEDGER_INSTRUCTION_KEY not in text:
        return None
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict) and isinstance(data.get(LEDGER_INSTRUCTION_KEY), dict):
        return data
    return None


def _request_satisfied(ledger: dict[str, Any]) -> bool:
    """Whether a progress ledger says the task is done (no instruction follows it: the final answer does)."""
    satisfied = ledger.get("is_request_satisfied")
    return isinstance(satisfied, dict) and satisfied.get("answer") is True


def tool_calls_of(action: Any) -> list[FunctionCall] | None:
    """The FunctionCalls of a tool-call action, or None when the action is not one."""
    if not isinstance(action, Mapping) or "tool_calls" not in action:
        return None
    calls = action["tool_calls"]
    if not isinstance(calls, list) or not calls:
        raise ValueError("a tool-call action needs a non-empty list under 'tool_calls'")
    result = []
    for i, call in enumerate(calls):
        if not isinstance(call, Mapping) or not call.get("name"):
            raise ValueError(f"tool_calls[{i}] needs a 'name'")
        arguments = call.get("arguments") or {}
        result.append(FunctionCall(
            id=str(call.get("id") or f"agentracer-replaced-{i}"), name=str(call["name"]),
            arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
        ))
    return result


def _encoded(response: CreateResult, content: Any, thought: str | None) -> dict[str, Any]:
    """A ``CreateResult`` as JSON, given its content and thought as they are to be recorded (logprobs aside)."""
    usage = response.usage
    data: dict[str, Any] = {
        "finish_reason": response.finish_reason, "content": content,
        "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
        "cached": response.cached,
    }
    if thought is not None:
        data["thought"] = thought
    return data


class CreateResultCodec:
    """``CreateResult`` ⇄ JSON, and the replacement result for an action."""

    def encode(self, response: CreateResult) -> Any:
        data = _encoded(response, _content(response.content), response.thought)
        if response.logprobs:
            data["logprobs"] = [p.model_dump(mode="json") for p in response.logprobs]
        return data

    def encode_screened(self, response: CreateResult, text: Callable[[str], str]) -> Any | None:
        """``encode(response)`` as redaction would leave it, for a text response (every other value is a number, a
        flag or a finish reason): its strings go through ``text``, the recorder's string redaction; None for
        other responses, which the recorder redacts whole."""
        content, thought = response.content, response.thought
        if type(content) is not str or response.logprobs or not (thought is None or type(thought) is str):
            return None
        return _encoded(response, text(content), None if thought is None else text(thought))

    def decode(self, data: Any) -> CreateResult:
        return CreateResult.model_validate(data)

    def replacement(self, action: Any, recorded: ModelCall | None) -> CreateResult:
        empty = RequestUsage(prompt_tokens=0, completion_tokens=0)
        calls = tool_calls_of(action)
        if calls is not None:
            return CreateResult(finish_reason="function_calls", content=calls, usage=empty, cached=False)
        text = action if isinstance(action, str) else json.dumps(action, ensure_ascii=False)
        recorded_text = (recorded.response or {}).get("content") if recorded is not None and isinstance(
            recorded.response, dict) else None
        ledger = parse_ledger(recorded_text) if isinstance(action, str) else None
        if ledger is not None and _request_satisfied(ledger):  # the last ledger: the final answer, a call of its
            text = str(recorded_text)                             # own, is what the replaced step shows
        elif ledger is not None:
            ledger[LEDGER_INSTRUCTION_KEY] = {**ledger[LEDGER_INSTRUCTION_KEY], "answer": action}
            text = json.dumps(ledger, ensure_ascii=False)
        return CreateResult(finish_reason="stop", content=text, usage=empty, cached=False)


CODEC = CreateResultCodec()


class HumanInputCodec:
    """A ``UserProxyAgent``'s input, recorded as a call of model ``"human"``: the text the human typed."""

    def encode(self, response: Any) -> Any:
        return {"content": str(response)}

    def decode(self, data: Any) -> Any:
        return data["content"]

    def replacement(self, action: Any, recorded: Any) -> Any:
        if not isinstance(action, str):
            raise ReplayError("a human's turn (a UserProxyAgent's input) is replaced by a text")
        return action


HUMAN_CODEC = HumanInputCodec()
