"""The model interface every backend implements, and a scripted model for offline runs."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import ServiceError
from ..schema import Usage

Message = dict[str, Any]

#: Characters per token of the cheap estimate (English prose is ~4; code, JSON and URLs are denser).
CHARS_PER_TOKEN = 3.0


def estimate_tokens(text: str) -> int:
    """A cheap, deliberately generous token estimate for budgeting prompts when no tokenizer is at hand: about three
    bytes of UTF-8 a token (three characters of English, one Chinese character), a digit a token (tokenizers such as
    Qwen's split numbers into digits), an emoji two. (Three characters a token whatever the script under-counted
    Chinese text three times over, and verl then dropped the prompts it found too long without a word.)"""
    if text.isascii():
        size = len(text)
    else:  # (UTF-8 bytes, and two more for each character outside the BMP: an emoji is four bytes, two tokens)
        size = len(text.encode("utf-8", "surrogatepass"))
        size += 2 * (len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text))
    digits = sum(map(text.count, _DIGITS))
    return int((size + 2 * digits) / CHARS_PER_TOKEN) + 1


_DIGITS = "0123456789"


class ModelError(ServiceError):
    """A model backend failed after its retries (server down, timeouts, rate limits, bad answer)."""


class RequestRefused(ModelError):
    """The server refused this one request as it stands (HTTP 400, 413, 422: a prompt over its context window, a
    parameter it does not take): another request may well go through, so a batch goes on without this item."""


@dataclass
class Completion:
    """One model answer: its text, token usage, whether it came from a cache, and the raw payload."""

    text: str
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    raw: Any = None


@runtime_checkable
class ChatModel(Protocol):
    """A chat model: messages in, a ``Completion`` out. ``abatch`` runs many with bounded concurrency."""

    name: str

    async def acomplete(self, messages: Sequence[Message], **params: Any) -> Completion: ...

    def complete(self, messages: Sequence[Message], **params: Any) -> Completion: ...

    async def abatch(self, requests: Sequence[Sequence[Message]], **params: Any) -> list[Completion | Exception]: ...


class BaseChatModel:
    """Shared plumbing: sync ``complete`` and ``abatch`` on top of an async ``acomplete``."""

    name = "model"
    max_concurrency = 8
    #: Tokens the model reads at most (prompt + answer); ``None`` when unknown (tracers then use a default).
    context_window: int | None = None

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``: the cheap estimate unless the backend has a tokenizer."""
        return estimate_tokens(text)

    async def acomplete(self, messages: Sequence[Message], **params: Any) -> Completion:  # pragma: no cover
        raise NotImplementedError

    def complete(self, messages: Sequence[Message], **params: Any) -> Completion:
        from ..team import run_sync

        return run_sync(self.acomplete(messages, **params))

    async def abatch(self, requests: Sequence[Sequence[Message]], **params: Any) -> list[Completion | Exception]:
        """Complete every request, at most ``max_concurrency`` at once; failures are returned, not raised."""
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(messages: Sequence[Message]) -> Completion | Exception:
            async with gate:
                try:
                    return await self.acomplete(messages, **params)
                except Exception as exc:  # returned so one bad item never sinks the batch
                    return exc

        return list(await asyncio.gather(*(one(m) for m in requests)))


class ScriptedModel(BaseChatModel):
    """A deterministic model for tests and demos: answers from a list in order, or from a function.

    It is a *scripted* model, not a language model; every place that uses one says so to the user.
    """

    def __init__(
        self,
        answers: Iterable[str] | Callable[[Sequence[Message]], str],
        *,
        name: str = "scripted",
        cycle: bool = False,
    ) -> None:
        self.name = name
        self._fn = answers if callable(answers) else None
        items = [] if callable(answers) else list(answers)
        self._answers = itertools.cycle(items) if cycle and items else iter(items)
        self._lock = threading.Lock()
        self.calls: list[list[Message]] = []

    async def acomplete(self, messages: Sequence[Message], **params: Any) -> Completion:
        with self._lock:
            self.calls.append([dict(m) for m in messages])
            if self._fn is not None:
                text = self._fn(messages)
            else:
                try:
                    text = next(self._answers)
                except StopIteration:
                    raise ModelError(f"scripted model {self.name!r} ran out of answers") from None
        prompt = sum(len(str(m.get("content", ""))) for m in messages) // 4
        return Completion(text=text, usage=Usage(prompt_tokens=prompt, completion_tokens=len(text) // 4))
