"""Our policy loss for verl: the KL-free clipped GRPO surrogate with a clipping range that follows a schedule.

verl has no clipping schedule, so this module plugs one in through verl's own extension points, without
touching verl's files:

* ``register_policy_loss(LOSS_NAME)`` adds the loss to verl's registry; the actor selects it with
  ``actor_rollout_ref.actor.policy_loss.loss_mode=agentracer_clip_schedule``.
* The schedule's settings live in :class:`ScheduledClipLossConfig`, a subclass of verl's
  ``PolicyLossConfig``; the launcher sets ``actor_rollout_ref.actor.policy_loss._target_`` to it, so
  hydra imports this module (and so registers the loss) in every worker that builds an actor config.
* The step: verl hands a policy loss only the tensors and the actor config, never the training step. The
  step is read from the optimizer's own update count (``state["step"]``, which verl's checkpoints save
  and restore, so a resumed run continues its schedule), seen through torch's global optimizer-step hook,
  divided by the number of optimizer updates per training step (ppo_epochs x mini-batches per batch,
  computed by the launcher).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import torch
import verl.utils.torch_functional as verl_F
from torch.optim.optimizer import register_optimizer_step_post_hook
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss
from verl.workers.config import PolicyLossConfig

from .schedule import ClipSchedule

LOSS_NAME = "agentracer_clip_schedule"
CONFIG_TARGET = f"{__name__}.ScheduledClipLossConfig"


@dataclass
class ScheduledClipLossConfig(PolicyLossConfig):
    """verl's policy-loss settings plus the clipping schedule (``total_steps`` 0: the actor's optimiser total)."""

    loss_mode: str = LOSS_NAME
    eps_max: float = 0.28
    eps_min: float = 0.2
    shape: str = "cosine"
    total_steps: int = 0
    updates_per_step: int = 1
    resumed_step: int = -1  # the training step a resumed run starts at (-1: not resumed, or not known)


def _optimizer_updates(optimizer: torch.optim.Optimizer) -> int | None:
    steps = [state["step"] for state in optimizer.state.values() if isinstance(state, dict) and "step" in state]
    if not steps:
        return None
    return max(int(s.item()) if isinstance(s, torch.Tensor) else int(s) for s in steps)


class OptimizerClock:
    """The number of optimizer updates applied so far in this process's training (restored on resume)."""

    def __init__(self) -> None:
        self.updates: int | None = None
        self.restored: int | None = None  # the updates a resumed optimizer held when this process began
        self._handle: Any = None

    def install(self) -> None:
        if self._handle is None:
            self._handle = register_optimizer_step_post_hook(self._after_step)

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        updates = _optimizer_updates(optimizer)
        if updates is not None:
            if self.restored is None:  # (this process's first update: what it held before it)
                self.restored = updates - 1 if self.updates is None else self.updates
            self.updates = updates

    def read(self) -> int:
        """Updates so far; before this process's first update, what a restored optimizer holds (else 0)."""
        if self.updates is None:
            optimizers = [o for o in gc.get_objects() if issubclass(type(o), torch.optim.Optimizer)]
            restored = [_optimizer_updates(o) for o in optimizers]
            self.updates = max((u for u in restored if u is not None), default=0)
            if self.restored is None:
                self.restored = self.updates
        return self.updates

    def since_start(self) -> int:
        """Updates this process has applied."""
        updates = self.read()
        return updates - (self.restored if self.restored is not None else updates)

    def reset(self, updates: int | None = None, restored: int | None = None) -> None:
        self.updates, self.restored = updates, restored


CLOCK = OptimizerClock()
CLOCK.install()


def schedule_for(config: Any) -> ClipSchedule:
    """The clipping schedule an actor config asks for."""
    loss_config = config.policy_loss
    total = int(loss_config.get("total_steps", 0) or 0)
    if total <= 0:
        total = int(config.optim.total_training_steps) if config.get("optim") is not None else 0
    return ClipSchedule(
        eps_max=float(loss_config.get("eps_max", 0.28)),
        eps_min=float(loss_config.get("eps_min", 0.2)),
        total_steps=max(total, 1),
        shape=str(loss_config.get("shape", "cosine")),
    )


def training_step(config: Any, clock: OptimizerClock = CLOCK) -> int:
    """Training steps already done, from the optimizer updates and the updates per step. A resumed run counts on from
    the step it resumed at (``resumed_step``): its optimizer's restored updates were made with the mini-batches and
    epochs of the run before, which a resume may have changed (a smaller mini-batch after running out of memory)."""
    per_step = max(int(config.policy_loss.get("updates_per_step", 1) or 1), 1)
    resumed = config.policy_loss.get("resumed_step")
    resumed = -1 if resumed is None else int(resumed)
    if resumed < 0:
        return clock.read() // per_step
    return resumed + clock.since_start() // per_step


@register_policy_loss(LOSS_NAME)  # type: ignore[arg-type]
def scheduled_clip_policy_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Clipped surrogate with ``eps = schedule(step)`` on both sides; no KL, no dual clip."""
    if config is None:
        raise ValueError(f"{LOSS_NAME} needs the actor config")
    step = training_step(config)
    eps = schedule_for(config)(step)

    log_ratio = torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0)
    ratio = torch.exp(log_ratio)
    surrogate = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - eps, 1.0 + eps)
    pg_losses = torch.maximum(surrogate, clipped)
    if rollout_is_weights is not None:
        pg_losses = pg_losses * rollout_is_weights
    batch_info = dict(getattr(config, "global_batch_info", None) or {})
    pg_loss = agg_loss(loss_mat=pg_losses, loss_mask=response_mask, loss_agg_mode=loss_agg_mode, **batch_info)
    metrics = {
        "actor/pg_clipfrac": verl_F.masked_mean(torch.gt(clipped, surrogate).float(), response_mask).item(),
        "actor/ppo_kl": verl_F.masked_mean(-log_ratio, response_mask).detach().item(),
        "actor/clip_eps": eps,
        "actor/clip_schedule_step": float(step),
    }
    return pg_loss, metrics
