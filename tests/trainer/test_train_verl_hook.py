"""Our pieces inside verl (CPU): the config our launcher writes composes with verl's own config, the
scheduled-clip loss registered in verl gives the reference numbers, the reward loads through verl."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import verl
from agentracer.trainer.grpo import clipped_policy_loss, group_advantages
from agentracer.trainer.launch import LOSS_NAME, RunSpec, load_config, verl_overrides
from test_train_grpo_loss import ADV, HAND_02, HAND_028, MASK, NEW, OLD


@pytest.fixture(scope="module")
def composed():
    """verl's ``ppo_trainer`` config composed with the overrides ``agentracer train run`` passes."""
    from hydra import compose, initialize_config_dir

    config = load_config()
    config["clip"] = {"eps_max": 0.28, "eps_min": 0.2, "shape": "linear", "total_steps": 10}
    config["data"]["train_batch_size"] = 32
    config["ppo"] = {"mini_batch_size": 16, "epochs": 1}
    spec = RunSpec(model=Path("/models/base"), output=Path("/runs/x"), data=Path("/data/prepared"))
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=verl_overrides(config, spec))


@pytest.fixture(scope="module")
def actor_config(composed):
    from verl.utils.config import omega_conf_to_dataclass

    return omega_conf_to_dataclass(composed.actor_rollout_ref.actor)


def test_composed_config_is_grpo_without_kl(composed) -> None:
    assert composed.algorithm.adv_estimator == "grpo"
    assert composed.algorithm.use_kl_in_reward is False
    assert composed.actor_rollout_ref.actor.use_kl_loss is False
    assert composed.actor_rollout_ref.rollout.n == 8
    assert composed.actor_rollout_ref.actor.optim.lr == 1e-6
    assert composed.data.train_batch_size == 32
    assert composed.trainer.default_local_dir == "/runs/x/checkpoints"


def test_actor_config_carries_our_schedule(actor_config) -> None:
    from agentracer.trainer.verl_policy_loss import ScheduledClipLossConfig

    loss = actor_config.policy_loss
    assert isinstance(loss, ScheduledClipLossConfig)
    assert (loss.loss_mode, loss.eps_max, loss.eps_min, loss.shape, loss.total_steps) == (
        LOSS_NAME, 0.28, 0.2, "linear", 10)
    assert loss.updates_per_step == 2  # batch 32 / mini-batch 16, one epoch


def test_registered_loss_gives_reference_numbers_along_the_schedule(actor_config) -> None:
    from agentracer.trainer.verl_policy_loss import CLOCK
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    loss_fn = get_policy_loss_fn(LOSS_NAME)
    try:
        for updates, eps, hand in [(0, 0.28, HAND_028), (10, 0.24, None), (11, 0.24, None), (40, 0.2, HAND_02)]:
            CLOCK.reset(updates)  # training step = updates // 2
            loss, metrics = loss_fn(old_log_prob=OLD, log_prob=NEW, advantages=ADV, response_mask=MASK.bool(),
                                    loss_agg_mode="token-mean", config=actor_config)
            reference, stats = clipped_policy_loss(NEW, OLD, ADV, MASK, eps_low=eps)
            assert float(loss) == pytest.approx(float(reference), abs=1e-6)
            if hand is not None:
                assert float(loss) == pytest.approx(hand["token-mean"], abs=1e-6)
            assert metrics["actor/clip_eps"] == pytest.approx(eps)
            assert metrics["actor/clip_schedule_step"] == updates // 2
            assert metrics["actor/pg_clipfrac"] == pytest.approx(stats["clip_fraction"])
    finally:
        CLOCK.reset(None)


def test_verl_vanilla_loss_and_grpo_advantages_agree_with_the_reference(actor_config) -> None:
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_policy_loss_fn

    vanilla = get_policy_loss_fn("vanilla")
    loss, _ = vanilla(old_log_prob=OLD, log_prob=NEW, advantages=ADV, response_mask=MASK.bool(),
                      loss_agg_mode="token-mean", config=actor_config)  # clip_ratio 0.2 by default
    assert float(loss) == pytest.approx(HAND_02["token-mean"], abs=1e-6)

    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5, 0.2, 0.4, 0.9])
    groups = np.array(["a", "a", "b", "b", "c", "c", "c"], dtype=object)
    token_rewards = torch.zeros(7, 4)
    token_rewards[:, -1] = rewards
    theirs, _ = compute_grpo_outcome_advantage(token_rewards, torch.ones(7, 4), groups)
    ours = group_advantages(rewards, list(groups))
    assert theirs[:, 0].tolist() == pytest.approx(ours.tolist(), abs=1e-5)


def test_optimizer_clock_follows_updates_and_a_restored_optimizer() -> None:
    from agentracer.trainer.verl_policy_loss import CLOCK, OptimizerClock

    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    try:
        for _ in range(3):
            model(torch.ones(1, 3)).sum().backward()
            optimizer.step()
        assert CLOCK.read() == 3
        saved = optimizer.state_dict()
        del optimizer
        # a resumed process: a new optimizer loads the checkpoint; its first loss must see step 3, not 0
        restored = torch.optim.AdamW(model.parameters(), lr=1e-3)
        restored.load_state_dict(saved)
        assert OptimizerClock().read() == 3
    finally:
        CLOCK.reset(None)


def test_reward_function_loads_through_verl(composed) -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    fn = get_custom_reward_fn(composed)
    truth = {"agent": "Coder", "step": 4, "agents": '["Planner", "Coder"]'}
    assert fn("agentracer/whowhen", "<think>a</think><answer>coder|4</answer>", truth, {})["score"] == 1.0
    assert fn("agentracer/whowhen", "<think>a</think><answer>Planner|5</answer>", truth, {})["score"] == \
        pytest.approx(0.5 * np.exp(-0.5))


@pytest.mark.parametrize(("model", "experiment"), [("/models/Qwen3-8B,v2", "grpo"), ("/models/my models/q", "lam=0.3"),
                                                   ("/models/[x]", "it's (a) {run}"), ("C:\\models\\q", "a\\b"),
                                                   ("/models/q v\\", "x\\'y, z")])
def test_values_hydra_would_misread_reach_verl_as_written(model: str, experiment: str) -> None:
    from hydra import compose, initialize_config_dir

    config = load_config()
    config["trainer"]["experiment_name"] = experiment
    spec = RunSpec(model=Path(model), output=Path("/runs/x"), data=Path("/data/prepared"))
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        composed = compose(config_name="ppo_trainer", overrides=verl_overrides(config, spec))
    assert composed.actor_rollout_ref.model.path == str(Path(model))
    assert composed.trainer.experiment_name == experiment


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[2] / "trainer" / "configs").glob(
    "*.yaml")))
def test_each_shipped_config_passes_verls_own_check_before_training(name: str) -> None:
    """``verl.trainer.main_ppo`` validates its config before anything starts: the command ``train run`` builds from
    each shipped config passes that check (as verl's own entry point runs it)."""
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config = load_config(Path(__file__).parents[2] / "trainer" / "configs" / name)
    spec = RunSpec(model=Path("/models/base"), output=Path("/runs/x"), data=Path("/data/prepared"))
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        composed = compose(config_name="ppo_trainer", overrides=verl_overrides(config, spec))
    assert not need_reference_policy(composed) and not need_critic(composed)  # (KL-free GRPO: the actor alone)
    validate_config(composed, use_reference_policy=False, use_critic=False)


def test_a_run_resumed_with_other_mini_batches_counts_its_schedule_from_the_step_it_resumed_at(tmp_path) -> None:
    """The step was the restored optimizer's updates over *this* run's updates per step: a run resumed at step 10 with
    half the mini-batch size (after running out of memory) read step 20, far along its clipping schedule."""
    from agentracer.trainer.launch import resumed_step
    from agentracer.trainer.verl_policy_loss import CLOCK, training_step
    from hydra import compose, initialize_config_dir
    from verl.utils.config import omega_conf_to_dataclass

    output = tmp_path / "run"
    spec = RunSpec(model=Path("/models/base"), output=output, data=Path("/data/prepared"))
    assert resumed_step(spec) == -1  # (no checkpoint yet: a fresh start)
    (output / "checkpoints").mkdir(parents=True)
    (output / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("10\n")
    assert resumed_step(spec) == 10
    assert resumed_step(RunSpec(model=spec.model, output=output, data=spec.data, resume="disable")) == -1
    assert resumed_step(RunSpec(model=spec.model, output=output, data=spec.data,
                                resume=str(output / "checkpoints" / "global_step_7"))) == 7

    config = load_config()
    config["data"]["train_batch_size"] = 32
    config["ppo"] = {"mini_batch_size": 8, "epochs": 1}  # (4 updates a step now; the run before made 2)
    overrides = verl_overrides(config, spec)
    assert "+actor_rollout_ref.actor.policy_loss.resumed_step=10" in overrides
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        actor = omega_conf_to_dataclass(compose(config_name="ppo_trainer", overrides=overrides).actor_rollout_ref.actor)
    try:
        CLOCK.reset(20, restored=20)  # (10 steps of 2 updates, restored from the checkpoint)
        assert training_step(actor) == 10
        CLOCK.reset(28, restored=20)  # (two steps of this run's 4 updates)
        assert training_step(actor) == 12
    finally:
        CLOCK.reset(None)
