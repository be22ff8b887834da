"""A small GRPO loop in plain PyTorch + transformers, for CPU: sample a group per prompt, score it with our
reward, normalise advantages within the group, take clipped KL-free steps with a scheduled clipping range.

It is what the CI runs to show the pieces learn together (``tests/trainer/test_cpu_grpo.py``); verl runs
the same algorithm at scale. We use our own loop rather than TRL's ``GRPOTrainer``: it needs nothing beyond
transformers, it uses exactly the loss and schedule verl is given (``grpo.clipped_policy_loss``,
``schedule.ClipSchedule``), and it stays well under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .grpo import clipped_policy_loss, group_advantages
from .schedule import ClipSchedule


@dataclass
class Rollouts:
    """A batch of sampled responses: full sequences, where responses start, and which tokens count."""

    sequences: torch.Tensor  # (B, P + R)
    prompt_len: int
    response_mask: torch.Tensor  # (B, R), 1 up to and including the first EOS
    groups: list[int]

    @property
    def responses(self) -> torch.Tensor:
        return self.sequences[:, self.prompt_len:]


@dataclass
class StepLog:
    step: int
    mean_reward: float
    format_rate: float
    eps: float
    loss: float
    clip_fraction: float
    lr: float


@dataclass
class LoopResult:
    log: list[StepLog] = field(default_factory=list)

    @property
    def rewards(self) -> list[float]:
        return [s.mean_reward for s in self.log]


def response_mask(responses: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 for each response token up to and including the first EOS, 0 after it."""
    is_eos = (responses == eos_id).long()
    after_eos = (torch.cumsum(is_eos, dim=1) - is_eos) > 0
    return (~after_eos).long()


@torch.no_grad()
def sample(model: Any, prompts: torch.Tensor, group_size: int, max_new_tokens: int, eos_id: int,
           pad_id: int, temperature: float = 1.0) -> Rollouts:
    """``group_size`` sampled responses for each prompt (prompts share one length, no padding)."""
    model.eval()
    batch = prompts.repeat_interleave(group_size, dim=0)
    out = model.generate(
        input_ids=batch, attention_mask=torch.ones_like(batch), do_sample=True, temperature=temperature,
        top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, min_new_tokens=1, eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    prompt_len = prompts.shape[1]
    responses = out[:, prompt_len:]
    if responses.shape[1] < max_new_tokens:  # every sequence stopped early
        fill = torch.full((out.shape[0], max_new_tokens - responses.shape[1]), pad_id, dtype=out.dtype)
        out = torch.cat([out, fill], dim=1)
    groups = [i // group_size for i in range(out.shape[0])]
    return Rollouts(out, prompt_len, response_mask(out[:, prompt_len:], eos_id), groups)


def token_log_probs(model: Any, rollouts: Rollouts) -> torch.Tensor:
    """log pi(token) of every response token under ``model`` (B, R)."""
    logits = model(input_ids=rollouts.sequences).logits[:, rollouts.prompt_len - 1:-1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, rollouts.responses.unsqueeze(-1)).squeeze(-1)


def grpo_train(
    model: Any,
    decode: Callable[[Sequence[int]], str],
    prompts: torch.Tensor,
    truths: Sequence[Any],
    score: Callable[[str, Any], dict[str, float]],
    *,
    steps: int,
    group_size: int = 8,
    lr: float = 1e-3,
    schedule: ClipSchedule | None = None,
    updates_per_step: int = 2,
    max_new_tokens: int = 8,
    eos_id: int,
    pad_id: int,
    seed: int = 0,
    lr_warmup_steps: int = 0,
) -> LoopResult:
    """Run ``steps`` GRPO steps on ``prompts`` (one row each) against ``truths``; returns the per-step log.

    Each step samples with the current policy (which becomes pi_old), then takes ``updates_per_step``
    optimiser updates on the same rollouts, so the ratio moves away from 1 and the clipping acts. The learning
    rate rises linearly over the first ``lr_warmup_steps`` steps (verl's ``lr_warmup_steps``): Adam's first
    updates move every weight by about ``lr`` whatever its gradient, which can wreck a small policy at once.
    """
    torch.manual_seed(seed)
    schedule = schedule or ClipSchedule(eps_max=0.28, eps_min=0.2, total_steps=steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    result = LoopResult()
    for step in range(steps):
        step_lr = lr * min(1.0, (step + 1) / lr_warmup_steps) if lr_warmup_steps > 0 else lr
        for group in optimizer.param_groups:
            group["lr"] = step_lr
        rollouts = sample(model, prompts, group_size, max_new_tokens, eos_id, pad_id)
        texts = [decode(r[m.bool()].tolist()) for r, m in zip(rollouts.responses, rollouts.response_mask,
                                                                 strict=True)]
        scores = [score(text, truths[g]) for text, g in zip(texts, rollouts.groups, strict=True)]
        rewards = torch.tensor([s["score"] for s in scores])
        advantages = group_advantages(rewards, rollouts.groups)
        model.train()
        with torch.no_grad():
            old = token_log_probs(model, rollouts)
        eps = schedule(step)
        loss_value = clip_fraction = 0.0
        for _ in range(updates_per_step):
            new = token_log_probs(model, rollouts)
            loss, stats = clipped_policy_loss(new, old, advantages, rollouts.response_mask, eps_low=eps)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            loss_value, clip_fraction = float(loss.detach()), stats["clip_fraction"]
        result.log.append(StepLog(step, float(rewards.mean()), sum(s["format"] for s in scores) / len(scores),
                                  eps, loss_value, clip_fraction, step_lr))
    return result
