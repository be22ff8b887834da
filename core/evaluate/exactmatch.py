"""GAIA-style normalised exact match: numbers as numbers, lists element-wise, strings without case,
spaces or punctuation."""

from __future__ import annotations

import re
import string
from decimal import Decimal, InvalidOperation

_LIST_SPLIT = re.compile(r"[,;]")


_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")  # 1,234,567.5: commas that group digits


def _decimal(text: str) -> Decimal | None:
    """``text`` as an exact number (not a float: 9007199254740993 is not 9007199254740992), None for a NaN."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return None if number.is_nan() else number


def _as_number(text: str) -> Decimal | None:
    """A predicted answer as a number (GAIA strips ``$``, ``%`` and every comma)."""
    return _decimal(text.strip().replace("$", "").replace("%", "").replace(",", "").strip())


def _gold_number(text: str) -> Decimal | None:
    """A ground truth as a number: without ``$`` and ``%``, and commas only where they group thousands; ``3,4`` and
    ``2,5,7`` are lists (GAIA's scorer reads its ground truth with ``float`` as it is, so commas make a list)."""
    cleaned = text.strip().replace("$", "").replace("%", "").strip()
    if "," in cleaned:
        if not _THOUSANDS.fullmatch(cleaned):
            return None
        cleaned = cleaned.replace(",", "")
    return _decimal(cleaned)


def normalize_text(text: str, *, keep_punctuation: bool = False) -> str:
    """Lower-case, no whitespace, and (unless asked) no punctuation."""
    text = re.sub(r"\s+", "", str(text)).lower()
    if not keep_punctuation:
        text = text.translate(str.maketrans("", "", string.punctuation))
    return text


def _is_list(text: str) -> bool:
    return bool(_LIST_SPLIT.search(text))


def exact_match(predicted: object, truth: object) -> bool:
    """True when ``predicted`` matches ``truth`` under GAIA's normalisation rules."""
    if predicted is None:
        return False
    pred, gold = str(predicted).strip(), str(truth).strip()
    gold_number = _gold_number(gold)
    if gold_number is not None:
        pred_number = _as_number(pred)
        return pred_number is not None and pred_number == gold_number  # (3.0 is 3; no tolerance, as GAIA's ==)
    if _is_list(gold):
        gold_items = [item.strip() for item in _LIST_SPLIT.split(gold)]
        pred_items = [item.strip() for item in _LIST_SPLIT.split(pred)]
        if len(gold_items) != len(pred_items):
            return False
        return all(exact_match(p, g) for p, g in zip(pred_items, gold_items, strict=True))
    return normalize_text(pred) == normalize_text(gold)


def final_answer_text(text: str) -> str:
    """The part after a 'FINAL ANSWER:' marker when present (GAIA's convention), else the text."""
    match = re.findall(r"final answer\s*:\s*(.+)", str(text), flags=re.IGNORECASE)
    return match[-1].strip() if match else str(text).strip()
