"""What was derived from each conversation's messages, kept so that a conversation re-sent grows at its end only.

Every model call of a team re-sends its agent's whole conversation. A recorder that turns each message into
something (its JSON encoding, its digest) looks each one up again on every call unless it remembers the list it
saw last: then a call costs one comparison of the known part (at C speed, by identity) and the new messages.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

DeriveAll = Callable[[Sequence[Any]], list[Any]]


class Conversations:
    """The latest message list of each conversation (keyed by its first message's identity, or ``key``) and the values
    derived from it. ``derived(messages)`` gives ``derive_all(messages)``, computing it for the new messages only
    when ``messages`` begins with the whole list seen last in its conversation (the same objects, or equal ones:
    ``derive_all`` must give equal values for equal messages). A conversation that changed otherwise (a window
    that dropped old messages, an edited message) is derived again from scratch."""

    def __init__(self, derive_all: DeriveAll, *, key: Callable[[Any], Hashable] = id, limit: int = 32) -> None:
        self._derive_all = derive_all
        self._key = key  # of a conversation's first message: only picks the candidate, the comparison decides
        self._limit = limit  # conversations kept: a team's agents, each with one
        self._latest: dict[Hashable, tuple[list[Any], list[Any]]] = {}  # key of a first message -> (messages, values)

    def derived(self, messages: Sequence[Any]) -> list[Any]:
        """``derive_all(messages)``, reusing the values of the conversation's known beginning."""
        if not messages:
            return []
        if type(messages) is not list:
            messages = list(messages)
        try:
            key = self._key(messages[0])
        except TypeError:  # a first message that can't be a key: no memory for this conversation
            return self._derive_all(messages)
        latest = self._latest.get(key)
        if latest is not None:
            seen, values = latest
            n = len(seen)
            if n <= len(messages) and messages[:n] == seen:
                values = values + self._derive_all(messages[n:])
                self._latest[key] = (messages.copy(), values)
                return values.copy()  # callers may keep (or change) what they get
        values = self._derive_all(messages)
        if latest is None and len(self._latest) >= self._limit:
            del self._latest[next(iter(self._latest))]  # the conversation that started first
        self._latest[key] = (messages.copy(), values)  # holding its first message keeps the key's identity unique
        return values.copy()
