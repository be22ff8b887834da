"""Offline parts for tests, examples and benchmarks: a real OpenAI-compatible HTTP server on loopback."""

from .openai_server import OpenAIServer

__all__ = ["OpenAIServer"]
