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
    path = Path(rest).expanduser()
    if rest and path.suffix == ".jsonl" and "||" not in rest:  # a file of {"text": ...} lines
        answers = _scripted_answers(path)
    else:
        answers = rest.split("||") if rest else []
    return ScriptedModel(answers, name=f"scripted:{path.name if path.suffix else 'inline'}", **options)


def _scripted_answers(path: Path) -> list[str]:
    """The answers of a scripted model's JSONL file, one ``{"text": ...}`` per line; ``InputError`` naming the file
    (and line) when it is missing or a line is not such an object."""
    if not path.is_file():
        raise InputError("no such scripted answers file (scripted:FILE.jsonl holds one {\"text\": ...} per line; "
                         "inline answers are separated by ||)", where=str(path))
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot be read as UTF-8 text ({exc})", where=str(path)) from None
    answers = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InputError(f"not valid JSON ({exc})", where=f"{path}:{number}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise InputError('each line needs a "text" with the answer', where=f"{path}:{number}")
        answers.append(row["text"])
    return answers


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
