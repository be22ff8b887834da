"""The multi-granularity reward of the paper, as verl calls a custom reward function.

``reward = format_ok * (lam * [agent == agent*] + (1 - lam) * exp(-(step - step*)^2 / (2 sigma^2)))``

``format_ok`` is the strict format of ``agentracer.tracer.answer_format`` (the one a verdict's ``strict`` flag
reports): the whole answer is one ``<think>…</think>`` followed by one ``<answer>agent|step</answer>``, the agent is
one of the trajectory's agents (or the label's) and the step is a step index. Pure Python: no torch.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from ..tracer.answer_format import name_key, strict_answer

LAM = 0.5
SIGMA = 1.0


def parse_answer(solution_str: str) -> tuple[str, int] | None:
    """``(agent, step)`` when the text has the strict shape, else ``None`` (the agent is not checked here)."""
    return strict_answer(solution_str)


def known_agents(ground_truth: Mapping[str, Any]) -> list[str]:
    """The trajectory's agent names from ``ground_truth["agents"]`` (a list, a dict keyed by name, or JSON)."""
    agents: Any = ground_truth.get("agents")
    if isinstance(agents, str):
        try:
            agents = json.loads(agents)
        except json.JSONDecodeError:
            agents = [agents]
        if isinstance(agents, str):  # ('"Expert"': one name, not its letters)
            agents = [agents]
    if isinstance(agents, Mapping):
        return [str(name) for name in agents]
    if isinstance(agents, Iterable) and not isinstance(agents, bytes):
        return [str(name) for name in agents]
    return []


def _as_mapping(ground_truth: Any) -> Mapping[str, Any]:
    if isinstance(ground_truth, str):
        try:
            ground_truth = json.loads(ground_truth)
        except json.JSONDecodeError as exc:
            raise ValueError(f"ground_truth is not JSON ({exc})") from None
    if not isinstance(ground_truth, Mapping):
        raise TypeError(f"ground_truth must be a mapping or its JSON, got {type(ground_truth).__name__}")
    return ground_truth


def score(
    solution_str: str, agent: str, step: int, agents: Iterable[str], *, lam: float = LAM, sigma: float = SIGMA
) -> dict[str, float]:
    """The reward and its parts for one answer against the label (``agent``, ``step``)."""
    if not 0.0 <= lam <= 1.0 or not sigma > 0.0:
        raise ValueError(f"the reward needs 0 <= lam <= 1 and sigma > 0, got lam={lam}, sigma={sigma}")
    parsed = parse_answer(solution_str)
    names = {name_key(name) for name in agents}  # (none given: any well-formed name passes the format gate)
    if parsed is None or (names and name_key(parsed[0]) not in names | {name_key(str(agent))}):
        return {"score": 0.0, "format": 0.0, "agent": 0.0, "step": 0.0}
    predicted_agent, predicted_step = parsed
    agent_hit = float(name_key(predicted_agent) == name_key(str(agent)))
    distance = (predicted_step - int(step)) / sigma  # (a tiny sigma: a huge distance, never a division by 0)
    step_part = math.exp(-0.5 * distance * distance)
    return {
        "score": lam * agent_hit + (1.0 - lam) * step_part,
        "format": 1.0,
        "agent": agent_hit,
        "step": step_part,
    }


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    lam: float = LAM,
    sigma: float = SIGMA,
    response_prefix: str = "",
    **others: Any,
) -> dict[str, float]:
    """verl's custom reward entry point: ``ground_truth`` holds ``agent``, ``step`` and ``agents``.

    ``lam``, ``sigma`` and ``response_prefix`` arrive from verl's ``custom_reward_function.reward_kwargs``;
    ``response_prefix`` is what the model's chat template writes into the generation prompt of the answer (a
    template that opens the reasoning, ``<think>\n``, for the model): it is scored as part of the answer, which the
    rollout's text lacks (``agentracer train run`` finds it in the model's template). Other keyword
    arguments verl may pass are ignored, but one spelt like a setting of ours (``lamda``) is a ``TypeError``: a
    typo there would train the whole run with the default.
    """
    if others:
        _check_no_misspelt_setting(others)
    truth = _as_mapping(ground_truth)
    if response_prefix and isinstance(solution_str, str):
        solution_str = str(response_prefix) + solution_str
    return score(solution_str, _label_agent(truth), _label_step(truth), known_agents(truth),
                 lam=_number("lam", lam), sigma=_number("sigma", sigma))


_SETTINGS = ("lam", "sigma", "response_prefix")


@functools.lru_cache(maxsize=256)
def _misspelt_setting(name: str) -> str | None:
    """The setting of ours ``name`` looks like a misspelling of (``lamda``, ``lambda``, ``sigm``), else None."""
    near = difflib.get_close_matches(name.casefold(), _SETTINGS, n=1, cutoff=0.6)
    return near[0] if near else None


def _check_no_misspelt_setting(others: Mapping[str, Any]) -> None:
    for name in others:
        near = _misspelt_setting(str(name))
        if near is not None:
            raise TypeError(f"compute_score got the reward setting {name!r}: did you mean {near!r}? (the reward takes "
                            f"{list(_SETTINGS)})")


def _number(name: str, value: Any) -> float:
    """A reward setting as a float (a number, or its text, as a hydra interpolation such as ``${oc.env:LAM}``
    hands it over); ``ValueError`` naming it for anything else (a bool, None, a word)."""
    number = None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    if number is None or not math.isfinite(number):
        raise ValueError(f"the reward's {name} must be a number, got {value!r}")
    return number


def _label_agent(truth: Mapping[str, Any]) -> str:
    agent = truth.get("agent")
    if not isinstance(agent, str) or not agent.strip():
        raise ValueError(f"ground_truth['agent'] must be the labelled agent's name, got {agent!r}")
    return agent


def _label_step(truth: Mapping[str, Any]) -> int:
    """The labelled step: a whole number of at least 0 (numpy's too, as a Parquet reader may give it) or its ASCII
    digits."""
    step = truth.get("step")
    if isinstance(step, numbers.Integral) and not isinstance(step, bool) and int(step) >= 0:
        return int(step)
    if isinstance(step, str) and step.strip().isascii() and step.strip().isdigit():
        return int(step)
    raise ValueError(f"ground_truth['step'] must be a step index, got {step!r}")
