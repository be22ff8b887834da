"""What was derived from each conversation's messages, kept so that a conversation re-sent grows at its end only.

Every model call of a team re-sends its agent's whole conversation. A recorder that turns each message into
something (its JSON encoding, its digest) looks each one up again on every call unless it remembers the list it
saw last: then a call costs one comparison of the known part (at C speed, by identity) and the new messages.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

DeriveAll = Callable[[Sequence[Any]], list[Any]]
_Known = tuple[list[Any], list[Any]]  # a conversation's latest messages and the values derived from them


class Conversations:
    """The latest message list of each conversation and the values derived from it. ``derived(messages)`` gives
    ``derive_all(messages)``, computing it for the new messages only when ``messages`` begins with the whole list
    seen last in one of the known conversations (the same objects, or equal ones: ``derive_all`` must give equal
    values for equal messages). A conversation that changed otherwise (a window that dropped old messages, an
    edited message) is derived again from scratch.

    Candidates are found by their first message's identity (or ``key``): agents of one team often begin with
    the same message (one default system prompt), so up to ``per_key`` conversations share a key, and the
    longest known beginning wins."""

    def __init__(self, derive_all: DeriveAll, *, key: Callable[[Any], Hashable] = id, limit: int = 32,
                 per_key: int = 8) -> None:
        self._derive_all = derive_all
        self._key = key  # of a conversation's first message: only picks the candidates, the comparison decides
        self._limit = limit  # first messages kept (with all their conversations)
        self._per_key = per_key  # conversations kept per first message: a team's agents, each with one
        self._latest: dict[Hashable, list[_Known]] = {}  # key of a first message -> its known conversations

    def derived(self, messages: Sequence[Any]) -> list[Any]:
        """``derive_all(messages)``, reusing the values of the longest known beginning of ``messages``."""
        if not messages:
            return []
        if type(messages) is not list:
            messages = list(messages)
        try:
            key = self._key(messages[0])
        except TypeError:  # a first message that can't be a key: no memory for this conversation
            return self._derive_all(messages)
        known = self._latest.get(key)
        if known is None:
            if len(self._latest) >= self._limit:
                del self._latest[next(iter(self._latest))]  # the first message seen first
            known = self._latest[key] = []
        best, best_n = -1, 0
        for i, (seen, _values) in enumerate(known):
            n = len(seen)
            if best_n < n <= len(messages) and messages[:n] == seen:
                best, best_n = i, n
        if best >= 0:
            values = known[best][1] + self._derive_all(messages[best_n:])
            known[best] = (messages.copy(), values)
        else:
            values = self._derive_all(messages)
            known.append((messages.copy(), values))  # holding its first message keeps the key's identity unique
            if len(known) > self._per_key:
                del known[0]  # the conversation that started first
        return values.copy()  # callers may keep (or change) what they get
