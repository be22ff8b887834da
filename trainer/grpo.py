"""KL-free GRPO in plain PyTorch: group-normalised advantages and the clipped surrogate loss.

This is the reference the verl hook is tested against and the loss of the CPU training loop
(``agentracer.trainer.cpu_loop``). There is no KL term anywhere: not in the loss, not in the reward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def group_advantages(rewards: torch.Tensor, groups: Sequence[object], eps: float = 1e-6) -> torch.Tensor:
    """``(r - mean_g) / (std_g + eps)`` over the rollouts of each prompt (a group of one gets 0).

    ``std`` is the unbiased sample standard deviation, as in the original GRPO and verl.
    """
    rewards = rewards.detach().to(torch.float32)
    advantages = torch.zeros_like(rewards)
    members: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    for rows in members.values():
        index = torch.tensor(rows)
        group = rewards[index]
        if len(rows) < 2:
            continue
        advantages[index] = (group - group.mean()) / (group.std() + eps)
    return advantages


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def clipped_policy_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float,
    eps_high: float | None = None,
    agg: str = "token-mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate ``-min(rho*A, clip(rho, 1-eps_low, 1+eps_high)*A)`` aggregated over tokens.

    Shapes are ``(batch, response_len)``; ``advantages`` may be ``(batch,)`` (one per sequence).
    ``agg`` is ``token-mean`` (every response token weighs the same, as verl's default) or
    ``seq-mean-token-mean`` (each sequence's token mean, then the mean over sequences).
    Returns the loss and the fraction of tokens whose ratio was clipped.
    """
    eps_high = eps_low if eps_high is None else eps_high
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1).expand_as(log_prob)
    mask = mask.to(log_prob.dtype)
    ratio = torch.exp(torch.clamp(log_prob - old_log_prob, -20.0, 20.0))
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per_token = torch.maximum(unclipped, clipped)
    if agg == "token-mean":
        loss = masked_mean(per_token, mask)
    elif agg == "seq-mean-token-mean":
        per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)
        kept = mask.sum(-1) > 0  # (no sequence with a token: 0, as token-mean gives, not the NaN of an empty mean)
        loss = per_seq[kept].mean() if bool(kept.any()) else (per_token * mask).sum()
    else:
        raise ValueError(f"unknown aggregation {agg!r}")
    clip_fraction = masked_mean((clipped > unclipped).to(log_prob.dtype), mask)
    return loss, {"clip_fraction": float(clip_fraction.detach())}
