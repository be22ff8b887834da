"""Offline parts for tests, examples and benchmarks: a real OpenAI-compatible HTTP server on loopback."""

from __future__ import annotations

from typing import Any

__all__ = ["OpenAIServer"]


def __getattr__(name: str) -> Any:  # lazy, so `python -m agentracer.testing.openai_server` runs cleanly
    if name == "OpenAIServer":
        from .openai_server import OpenAIServer

        return OpenAIServer
    raise AttributeError(name)
