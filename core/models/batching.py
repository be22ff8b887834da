"""Micro-batching for local engines: concurrent ``acomplete`` calls become one batched generate call.

Tracer methods ask one question per trajectory, concurrently; a local engine (transformers, vLLM offline)
is fastest when it gets them together. ``LocalBatchModel`` collects the requests that arrive within
``batch_wait_s`` (up to ``max_concurrency``, one batch per distinct set of parameters), runs the backend's
blocking ``generate`` in a worker thread (one batch at a time), and hands each caller its answer. A batch
that raises is retried one request at a time, so one bad prompt fails alone.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from .base import BaseChatModel, Completion, Message, ModelError

Pending = list[tuple[Sequence[Message], asyncio.Future]]


class LocalBatchModel(BaseChatModel):
    """Base of local engines: subclasses implement ``generate(batch, **params) -> list[Completion | Exception]``."""

    max_concurrency = 8
    batch_wait_s = 0.005

    def __init__(self) -> None:
        self._run_lock = threading.Lock()
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, tuple[dict, Pending]]]
        self._queues = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task] = set()

    def generate(self, batch: Sequence[Sequence[Message]], **params: Any) -> list[Completion | Exception]:
        raise NotImplementedError  # pragma: no cover

    def _generate_safely(self, batch: list[Sequence[Message]], params: dict[str, Any]) -> list[Completion | Exception]:
        with self._run_lock:
            try:
                results = list(self.generate(batch, **params))
            except Exception as exc:
                if len(batch) == 1:
                    return [exc]
                results = []
                for messages in batch:
                    try:
                        results.extend(self.generate([messages], **params))
                    except Exception as single:
                        results.append(single)
        if len(results) != len(batch):
            return [ModelError(f"{self.name} returned {len(results)} answers for {len(batch)} prompts")] * len(batch)
        return results

    async def acomplete(self, messages: Sequence[Message], **params: Any) -> Completion:
        loop = asyncio.get_running_loop()
        queues = self._queues.setdefault(loop, {})
        key = json.dumps(params, sort_keys=True, default=str)
        future: asyncio.Future = loop.create_future()
        _, pending = queues.setdefault(key, (dict(params), []))
        pending[:] = [entry for entry in pending if not entry[1].done()]  # (requests given up: cancelled, timed out)
        pending.append((messages, future))
        if len(pending) >= self.max_concurrency:
            self._flush(loop, key)
        elif len(pending) == 1:
            loop.call_later(self.batch_wait_s, self._flush, loop, key)
        result = await future
        if isinstance(result, Exception):
            raise result
        return result

    def _flush(self, loop: asyncio.AbstractEventLoop, key: str) -> None:
        queues = self._queues.get(loop, {})
        params, pending = queues.pop(key, ({}, []))
        if pending:
            task = loop.create_task(self._run(pending, params))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, pending: Pending, params: dict[str, Any]) -> None:
        batch = [messages for messages, _ in pending]
        try:
            results = await asyncio.to_thread(self._generate_safely, batch, params)
        except Exception as exc:  # pragma: no cover - _generate_safely returns errors
            results = [exc] * len(batch)
        for (_, future), result in zip(pending, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def abatch(self, requests: Sequence[Sequence[Message]], **params: Any) -> list[Completion | Exception]:
        """All requests, in batches of ``max_concurrency``; failures are returned, not raised."""
        results: list[Completion | Exception] = []
        for start in range(0, len(requests), self.max_concurrency):
            chunk = list(requests[start:start + self.max_concurrency])
            results.extend(await asyncio.to_thread(self._generate_safely, chunk, dict(params)))
        return results
