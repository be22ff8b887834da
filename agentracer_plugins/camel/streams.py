"""Streaming answers (``stream=True``): read whole for the recording, handed back to CAMEL as it reads them.

A model with ``stream=True`` answers with a stream of ``ChatCompletionChunk`` or, for structured output
(``response_format``), with a stream manager of events (``ChatCompletionStreamManager`` and its async twin). Its
call is recorded whole: the live answer is read to its end and put together into one ChatCompletion (what is
recorded, and what a replay serves), and CAMEL gets back what the model sent: the same chunks, or a stand-in
manager with the same events and final completion. A served or replaced answer reaches CAMEL as the chunks of its
ChatCompletion, or as the events of one content delta and its parsed result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

from .codec import assemble, chunks_of


def streaming_backend(backend: Any) -> bool:
    """Whether a model backend answers with streams (``stream=True`` in its config)."""
    config = getattr(backend, "model_config_dict", None)
    return isinstance(config, dict) and bool(config.get("stream"))


def streaming_agent(agent: Any) -> bool:
    """Whether a ChatAgent's model streams."""
    return streaming_backend(getattr(agent, "model_backend", None))


class LiveAnswer:
    """What was read from a live streaming answer: its chunks, or a structured stream's events."""

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.events: list[Any] | None = None


def _structured(response: Any, enter: str, iterate: str) -> bool:
    """CAMEL's own test: a context manager that is not itself iterable is a structured-output stream manager."""
    return hasattr(response, enter) and not hasattr(response, iterate)


def read(response: Any, seen: LiveAnswer) -> Any:
    """The ChatCompletion a live answer adds up to (a ChatCompletion: itself)."""
    if hasattr(response, "choices"):
        return response
    if _structured(response, "__enter__", "__iter__"):
        with response as stream:
            seen.events = list(stream)
            return stream.get_final_completion()
    try:
        seen.chunks.extend(response)
    finally:
        close = getattr(response, "close", None)
        if callable(close):
            close()
    return assemble(seen.chunks)


async def aread(response: Any, seen: LiveAnswer) -> Any:
    """``read`` for an async answer."""
    if hasattr(response, "choices"):
        return response
    if _structured(response, "__aenter__", "__aiter__"):
        async with response as stream:
            seen.events = [event async for event in stream]
            return await stream.get_final_completion()
    try:
        async for chunk in response:
            seen.chunks.append(chunk)
    finally:
        close = getattr(response, "aclose", None) or getattr(response, "close", None)
        if callable(close):
            closed = close()
            if hasattr(closed, "__await__"):
                await closed
    return assemble(seen.chunks)


def _events_of(completion: Any, response_format: Any) -> list[Any]:
    """A structured stream's events for a served or replaced answer: its text at once, then the parsed result."""
    text = completion.choices[0].message.content or ""
    parsed = None
    validate = getattr(response_format, "model_validate_json", None)
    if callable(validate):
        try:
            parsed = validate(text)
        except ValueError:  # a replacement that does not fit the format: CAMEL gets the text alone
            parsed = None
    return [SimpleNamespace(type="content.delta", delta=text), SimpleNamespace(type="content.done", content=text,
                                                                               parsed=parsed)]


class _Stream:
    def __init__(self, events: list[Any], final: Any) -> None:
        self._events, self._final = events, final

    def __iter__(self) -> Iterator[Any]:
        return iter(self._events)

    def get_final_completion(self) -> Any:
        return self._final


class StructuredStream:
    """Stands in for a structured-output stream manager that was read whole (or never called)."""

    def __init__(self, events: list[Any], final: Any) -> None:
        self._stream = _Stream(events, final)

    def __enter__(self) -> _Stream:
        return self._stream

    def __exit__(self, *exc: object) -> None:
        return None


class _AsyncStream:
    def __init__(self, events: list[Any], final: Any) -> None:
        self._events, self._final = events, final

    async def __aiter__(self) -> AsyncIterator[Any]:
        for event in self._events:
            yield event

    async def get_final_completion(self) -> Any:
        return self._final


class AsyncStructuredStream:
    """``StructuredStream`` for async code."""

    def __init__(self, events: list[Any], final: Any) -> None:
        self._stream = _AsyncStream(events, final)

    async def __aenter__(self) -> _AsyncStream:
        return self._stream

    async def __aexit__(self, *exc: object) -> None:
        return None


def chunk_stream(chunks: list[Any]) -> Iterator[Any]:
    """``chunks`` as a stream (a generator, which CAMEL reads as one)."""
    yield from chunks


async def async_chunk_stream(chunks: list[Any]) -> AsyncIterator[Any]:
    """``chunks`` as an async stream."""
    for chunk in chunks:
        yield chunk


def _structured_events(completion: Any, seen: LiveAnswer, response_format: Any) -> list[Any] | None:
    """The events CAMEL gets for a structured-output call: the live ones, or those of the served or replaced
    ``completion``; None for a call answered with chunks."""
    if seen.events is not None:
        return seen.events
    if response_format is not None and not seen.chunks:
        return _events_of(completion, response_format)
    return None


def handed_back(completion: Any, seen: LiveAnswer, response_format: Any) -> Any:
    """What CAMEL gets for a streaming call: what the model sent, or the served or replaced ``completion`` as a
    stream of the same kind."""
    events = _structured_events(completion, seen, response_format)
    if events is not None:
        return StructuredStream(events, completion)
    return chunk_stream(seen.chunks or chunks_of(completion))


def ahanded_back(completion: Any, seen: LiveAnswer, response_format: Any) -> Any:
    """``handed_back`` for an async call."""
    events = _structured_events(completion, seen, response_format)
    if events is not None:
        return AsyncStructuredStream(events, completion)
    return async_chunk_stream(seen.chunks or chunks_of(completion))
