"""Model backends behind one small interface (like httpx transports): ``ChatModel`` and ``load_model``.

A model is named by one string: ``openai:URL@MODEL`` (any OpenAI-compatible server, e.g. ``vllm serve``),
``hf:/path/to/model`` (transformers), ``vllm:/path/to/model`` (vLLM offline), ``scripted:FILE.jsonl`` or
``scripted:`` followed by inline answers separated by ``||`` (deterministic answers for tests and demos).
Keys come from the environment (``OPENAI_API_KEY`` or ``AGENTRACER_API_KEY``), never from files.
"""

from __future__ import annotations

from .base import ChatModel, Completion, ModelError, RequestRefused, ScriptedModel
from .registry import load_model, register_backend

__all__ = ["ChatModel", "Completion", "ModelError", "RequestRefused", "ScriptedModel", "load_model", "register_backend"]
