"""Model specs (``scheme:rest``) to backends; backends register by scheme and import lazily."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import ChatModel, ScriptedModel

_BACKENDS: dict[str, Callable[..., ChatModel] | str] = {
    "openai": "agentracer.models.openai_http:from_spec",
    "hf": "agentracer.models.transformers_local:from_spec",
    "vllm": "agentracer.models.vllm_offline:from_spec",
}


def register_backend(scheme: str, factory: Callable[..., ChatModel]) -> None:
    """Make ``scheme:...`` specs build models with ``factory(rest, **options)``."""
    _BACKENDS[scheme] = factory


def _scripted(rest: str, **options: Any) -> ChatModel:
    path = Path(rest)
    if rest and path.suffix == ".jsonl" and path.exists():
        answers = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    else:
        answers = rest.split("||") if rest else []
    return ScriptedModel(answers, name=f"scripted:{path.name if path.suffix else 'inline'}", **options)


def load_model(spec: str | ChatModel, **options: Any) -> ChatModel:
    """The model named by ``spec`` (or ``spec`` itself when it is already a model)."""
    if not isinstance(spec, str):
        return spec
    scheme, sep, rest = spec.partition(":")
    if not sep:
        raise InputError(f"model spec {spec!r} has no scheme; use openai:URL@MODEL, hf:PATH, vllm:PATH or scripted:...")
    if scheme == "scripted":
        return _scripted(rest, **options)
    factory = _BACKENDS.get(scheme)
    if factory is None:
        raise InputError(f"unknown model scheme {scheme!r} in {spec!r}; known: {sorted(_BACKENDS) + ['scripted']}")
    if isinstance(factory, str):
        module_name, attribute = factory.split(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except ModuleNotFoundError as exc:
            raise InputError(f"the {scheme!r} backend needs an optional dependency: {exc.name}") from None
    return factory(rest, **options)
