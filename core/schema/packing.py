"""Packed requests (schema 2.0): a record writes each distinct message of its model requests once.

Every model call of a team re-sends its agent's conversation, so a record holding each request whole grows with the
square of the run's length (the requests were 86 % of a 50-message AutoGen run's JSON). A packed record keeps the
messages in one table, ``request_messages``, and each request's ``messages`` as the list of their positions in it.
Reading a record rebuilds every request whole (requests then share their message objects); the request hashes are
those of the whole requests, as recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic_core import to_json

if TYPE_CHECKING:
    from . import ModelCall, Trajectory

TABLE_KEY = "request_messages"


class _Table:
    """The distinct messages of a run's requests, in order of first use; a message found by identity first (a
    recording's requests share their conversation's message objects), then by its JSON."""

    def __init__(self) -> None:
        self.texts: list[bytes] = []
        self._by_id: dict[int, int] = {}
        self._by_text: dict[bytes, int] = {}

    def position(self, message: Any) -> int:
        found = self._by_id.get(id(message))  # (every message is held by the trajectory: its id stays its own)
        if found is None:
            # (``model_dump_json``'s serializer and settings: the JSON the whole request had, NaN and infinities null)
            text = to_json(message, inf_nan_mode="null")
            found = self._by_text.get(text)
            if found is None:
                found = self._by_text[text] = len(self.texts)
                self.texts.append(text)
            self._by_id[id(message)] = found
        return found


def _packed_calls(calls: list[ModelCall], table: _Table) -> list[ModelCall] | None:
    """Copies of ``calls`` with their requests' messages as positions in ``table`` (None: no call has a list)."""
    if not any(type(call.request.get("messages")) is list for call in calls):
        return None
    out = []
    for call in calls:
        messages = call.request.get("messages")
        if type(messages) is list:
            request = {**call.request, "messages": [table.position(message) for message in messages]}
            call = call.model_copy(update={"request": request})
        out.append(call)
    return out


def packed_json(trajectory: Trajectory) -> str:
    """The record of ``trajectory``: its JSON with the requests' messages packed (``model_dump_json``'s own when no
    request has a list of messages). Raises ``ValueError`` for content no JSON holds, as ``model_dump_json`` does."""
    table = _Table()
    steps = []
    for step in trajectory.steps:
        calls = _packed_calls(step.model_calls, table) if step.model_calls else None
        steps.append(step if calls is None else step.model_copy(update={"model_calls": calls}))
    update: dict[str, Any] = {"steps": steps}
    unattached = _packed_calls(trajectory.unattached_calls, table)
    if unattached is not None:
        update["unattached_calls"] = unattached
    if not table.texts:
        return trajectory.model_dump_json()
    text = trajectory.model_copy(update=update).model_dump_json()
    # (the table is no field the dump writes: it goes last, where the record's closing brace was)
    return f'{text[:-1]},"{TABLE_KEY}":[{b",".join(table.texts).decode("utf-8")}]}}'


def _messages_of(call: Any) -> tuple[dict[str, Any], list[Any]] | None:
    """A recorded call's request and its list of messages, if it has one (a record's fields, unchecked yet)."""
    request = call.get("request") if isinstance(call, dict) else None
    messages = request.get("messages") if isinstance(request, dict) else None
    return (request, messages) if isinstance(request, dict) and isinstance(messages, list) else None


def _unpacked_calls(calls: Any, table: list[Any], where: str) -> Any:
    if not isinstance(calls, list):
        return calls  # (the schema's own check names what is wrong with it)
    out = []
    for k, call in enumerate(calls):
        found = _messages_of(call)
        if found is not None:
            request, messages = found
            whole = []
            for j, position in enumerate(messages):
                if type(position) is not int or not 0 <= position < len(table):
                    raise ValueError(f"{where}[{k}].request.messages[{j}] is {str(position)[:40]!r}, not a position "
                                     f"in {TABLE_KEY} ({len(table)} messages)")
                whole.append(table[position])
            call = {**call, "request": {**request, "messages": whole}}
        out.append(call)
    return out


def _positions_only(calls: Any) -> str | None:
    """Where the first request whose messages are positions is, among ``calls`` (None: none is)."""
    for k, call in enumerate(calls if isinstance(calls, list) else ()):
        found = _messages_of(call)
        if found is not None and found[1] and all(type(m) is int for m in found[1]):
            return f"[{k}].request.messages"
    return None


def _check_whole(data: dict[str, Any]) -> None:
    """A packed record that lost its table (a tool that keeps only the keys it knows) would read with messages that
    are numbers: ``ValueError`` naming the first such request. (Messages are objects or texts, never numbers.)"""
    steps = data.get("steps")
    for i, step in enumerate(steps if isinstance(steps, list) else ()):
        where = _positions_only(step.get("model_calls")) if isinstance(step, dict) else None
        if where is not None:
            raise ValueError(f"steps[{i}].model_calls{where} are positions in a {TABLE_KEY} table the record does "
                             f"not have (it was dropped from the record?)")
    where = _positions_only(data.get("unattached_calls"))
    if where is not None:
        raise ValueError(f"unattached_calls{where} are positions in a {TABLE_KEY} table the record does not have "
                         f"(it was dropped from the record?)")


def unpacked(data: dict[str, Any]) -> dict[str, Any]:
    """A record's fields with its requests whole again (``data`` itself when it is not packed); ``ValueError`` naming
    the request whose messages are no positions in the table."""
    table = data.get(TABLE_KEY)
    if table is None:
        _check_whole(data)
        return data
    if not isinstance(table, list):
        raise ValueError(f"{TABLE_KEY} is a {type(table).__name__}, not a list of messages")
    data = {key: value for key, value in data.items() if key != TABLE_KEY}
    steps = data.get("steps")
    if isinstance(steps, list):
        data["steps"] = [
            {**step, "model_calls": _unpacked_calls(step["model_calls"], table, f"steps[{i}].model_calls")}
            if isinstance(step, dict) and "model_calls" in step else step
            for i, step in enumerate(steps)]
    if "unattached_calls" in data:
        data["unattached_calls"] = _unpacked_calls(data["unattached_calls"], table, "unattached_calls")
    return data
