"""The clipping range schedule at chosen steps."""

from __future__ import annotations

import math

import pytest
from agentracer.trainer.schedule import ClipSchedule


@pytest.mark.parametrize(("step", "expected"), [(0, 0.3), (25, 0.275), (50, 0.25), (75, 0.225), (100, 0.2),
                                                 (150, 0.2), (-3, 0.3)])
def test_linear(step: int, expected: float) -> None:
    assert ClipSchedule(eps_max=0.3, eps_min=0.2, total_steps=100, shape="linear")(step) == pytest.approx(expected)


@pytest.mark.parametrize("step", [0, 10, 25, 50, 75, 90, 100, 200])
def test_cosine(step: int) -> None:
    p = min(step, 100) / 100
    expected = 0.2 + 0.1 * 0.5 * (1 + math.cos(math.pi * p))
    assert ClipSchedule(eps_max=0.3, eps_min=0.2, total_steps=100)(step) == pytest.approx(expected)


def test_cosine_known_points_and_monotone() -> None:
    s = ClipSchedule(eps_max=0.28, eps_min=0.2, total_steps=40)
    assert s(0) == pytest.approx(0.28)
    assert s(20) == pytest.approx(0.24)
    assert s(40) == pytest.approx(0.2)
    values = [s(i) for i in range(41)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert s(10) > ClipSchedule(eps_max=0.28, eps_min=0.2, total_steps=40, shape="linear")(10)


def test_constant_and_bad_settings() -> None:
    assert ClipSchedule(eps_max=0.2, eps_min=0.1, total_steps=5, shape="constant")(3) == 0.2
    with pytest.raises(ValueError, match="shape"):
        ClipSchedule(shape="step")
    with pytest.raises(ValueError, match="eps_min"):
        ClipSchedule(eps_max=0.1, eps_min=0.2)
