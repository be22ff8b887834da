"""Math answers: pull the final answer out of a text, normalise it, and decide equivalence.

Handles ``\\boxed{..}`` (nested braces), ``\\frac``/``\\dfrac``, ``\\text{..}``, ``$``, thousands separators,
percent signs, units words, ``x = 5`` forms, decimals vs fractions (``0.5`` = ``1/2`` = ``\\frac{1}{2}``; integers
and fractions compare exactly, a decimal as the values it rounds) and tuples/intervals of answers compared
element-wise, brackets included.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UNIT_WORDS = (
    "degrees", "degree", "units", "unit", "cm", "meters", "meter", "inches", "inch", "feet", "foot",
    "dollars", "dollar", "cents", "cent", "hours", "hour", "minutes", "minute", "seconds", "second",
    "square", "sq",
)


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The content of the brace group opening at ``text[start] == '{'`` and the index after it."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i], i + 1
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``."""
    found = None
    for match in re.finditer(r"\\(?:boxed|fbox)\s*", text):
        group = _braced(text, match.end())
        if group is not None:
            found = group[0]
    return found


def extract_answer(text: str) -> str:
    """The final answer of a solution text: last boxed, else 'answer is X', else the last number."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    match = re.findall(r"(?:final answer|answer)\s*(?:is|:|=)\s*\$?([^\n$]+)", text, flags=re.IGNORECASE)
    if match:
        return match[-1].strip().rstrip(".")
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?", text)
    return numbers[-1] if numbers else text.strip()


def _replace_frac(text: str) -> str:
    pattern = re.compile(r"\\[dt]?frac\s*")
    while True:
        match = pattern.search(text)
        if match is None:
            return text
        num = _braced(text, match.end())
        if num is None:  # \frac12 shorthand
            short = re.match(r"(\d)(\d)", text[match.end():])
            if short is None:
                return text
            text = text[:match.start()] + f"({short.group(1)})/({short.group(2)})" + text[match.end() + 2:]
            continue
        den = _braced(text, num[1])
        if den is None:
            return text
        text = text[:match.start()] + f"({num[0]})/({den[0]})" + text[den[1]:]


def normalize_math(answer: object) -> str:
    """A canonical string form of a math answer."""
    text = str(answer).strip()
    boxed = last_boxed(text)
    if boxed is not None:
        text = boxed
    text = text.replace("$", "").replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", "")
    text = re.sub(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\\(?:left|right)", "", text)
    text = text.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\circ", "").replace("\\%", "%")
    text = _replace_frac(text)
    text = text.replace("\\cdot", "*").replace("\\times", "*").replace("\\pi", "pi").replace("dfrac", "frac")
    text = re.sub(r"^[a-zA-Z]\s*=\s*", "", text.strip())  # x = 5
    text = text.strip().rstrip(".").strip()
    for word in _UNIT_WORDS:
        text = re.sub(rf"\s*\b{word}\b\s*$", "", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = text.replace(" ", "").replace("{", "").replace("}", "")
    return text.lower()


def _number(text: str) -> Fraction | None:
    text = text.rstrip("%")
    text = re.sub(r"^\((-?[\d.]+)\)/\((-?[\d.]+)\)$", r"\1/\2", text)
    try:
        if re.fullmatch(r"-?\d+(?:\.\d+)?/-?\d+(?:\.\d+)?", text):
            num, den = text.split("/")
            return Fraction(num) / Fraction(den)
        if re.fullmatch(r"-?(?:\d+\.?\d*|\.\d+)(?:e-?\d+)?", text):
            return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return None


FLOAT_NOISE = 1e-12  # relative: what printing a double (17 significant digits) leaves off its value, and more


def _half_unit(text: str) -> Fraction:
    """Half a unit in the last written place of a decimal (``0.333`` -> 0.0005), the most it can be off the value it
    was rounded from; 0 for an integer or a fraction, which are exact."""
    match = re.fullmatch(r"-?\d*\.(\d*)(?:e(-?\d+))?", text.rstrip("%"))
    if match is None:
        return Fraction(0)
    return Fraction(1, 2) * Fraction(10) ** (int(match.group(2) or 0) - len(match.group(1)))


def _split_items(text: str) -> tuple[str, list[str]] | None:
    """The brackets and items of a bracketed list: an interval ``[0,1)`` or a tuple ``(1,2)``."""
    if len(text) >= 2 and text[0] in "([{" and text[-1] in ")]}" and "," in text:
        return text[0] + text[-1], text[1:-1].split(",")
    return None


def math_equal(predicted: object, truth: object, *, rel_tol: float = 1e-6) -> bool:
    """True when two math answers are the same after normalisation (numbers compared as values; a decimal matches
    the values it rounds, to ``rel_tol`` at most; intervals and tuples item by item, with the same brackets)."""
    a, b = normalize_math(predicted), normalize_math(truth)
    if a == b:
        return True
    split_a, split_b = _split_items(a), _split_items(b)
    if split_a is not None and split_b is not None:
        # the brackets are part of the answer: [0,1) is not (0,1], nor the pair (1,2) the interval [1,2]
        (brackets_a, items_a), (brackets_b, items_b) = split_a, split_b
        return brackets_a == brackets_b and len(items_a) == len(items_b) and all(
            math_equal(x, y, rel_tol=rel_tol) for x, y in zip(items_a, items_b, strict=True))
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return False
    if x == y:
        return True
    written = _half_unit(a) + _half_unit(b)
    if not written:  # (integers and fractions are exact)
        return False
    difference = abs(x - y)
    scale = max(abs(x), abs(y), Fraction(1))
    # a decimal's own rounding, or a float's printing (``repr(2/3)`` is 0.6666666666666666, 2/3 to 16 digits
    # without rounding the last): within both of them, and never past ``rel_tol``
    return float(difference) <= min(rel_tol * float(scale), max(float(written), FLOAT_NOISE * float(scale)))
