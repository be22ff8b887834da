"""Whether earlier results in an output file are another model's (``eval``'s rows, ``locate``'s kept verdicts)."""

from __future__ import annotations

from collections.abc import Iterable

from ..redact import Redactor

EARLIER_LITE = "lite weights of an earlier release"  # lite results that name no weights


def model_id(name: str | None) -> str | None:
    """The model a result names, whichever server answered: ``openai:URL@MODEL`` gives ``MODEL``."""
    if name is not None and name.startswith("openai:"):
        return name.rpartition("@")[2]
    return name


def other_models(earlier: Iterable[object], method: str, model: str | None) -> list[str]:
    """The models other than ``model`` that earlier results of ``method`` name (``earlier``: each one's model, None
    for a model-free method's), compared as results keep them (redacted: a model's name can look like a key) and
    whichever server answered; lite results naming no weights come from an earlier release's weights."""
    redact = Redactor().text
    now = model_id(redact(model)) if model is not None else None
    names = list(earlier)
    others = sorted({str(name) for name in names if name is not None and model_id(redact(str(name))) != now})
    if method == "lite" and model is not None and any(name is None for name in names):
        others.append(EARLIER_LITE)
    return others
