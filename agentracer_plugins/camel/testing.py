"""A scripted CAMEL model backend for offline tests, examples and benchmarks (no network, no weights).

``ScriptedModel(["first answer", {"tool_calls": [{"name": "add", "arguments": {"a": 1}}]}, ...])`` answers
each call with the next item; an item may also be a function of the OpenAI-format messages. It is a real
``BaseModelBackend`` subclass, so ChatAgent, RolePlaying and Workforce drive it through CAMEL's own code.
With ``stream=True`` it answers as a streaming model does: ``ChatCompletionChunk`` objects, each text in
``pieces`` parts.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from camel.models import BaseModelBackend
from camel.models.stub_model import StubTokenCounter
from camel.types import ModelType

from .codec import chunks_of, completion
from .streams import async_chunk_stream, chunk_stream, streaming_backend

Answer = str | dict[str, Any] | Callable[[list[dict[str, Any]]], Any]


class ScriptExhausted(RuntimeError):
    """The scripted model was asked more often than it has answers."""


class ScriptedModel(BaseModelBackend):
    """Answers calls from a script, in order (``cycle=True`` repeats it); counts its calls in ``calls``."""

    def __init__(self, script: Iterable[Answer], *, cycle: bool = False, latency: float = 0.0,
                 name: str = "scripted", stream: bool = False, pieces: int = 3) -> None:
        super().__init__(ModelType.STUB, {"stream": True} if stream else {}, None, None, StubTokenCounter(), None, 0)
        self.pieces = pieces
        items = list(script)
        self._script = itertools.cycle(items) if cycle and items else iter(items)
        self._lock = threading.Lock()
        self.latency = latency
        self.name = name
        self.calls = 0
        self.requests: list[list[dict[str, Any]]] = []

    @property
    def token_counter(self) -> StubTokenCounter:
        return self._token_counter  # type: ignore[return-value]

    def _answer(self, messages: list[dict[str, Any]]) -> Any:
        with self._lock:
            self.calls += 1
            self.requests.append(list(messages))
            try:
                item = next(self._script)
            except StopIteration:
                raise ScriptExhausted(f"scripted model {self.name!r} has no answer for call #{self.calls}") from None
        if callable(item):
            item = item(messages)
        if isinstance(item, dict):
            calls = [dict(call, id=call.get("id") or f"call_{self.calls}_{i}")  # (unique per answer, as a real
                     for i, call in enumerate(item.get("tool_calls") or [])]  # model's: CAMEL orders memory by them)
            return completion(item.get("content"), calls or None, model=self.name, usage=(10, 5),
                              response_id=f"{self.name}-{self.calls}")
        return completion(str(item), model=self.name, usage=(10, 5), response_id=f"{self.name}-{self.calls}")

    def _run(self, messages: list[Any], response_format: Any = None, tools: Any = None) -> Any:
        if self.latency:
            time.sleep(self.latency)
        answer = self._answer(messages)
        return chunk_stream(chunks_of(answer, pieces=self.pieces)) if streaming_backend(self) else answer

    async def _arun(self, messages: list[Any], response_format: Any = None, tools: Any = None) -> Any:
        if self.latency:
            await asyncio.sleep(self.latency)
        answer = self._answer(messages)
        return async_chunk_stream(chunks_of(answer, pieces=self.pieces)) if streaming_backend(self) else answer

    @property
    def token_limit(self) -> int:
        return 1_000_000
