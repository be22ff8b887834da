"""KL-free clipped GRPO: the pure-PyTorch reference against hand-computed numbers, and verl's side of it."""

from __future__ import annotations

import math

import pytest
import torch
from agentracer.trainer.grpo import clipped_policy_loss, group_advantages

# Two responses of three tokens, the last two tokens of the second masked out.
# ratios: 1.5, 0.5, 1.1 | 0.5 ; advantages: +1, -1, +1 | +2
RATIOS = torch.tensor([[1.5, 0.5, 1.1], [0.5, 1.0, 1.0]])
ADV = torch.tensor([[1.0, -1.0, 1.0], [2.0, 2.0, 2.0]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])
OLD = torch.tensor([[-1.0, -2.0, -0.5], [-1.5, -1.0, -3.0]])
NEW = OLD + torch.log(RATIOS)

# eps = 0.2 by hand:
#   1.5, A=+1: max(-1.5, -1.2) = -1.2 (clipped)   0.5, A=-1: max(0.5, 0.8) = 0.8 (clipped)
#   1.1, A=+1: max(-1.1, -1.1) = -1.1             0.5, A=+2: max(-1.0, -1.6) = -1.0
HAND_02 = {"token-mean": (-1.2 + 0.8 - 1.1 - 1.0) / 4, "seq-mean-token-mean": ((-1.2 + 0.8 - 1.1) / 3 + -1.0) / 2}
# eps = 0.28: the two clipped tokens become -1.28 and 0.72
HAND_028 = {"token-mean": (-1.28 + 0.72 - 1.1 - 1.0) / 4, "seq-mean-token-mean": ((-1.28 + 0.72 - 1.1) / 3 - 1.0) / 2}


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_reference_loss_matches_hand_computed(agg: str) -> None:
    loss, stats = clipped_policy_loss(NEW, OLD, ADV, MASK, eps_low=0.2, agg=agg)
    assert float(loss) == pytest.approx(HAND_02[agg], abs=1e-6)
    assert stats["clip_fraction"] == pytest.approx(0.5)
    loss, _ = clipped_policy_loss(NEW, OLD, ADV, MASK, eps_low=0.28, agg=agg)
    assert float(loss) == pytest.approx(HAND_028[agg], abs=1e-6)


def test_reference_gradient_is_zero_where_clipped() -> None:
    new = NEW.clone().requires_grad_(True)
    loss, _ = clipped_policy_loss(new, OLD, ADV, MASK, eps_low=0.2)
    loss.backward()
    grad = new.grad
    assert grad[0, 0] == 0 and grad[0, 1] == 0  # clipped: no gradient
    assert float(grad[0, 2]) == pytest.approx(-1.0 * 1.1 / 4)  # d/dlogp of -A*ratio, token-mean over 4
    assert float(grad[1, 0]) == pytest.approx(-2.0 * 0.5 / 4)
    assert grad[1, 1] == 0 and grad[1, 2] == 0  # masked


def test_no_kl_term_ratio_one_gives_minus_mean_advantage() -> None:
    logp = torch.zeros(2, 3)
    loss, stats = clipped_policy_loss(logp, logp, ADV, MASK, eps_low=0.2)
    assert float(loss) == pytest.approx(-(1 - 1 + 1 + 2) / 4)
    assert stats["clip_fraction"] == 0


def test_group_advantages_by_hand() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5, 0.2, 0.4, 0.9, 0.7])
    groups = ["a", "a", "b", "b", "c", "c", "c", "d"]
    adv = group_advantages(rewards, groups)
    s = 1 / math.sqrt(2)  # unbiased std of [1, 0] is 0.7071
    std_c = math.sqrt((0.09 + 0.01 + 0.16) / 2)
    expected = [0.5 / s, -0.5 / s, 0, 0, -0.3 / std_c, -0.1 / std_c, 0.4 / std_c, 0.0]
    assert adv.tolist() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_a_batch_with_no_response_token_has_a_zero_loss_not_nan(agg: str) -> None:
    log_prob = torch.zeros(2, 3, requires_grad=True)
    loss, stats = clipped_policy_loss(log_prob, torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3), eps_low=0.2,
                                      agg=agg)
    assert float(loss) == 0.0 and stats["clip_fraction"] == 0.0
    loss.backward()  # (a graph to step on: no NaN reaches the optimiser)
    assert torch.isfinite(log_prob.grad).all()
