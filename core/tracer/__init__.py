"""The tracer: which agent, at which step, caused a failure — and why.

    from agentracer.tracer import get_method, locate
    verdict = locate(trajectory)                                     # the CPU tracer, no model needed
    method = get_method("agentracer", model="openai:http://127.0.0.1:8000/v1@AgenTracer-8B")
    verdict = await method.alocate(trajectory, with_ground_truth=True)

Methods: ``agentracer`` (the paper's prompt), the Who&When baselines ``all-at-once``, ``step-by-step``,
``binary-search``, the references ``random`` and ``majority``, and ``lite`` (the CPU tracer, loaded lazily
from ``agentracer.tracer.lite:LiteTracer``). Every method returns a ``Verdict`` with ``source="tracer"``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import InputError
from ..models import ChatModel, load_model
from ..schema import Trajectory, Verdict
from .base import AnswerError, Method
from .parse import ParsedAnswer, parse_answer
from .prompt import build_messages

#: method name → "module:class" under agentracer.tracer (imported on first use)
METHODS: dict[str, str] = {
    "agentracer": "llm_methods:AgenTracerMethod",
    "all-at-once": "llm_methods:AllAtOnceMethod",
    "step-by-step": "llm_methods:StepByStepMethod",
    "binary-search": "llm_methods:BinarySearchMethod",
    "random": "references:RandomMethod",
    "majority": "references:MajorityMethod",
    "lite": "lite:LiteTracer",
}
MODEL_FREE = frozenset({"random", "majority", "lite"})


def canonical_name(name: str) -> str:
    """``'All_At_Once'`` → ``'all-at-once'``; unknown names raise ``InputError`` listing the known ones."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    if key not in METHODS:
        raise InputError(f"unknown attribution method {name!r}; known: {', '.join(METHODS)}")
    return key


def _method_class(key: str) -> type:
    module_name, attribute = METHODS[key].split(":")
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"{__name__}.{module_name}",):
            raise InputError(f"method {key!r} is not available in this installation") from None
        raise InputError(f"method {key!r} needs an optional dependency: {exc.name}") from None
    return getattr(module, attribute)


def get_method(name: str, model: ChatModel | str | None = None, **options: Any) -> Any:
    """The attribution method ``name``; ``model`` (a ChatModel or a spec string) for the model-based ones.

    The ``lite`` method is built as ``LiteTracer(**options)``; the others as ``cls(model, **options)``.
    """
    key = canonical_name(name)
    cls = _method_class(key)
    if key == "lite":
        return cls(**options)
    resolved = load_model(model) if model is not None else None
    return cls(resolved, **options)


def locate(
    trajectory: Trajectory,
    method: str = "lite",
    model: ChatModel | str | None = None,
    with_ground_truth: bool = False,
) -> Verdict:
    """One verdict for ``trajectory`` with ``method`` (sync; the CPU tracer by default)."""
    from .base import redacted_verdict

    chosen = get_method(method, model)
    if hasattr(chosen, "locate"):
        return redacted_verdict(chosen.locate(trajectory, with_ground_truth=with_ground_truth))
    from ..team import run_sync

    return redacted_verdict(run_sync(chosen.alocate(trajectory, with_ground_truth=with_ground_truth)))


__all__ = [
    "METHODS",
    "AnswerError",
    "Method",
    "ParsedAnswer",
    "build_messages",
    "canonical_name",
    "get_method",
    "locate",
    "parse_answer",
]
