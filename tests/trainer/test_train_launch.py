"""`agentracer train run`: the verl command it builds, and the errors it gives before launching anything."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from agentracer.errors import InputError
from agentracer.trainer.launch import (
    RunSpec,
    apply_overrides,
    check_inputs,
    check_overrides,
    command,
    load_config,
    loss_mode_note,
    ours_from_verl_section,
    preflight,
    updates_per_step,
    verl_overrides,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_TEXT = (ROOT / "trainer" / "configs" / "grpo_paper.yaml").read_text()


@pytest.fixture
def ready(tmp_path: Path) -> RunSpec:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    data = tmp_path / "data"
    data.mkdir()
    _rows(data / "train.parquet", 32)
    _rows(data / "val.parquet", 1)
    return RunSpec(model=model, output=tmp_path / "out", data=data)


def _rows(path: Path, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": [f"row {i}" for i in range(n)]}), path)


def as_dict(overrides: list[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in overrides)


def test_paper_config_becomes_grpo_overrides(ready: RunSpec) -> None:
    argv = command(load_config(), ready, python="/venv/bin/python")
    assert argv[:3] == ["/venv/bin/python", "-m", "verl.trainer.main_ppo"]
    o = as_dict(argv[3:])
    assert o["algorithm.adv_estimator"] == "grpo"
    assert o["algorithm.norm_adv_by_std_in_grpo"] == "true"
    assert o["algorithm.use_kl_in_reward"] == "false" and o["actor_rollout_ref.actor.use_kl_loss"] == "false"
    assert o["data.train_batch_size"] == "32" and o["actor_rollout_ref.rollout.n"] == "8"
    assert float(o["actor_rollout_ref.actor.optim.lr"]) == 1e-6
    assert o["+reward.custom_reward_function.reward_kwargs.lam"] == "0.5"
    assert o["+reward.custom_reward_function.reward_kwargs.sigma"] == "1.0"
    assert o["reward.custom_reward_function.path"] == "pkg://agentracer.trainer.reward"
    assert o["actor_rollout_ref.actor.policy_loss.loss_mode"] == "agentracer_clip_schedule"
    assert o["actor_rollout_ref.actor.policy_loss._target_"].endswith("verl_policy_loss.ScheduledClipLossConfig")
    assert o["+actor_rollout_ref.actor.policy_loss.eps_max"] == "0.28"
    assert o["+actor_rollout_ref.actor.policy_loss.eps_min"] == "0.2"
    assert o["actor_rollout_ref.model.path"] == str(ready.model)
    assert o["data.train_files"] == str(ready.data / "train.parquet")
    assert o["trainer.default_local_dir"] == str(ready.output / "checkpoints")
    assert o["trainer.logger"] == "[console]"
    assert o["trainer.nnodes"] == "1" and o["trainer.n_gpus_per_node"] == "1"
    assert o["trainer.resume_mode"] == "auto"
    assert "+ray_kwargs.ray_init.address" not in o


def test_cluster_logger_resume_and_passthrough(ready: RunSpec, tmp_path: Path) -> None:
    checkpoint = tmp_path / "out" / "checkpoints" / "global_step_40"
    checkpoint.mkdir(parents=True)
    spec = RunSpec(model=ready.model, output=ready.output, data=ready.data, logger="wandb", nodes=2,
                   gpus_per_node=8, ray_address="10.0.0.1:6379", resume=str(checkpoint),
                   extra=["trainer.total_epochs=9"])
    config = load_config()
    config["verl"] = {"actor_rollout_ref.rollout.tensor_model_parallel_size": 2}
    overrides = verl_overrides(config, spec)
    o = as_dict(overrides)
    assert o["trainer.logger"] == "[console,wandb]"
    assert (o["trainer.nnodes"], o["trainer.n_gpus_per_node"]) == ("2", "8")
    assert o["+ray_kwargs.ray_init.address"] == "10.0.0.1:6379"
    assert o["trainer.resume_mode"] == "resume_path" and o["trainer.resume_from_path"] == str(checkpoint)
    assert o["actor_rollout_ref.rollout.tensor_model_parallel_size"] == "2"
    assert overrides[-1] == "trainer.total_epochs=9"  # a command-line override wins over the config
    preflight(spec, config, gpu_count=lambda: 0)  # a remote cluster: the local GPU count is not checked


def test_updates_per_step() -> None:
    assert updates_per_step(32, 32, 1) == 1
    assert updates_per_step(32, 8, 2) == 8
    assert updates_per_step(30, 8, 1) == 4


@pytest.mark.parametrize(("change", "message"), [
    ({"model": Path("/nonexistent/model")}, "base model path does not exist"),
    ({"logger": "tensorboard"}, "--logger"),
    ({"nodes": 2}, "needs a running Ray cluster"),
    ({"resume": "/nonexistent/global_step_3"}, "--resume"),
    ({"gpus_per_node": 0}, "at least 1"),
])
def test_preflight_errors(ready: RunSpec, change: dict, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = RunSpec(**{**ready.__dict__, **change})
    with pytest.raises(InputError, match=message):
        preflight(spec, load_config(), gpu_count=lambda: 8)


def test_preflight_model_folder_without_config_and_missing_data(ready: RunSpec, tmp_path: Path) -> None:
    (ready.model / "config.json").unlink()
    with pytest.raises(InputError, match="config.json"):
        preflight(ready, load_config(), gpu_count=lambda: 8)
    (ready.model / "config.json").write_text("{}")
    (ready.data / "val.parquet").unlink()
    with pytest.raises(InputError, match="val files not found"):
        preflight(ready, load_config(), gpu_count=lambda: 8)
    with pytest.raises(InputError, match="no training data"):
        verl_overrides(load_config(), RunSpec(model=ready.model, output=ready.output))


def test_preflight_gpu_checks(ready: RunSpec) -> None:
    with pytest.raises(InputError, match="no GPU found"):
        preflight(ready, load_config(), gpu_count=lambda: 0)
    with pytest.raises(InputError, match="only 2 GPU"):
        preflight(RunSpec(**{**ready.__dict__, "gpus_per_node": 4}), load_config(), gpu_count=lambda: 2)
    preflight(ready, load_config(), gpu_count=lambda: 1)


@pytest.mark.parametrize("override", ["a.b=1", "+x.y=[1,2]", "++z=null", "~trainer.logger", "k=a=b", "k="])
def test_hydra_overrides_pass(override: str) -> None:
    check_overrides([override])


@pytest.mark.parametrize("override", ["--gpus", "-x=1", "trainer.total_epochs", "=3", "1abc=2", "a b=1", "+x"])
def test_what_is_not_an_override_is_refused(override: str) -> None:
    with pytest.raises(InputError):
        check_overrides([override])


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2\n")
    with pytest.raises(InputError, match="YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(InputError, match="mapping"):
        load_config(bad)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentracer.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_cli_run_on_this_cpu_machine(ready: RunSpec) -> None:
    base = ["train", "run", "--model", str(ready.model), "--output", str(ready.output), "--data", str(ready.data)]
    missing = cli("train", "run", "--model", "/nonexistent/model", "--output", str(ready.output),
                  "--data", str(ready.data))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == ["error: /nonexistent/model: base model path does not exist"]
    no_gpu = cli(*base)  # this machine has no GPU: one clear line, nothing launched, no output folder
    assert no_gpu.returncode == 2
    assert no_gpu.stderr.strip().splitlines()[-1].startswith("error: no GPU found")
    assert not ready.output.exists()
    for bad, message in ((["--nodes", "-1"], "at least 1"), (["--gpus", "2"], "'--gpus' is not an option"),
                         (["trainer.total_epochs"], "not a verl override"),
                         (["--resume", "latest"], "--resume must be auto")):
        refused = cli(*base, "--dry-run", *bad)  # a dry run checks the arguments too
        assert refused.returncode == 2 and message in refused.stderr and "main_ppo" not in refused.stdout
    for bad, message in ((["--model", "/nonexistent/model"], "base model path does not exist"),
                         (["--data", str(ready.output)], "train files not found"),
                         (["--data", str(ready.data / "train.parquet")], "takes the folder")):
        refused = cli(*base, "--dry-run", *bad)  # and the files they name (not this machine's GPUs)
        assert refused.returncode == 2 and message in refused.stderr and "main_ppo" not in refused.stdout
    dry = cli(*base, "--dry-run", "--logger", "wandb", "trainer.total_epochs=2")
    assert dry.returncode == 0, dry.stderr
    argv = shlex.split(dry.stdout)  # a shell reads the printed command back as the launch's arguments
    assert argv[1:3] == ["-m", "verl.trainer.main_ppo"] and "trainer.logger=[console,wandb]" in argv
    assert [a for a in argv if a.startswith("trainer.total_epochs=")] == ["trainer.total_epochs=2"]
    ours = cli(*base, "--dry-run", "reward.lam=0.3", "clip.eps_max=0.35", "actor_rollout_ref.rollout.n=4")
    assert ours.returncode == 0, ours.stderr  # a key of our config sets it; verl's own keys go to verl
    argv = shlex.split(ours.stdout)
    assert "+reward.custom_reward_function.reward_kwargs.lam=0.3" in argv and "reward.lam=0.3" not in argv
    assert "+actor_rollout_ref.actor.policy_loss.eps_max=0.35" in argv and argv.count("actor_rollout_ref.rollout.n=4") == 1
    assert "warning" not in ours.stderr
    vanilla = cli(*base, "--dry-run", "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla")
    assert vanilla.returncode == 0 and "loss_mode=vanilla" in vanilla.stdout  # verl's own loss, as asked, and said
    assert "warning: actor_rollout_ref.actor.policy_loss.loss_mode=vanilla replaces" in vanilla.stderr
    assert "clip.eps_max" in vanilla.stderr
    for bad, message in (("data.train_batch_size=abc", "data.train_batch_size must be a whole number, got 'abc'"),
                         ("reward.lam=2", "0 <= lam <= 1"), ("clip.eps_mx=0.3", "unknown key clip.eps_mx")):
        refused = cli(*base, "--dry-run", bad)
        assert refused.returncode == 2 and message in refused.stderr and "main_ppo" not in refused.stdout


@pytest.mark.parametrize(("section", "values", "message"), [
    ("reward", {"lambda": 0.9}, "unknown key reward.lambda"),
    ("rollout", {"N": 16}, "unknown key rollout.N"),
    ("reward", {"lam": 2.0}, "0 <= lam <= 1"),
    ("reward", {"sigma": 0}, "0 < sigma"),
    ("clip", {"eps_max": 0.1, "eps_min": 0.3}, "eps_min <= eps_max"),
    ("clip", {"shape": "cosin"}, "shape must be one of"),
    ("optimiser", {"lr": 1e-6}, "unknown config section 'optimiser'"),
])
def test_a_config_mistake_is_refused_before_anything_starts(ready: RunSpec, section: str, values: dict,
                                                            message: str) -> None:
    config = load_config()
    config.setdefault(section, {}).update(values)
    with pytest.raises(InputError, match=re.escape(message)):
        check_inputs(ready, config)


def test_overrides_of_our_config_keys_set_them_and_the_rest_go_to_verl(ready: RunSpec) -> None:
    config = load_config()
    changed, rest = apply_overrides(config, ["reward.lam=0.25", "rollout.n=4", "data.train_batch_size=16",
                                             "trainer.val_before_train=false", "reward.custom_reward_function.x=1",
                                             "+data.gen_batch_size=8", "algorithm.gamma=0.9"])
    assert rest == ["reward.custom_reward_function.x=1", "+data.gen_batch_size=8", "algorithm.gamma=0.9"]
    assert changed["reward"]["lam"] == 0.25 and changed["rollout"]["n"] == 4
    assert changed["trainer"]["val_before_train"] is False
    assert config["reward"]["lam"] == 0.5 and config["rollout"]["n"] == 8  # the loaded config is left as it was
    overrides = as_dict(verl_overrides(changed, RunSpec(**{**ready.__dict__, "extra": rest})))
    assert overrides["+reward.custom_reward_function.reward_kwargs.lam"] == "0.25"
    assert overrides["actor_rollout_ref.rollout.n"] == "4" and overrides["data.train_batch_size"] == "16"
    assert overrides["trainer.val_before_train"] == "false"
    with pytest.raises(InputError, match=re.escape("unknown key ppo.epoch in 'ppo.epoch=2'; ppo takes")):
        apply_overrides(config, ["ppo.epoch=2"])


def test_a_plus_before_our_own_key_sets_ours(ready: RunSpec) -> None:
    """``+reward.lam=0.3`` went to verl as a key of its own, read by nothing, and our setting stayed; a batch size
    set so was not seen by the clip schedule (verl made 2 updates a step, the schedule counted 1)."""
    changed, rest = apply_overrides(load_config(), ["+reward.lam=0.3", "+clip.eps_max=0.4", "+ppo.epochs=2",
                                                    "+data.train_batch_size=64", "+trainer.new_key=1"])
    assert rest == ["+trainer.new_key=1"]
    assert changed["reward"]["lam"] == 0.3 and changed["clip"]["eps_max"] == 0.4 and changed["ppo"]["epochs"] == 2
    overrides = as_dict(verl_overrides(changed, RunSpec(**{**ready.__dict__, "extra": rest})))
    assert overrides["actor_rollout_ref.actor.ppo_mini_batch_size"] == "64"
    assert overrides["+actor_rollout_ref.actor.policy_loss.updates_per_step"] == "2"  # 2 epochs of one mini-batch
    assert not any(key.lstrip("+").startswith(("reward.lam", "clip.", "ppo.")) for key in overrides)
    with pytest.raises(InputError, match=re.escape("unknown key clip.eps_mx")):
        apply_overrides(load_config(), ["+clip.eps_mx=0.4"])
    with pytest.raises(InputError, match=re.escape("did you mean reward.lam?")):
        apply_overrides(load_config(), ["+reward.lamda=0.3"])


@pytest.mark.parametrize(("typo", "meant"), [("reward.lamda=0.3", "reward.lam"),
                                             ("data.train_batch_sise=64", "data.train_batch_size"),
                                             ("trainer.total_epoch=2", "trainer.total_epochs")])
def test_a_near_miss_of_our_key_in_a_section_verl_shares_is_refused(typo: str, meant: str) -> None:
    """reward.lamda=0.3 went to verl unchanged (rc 0 on --dry-run), where it fails after start-up or does nothing."""
    with pytest.raises(InputError, match=re.escape(f"did you mean {meant}?")):
        apply_overrides(load_config(), [typo])
    assert apply_overrides(load_config(), ["++" + typo])[1] == ["++" + typo]  # said as it is: verl's to judge


def test_no_key_of_verls_own_config_is_taken_for_a_typo() -> None:
    import verl  # (the train environment's)
    import yaml

    config = Path(verl.__file__).parent / "trainer" / "config" / "_generated_ppo_trainer.yaml"
    verl = yaml.safe_load(config.read_text())
    overrides = [f"{section}.{key}=1" for section in ("data", "trainer", "reward") for key in verl.get(section) or {}]
    _, rest = apply_overrides({}, [o for o in overrides if o.split("=")[0].split(".")[1] not in
                                   {"train_batch_size", "max_prompt_length", "max_response_length", "project_name",
                                    "experiment_name", "total_epochs", "save_freq", "test_freq", "val_before_train",
                                    "total_training_steps"}])
    assert len(rest) > 40


def test_numbers_yaml_reads_as_text_are_numbers(ready: RunSpec, tmp_path: Path) -> None:
    """PyYAML reads 1e-6 (no dot) as a string: the config's own comment writes the learning rate so."""
    config = tmp_path / "c.yaml"
    config.write_text(DEFAULT_CONFIG_TEXT.replace("lr: 1.0e-6", "lr: 1e-6"))
    overrides = as_dict(verl_overrides(load_config(config), ready))
    assert float(overrides["actor_rollout_ref.actor.optim.lr"]) == 1e-6
    changed, _ = apply_overrides(load_config(), ["optim.lr=3e-7", "reward.lam=1e-1", "data.train_batch_size=3.2e1"])
    overrides = as_dict(verl_overrides(changed, ready))
    assert float(overrides["actor_rollout_ref.actor.optim.lr"]) == 3e-7
    assert overrides["+reward.custom_reward_function.reward_kwargs.lam"] == "0.1"
    assert overrides["data.train_batch_size"] == "32"


@pytest.mark.parametrize(("override", "message"), [
    ("data.train_batch_size=abc", "data.train_batch_size must be a whole number, got 'abc'"),
    ("trainer.total_epochs=1.5", "trainer.total_epochs must be a whole number, got 1.5"),
    ("reward.sigma=true", "reward.sigma must be a number, got True"),
    ("optim.lr=fast", "optim.lr must be a number, got 'fast'"),
])
def test_a_setting_that_is_not_a_number_names_its_key(ready: RunSpec, override: str, message: str) -> None:
    config, _ = apply_overrides(load_config(), [override])
    with pytest.raises(InputError, match=re.escape(message)):
        check_inputs(ready, config)


def test_preflight_checks_the_row_counts_verl_needs(ready: RunSpec) -> None:
    assert ready.data is not None
    _rows(ready.data / "train.parquet", 20)
    with pytest.raises(InputError, match=r"20 training rows, fewer than one batch \(data.train_batch_size=32\)"):
        preflight(ready, load_config(), gpu_count=lambda: 1)
    config, _ = apply_overrides(load_config(), ["data.train_batch_size=16"])
    preflight(ready, config, gpu_count=lambda: 1)  # a command-line batch size is the one that counts (as told)
    by_hand = RunSpec(**{**ready.__dict__, "extra": ["++data.train_batch_size=16"]})  # verl's alone: mini-batch 32
    with pytest.raises(InputError, match=r"verl refuses this configuration: .*train_batch_size \(16\)"):
        preflight(by_hand, load_config(), gpu_count=lambda: 1)
    _rows(ready.data / "val.parquet", 0)
    with pytest.raises(InputError, match="validation set has no rows"):
        preflight(ready, config, gpu_count=lambda: 1)
    (ready.data / "val.parquet").write_bytes(b"PAR1")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        preflight(ready, config, gpu_count=lambda: 1)


def test_an_override_of_a_key_we_add_sets_it_rather_than_adding_it_twice(ready: RunSpec) -> None:
    lam = "reward.custom_reward_function.reward_kwargs.lam"
    spec = RunSpec(**{**ready.__dict__, "extra": [f"+{lam}=0.7", "+trainer.new_key=1", f"++{lam}=0.8"]})
    config = load_config()
    config["verl"] = {"actor_rollout_ref.actor.policy_loss.eps_max": 0.3}  # ours, spelt without its +
    overrides = verl_overrides(config, spec)
    assert [o for o in overrides if lam in o] == [f"+{lam}=0.5", f"{lam}=0.7", f"++{lam}=0.8"]
    assert "+trainer.new_key=1" in overrides  # a new key is still added
    eps = [o for o in overrides if "policy_loss.eps_max" in o]
    assert eps == ["+actor_rollout_ref.actor.policy_loss.eps_max=0.3"]


def test_verls_spelling_of_a_key_we_set_in_the_config_files_verl_section_is_ours_too(ready: RunSpec,
                                                                                  tmp_path: Path) -> None:
    """Written under ``verl:`` in the YAML, it passed to verl unchecked and unseen by the clip schedule: 4 updates a
    step counted as 1, rollout.n=1 past the group-size check, lam=2 past the reward's range."""
    base = (Path(__file__).resolve().parents[2] / "trainer" / "configs" / "grpo_paper.yaml").read_text()
    path = tmp_path / "c.yaml"
    path.write_text(base.replace("verl: {}", "verl:\n  actor_rollout_ref.actor.ppo_mini_batch_size: 8\n"
                                             "  trainer.critic_warmup: 0"))
    config = load_config(path)
    assert config["ppo"]["mini_batch_size"] == 8 and config["verl"] == {"trainer.critic_warmup": 0}
    overrides = as_dict(verl_overrides(config, ready))
    assert overrides["+actor_rollout_ref.actor.policy_loss.updates_per_step"] == "4"  # 32 / 8
    assert overrides["trainer.critic_warmup"] == "0"  # (verl's own keys pass as they are)
    for key, value, message in (("actor_rollout_ref.rollout.n", 1, "rollout.n must be at least 2"),
                                ("reward.custom_reward_function.reward_kwargs.lam", 2, "0 <= lam <= 1")):
        path.write_text(base.replace("verl: {}", f"verl:\n  {key}: {value}"))
        with pytest.raises(InputError, match=re.escape(message)):
            verl_overrides(load_config(path), ready)


def test_our_own_keys_in_the_verl_section_set_ours(ready: RunSpec, tmp_path: Path) -> None:
    """``verl: {data.train_batch_size: 64}`` reached verl, but the mini-batch and the clip schedule's updates per step
    were derived from our 32: verl made 2 updates a step and the schedule ran twice as fast."""
    path = tmp_path / "c.yaml"
    path.write_text(DEFAULT_CONFIG_TEXT.replace("verl: {}", "verl:\n  data.train_batch_size: 64\n"
                                                              "  +ppo.epochs: 2\n  data.seed: 3"))
    loaded = load_config(path)
    assert loaded["data"]["train_batch_size"] == 64 and loaded["ppo"]["epochs"] == 2
    assert loaded["verl"] == {"data.seed": 3}
    by_hand = load_config()
    by_hand["verl"] = {"data.train_batch_size": 64}
    for config in (loaded, apply_overrides(by_hand, [])[0], by_hand):
        overrides = as_dict(verl_overrides(config, ready))
        assert overrides["data.train_batch_size"] == "64"
        assert overrides["actor_rollout_ref.actor.ppo_mini_batch_size"] == "64"
    changed, _ = apply_overrides(by_hand, ["data.train_batch_size=16"])  # the command line still wins
    assert changed["data"]["train_batch_size"] == 16


def test_a_hydra_interpolation_of_our_key_in_the_verl_section_goes_to_verl_as_it_is(ready: RunSpec) -> None:
    config = load_config()
    config["verl"] = {"trainer.total_epochs": "${oc.env:EPOCHS,2}"}
    overrides = as_dict(verl_overrides(ours_from_verl_section(config), ready))
    assert overrides["trainer.total_epochs"].strip("'") == "${oc.env:EPOCHS,2}"  # (quoted for hydra: a comma)


def test_a_nested_verl_section_becomes_dotted_keys(ready: RunSpec, tmp_path: Path) -> None:
    """``verl: {trainer: {max_actor_ckpt_to_keep: 2}}`` reached verl as ``trainer='{...}'`` (the dict's text)."""
    path = tmp_path / "c.yaml"
    path.write_text(DEFAULT_CONFIG_TEXT.replace("verl: {}", "verl:\n  trainer:\n    max_actor_ckpt_to_keep: 2\n"
                                                              "  data: {train_batch_size: 16}\n"
                                                              "  +ray_kwargs: {ray_init: {num_cpus: 4}}"))
    config = load_config(path)
    assert config["data"]["train_batch_size"] == 16  # (ours, nested or not)
    overrides = verl_overrides(config, ready)
    assert "trainer.max_actor_ckpt_to_keep=2" in overrides and "+ray_kwargs.ray_init.num_cpus=4" in overrides
    assert not any(o.startswith(("trainer=", "data=", "+ray_kwargs=")) for o in overrides)
    config["verl"] = {"actor_rollout_ref.model.override_config": {}}
    assert "actor_rollout_ref.model.override_config={}" in verl_overrides(config, ready)
    assert check_inputs(ready, load_config(path)) is None  # (verl composes it)


def test_verls_spelling_of_a_key_we_set_sets_ours_and_is_checked_as_ours(ready: RunSpec) -> None:
    """``actor_rollout_ref.actor.ppo_mini_batch_size=8`` is ``ppo.mini_batch_size=8``: the clip schedule counts its
    updates per step from it, and a clip or reward setting out of range spelt verl's way is refused as ours is."""
    config, rest = apply_overrides(load_config(), ["actor_rollout_ref.actor.ppo_mini_batch_size=8",
                                                    "+actor_rollout_ref.rollout.n=4", "algorithm.gamma=0.9"])
    assert config["ppo"]["mini_batch_size"] == 8 and config["rollout"]["n"] == 4 and rest == ["algorithm.gamma=0.9"]
    overrides = as_dict(verl_overrides(config, ready))
    assert overrides["+actor_rollout_ref.actor.policy_loss.updates_per_step"] == "4"  # 32 / 8
    assert overrides["actor_rollout_ref.actor.ppo_mini_batch_size"] == "8"
    for item, message in (("+actor_rollout_ref.actor.policy_loss.eps_max=0.1", "eps"),
                          ("+reward.custom_reward_function.reward_kwargs.lam=3", "0 <= lam <= 1"),
                          ("rollout.n=1", "rollout.n must be at least 2"),
                          ("data.train_batch_size=0", "data.train_batch_size must be at least 1"),
                          ("optim.lr=-1", "optim.lr must be above 0"),
                          ("ppo.mini_batch_size=64", "larger than data.train_batch_size")):
        changed, _ = apply_overrides(load_config(), [item])
        with pytest.raises(InputError, match=re.escape(message)):
            verl_overrides(changed, ready)
    passed, rest = apply_overrides(load_config(), ["++actor_rollout_ref.rollout.n=1"])  # ++: as it is, to verl
    assert rest == ["++actor_rollout_ref.rollout.n=1"] and passed["rollout"]["n"] == 8
    interpolated = "actor_rollout_ref.actor.optim.lr=${oc.env:LR,1e-6}"  # hydra resolves it: verl's to read
    passed, rest = apply_overrides(load_config(), [interpolated])
    assert rest == [interpolated] and passed["optim"]["lr"] == 1e-6


def test_the_clip_schedule_resumes_where_verl_does_after_every_override(ready: RunSpec, tmp_path: Path) -> None:
    """``trainer.resume_mode=disable`` (or another checkpoint folder) made verl start afresh while the schedule
    counted on from the step --resume auto found: the whole run at eps_min."""
    checkpoints = Path(ready.output) / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "latest_checkpointed_iteration.txt").write_text("40")
    other = tmp_path / "other, run"  # (a path hydra quotes)
    other.mkdir()
    (other / "latest_checkpointed_iteration.txt").write_text("12")
    key = "+actor_rollout_ref.actor.policy_loss.resumed_step"

    def resumed(extra: list[str], verl: dict | None = None) -> list[str]:
        config, rest = apply_overrides({**load_config(), "verl": verl or {}}, extra)
        return [o.split("=", 1)[1] for o in verl_overrides(config, RunSpec(**{**ready.__dict__, "extra": rest}))
                if o.split("=", 1)[0].lstrip("+") == key.lstrip("+")]

    assert resumed([]) == ["40"]
    assert resumed(["trainer.resume_mode=disable"]) == ["-1"]
    assert resumed([], {"trainer.resume_mode": "disable"}) == ["-1"]
    assert resumed(["trainer.resume_mode=resume_path", "trainer.resume_from_path=/x/global_step_7"]) == ["7"]
    assert resumed([f"trainer.default_local_dir='{other}'"]) == ["12"]
    assert resumed([], {"trainer.default_local_dir": str(other)}) == ["12"]
    assert resumed([f"{key}=3", "trainer.resume_mode=disable"]) == ["-1", "3"]  # (set by hand: the last wins)


def test_verls_clip_ratios_set_beside_our_loss_are_warned_of(ready: RunSpec) -> None:
    """actor_rollout_ref.actor.clip_ratio_high=0.5 reached verl without a word, and our scheduled loss never reads it."""
    def note(extra: list[str], verl: dict | None = None) -> str | None:
        config, rest = apply_overrides({**load_config(), "verl": verl or {}}, extra)
        return loss_mode_note(verl_overrides(config, RunSpec(**{**ready.__dict__, "extra": rest})))

    assert note([]) is None
    for extra, verl in ((["actor_rollout_ref.actor.clip_ratio_high=0.5"], None),
                        ([], {"actor_rollout_ref.actor.clip_ratio_c": 10.0}),
                        (["actor_rollout_ref.actor.clip_ratio=0.3"], None)):
        said = note(extra, verl)
        assert said is not None and "does not read verl's clip ratios" in said and "clip.eps_max" in said
    mode = "actor_rollout_ref.actor.policy_loss.loss_mode"
    said = note([f"{mode}=vanilla", "actor_rollout_ref.actor.clip_ratio_high=0.5"])  # (vanilla reads them)
    assert said is not None and "clip ratios" not in said


def test_verls_own_check_is_skipped_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A verl that does not import here (no CUDA libraries on a login node), or a caller inside a hydra app: the
    dry run still checks everything of ours and prints the command."""
    import builtins

    from agentracer.trainer.launch import check_with_verl
    from hydra import initialize_config_dir

    overrides = ["data.train_batch_size=0"]  # (verl would refuse it)
    with initialize_config_dir(config_dir=str(tmp_path), version_base=None):
        assert check_with_verl(overrides) is False
    real_import = builtins.__import__

    def no_verl(name: str, *args, **kwargs):  # noqa: ANN002, ANN003
        if name == "verl" or name.startswith("verl."):
            raise ImportError("libcudart.so.12: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_verl)
    monkeypatch.delitem(sys.modules, "verl", raising=False)
    assert check_with_verl(overrides) is False


def test_paths_given_relative_reach_verl_absolute(ready: RunSpec, tmp_path: Path, monkeypatch) -> None:
    """verl reads the data and writes checkpoints in Ray workers, whose folder is not ours: relative paths passed
    the dry run and pointed nowhere (or elsewhere) on a cluster."""
    monkeypatch.chdir(tmp_path)
    spec = RunSpec(model=Path("model"), output=Path("out"), data=Path("data"))
    o = as_dict(verl_overrides(load_config(), spec))
    assert o["data.train_files"] == str(tmp_path.resolve() / "data" / "train.parquet")
    assert o["actor_rollout_ref.model.path"] == str(tmp_path.resolve() / "model")
    assert o["trainer.default_local_dir"] == str(tmp_path.resolve() / "out" / "checkpoints")
    resumed = RunSpec(model=Path("model"), output=Path("out"), data=Path("data"),
                      resume="out/checkpoints/global_step_10")
    assert as_dict(verl_overrides(load_config(), resumed))["trainer.resume_from_path"] == str(
        tmp_path.resolve() / "out" / "checkpoints" / "global_step_10")


def test_prompts_prepared_longer_than_verls_limit_are_refused_before_launch(ready: RunSpec) -> None:
    """verl drops rows whose prompt is over data.max_prompt_length (filter_overlong_prompts): data prepared with a
    larger --max-prompt-tokens passed the dry run and trained on fewer rows than reported."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert ready.data is not None
    tokens = [1000] * 31 + [20000]
    pq.write_table(pa.table({"prompt": [f"row {i}" for i in range(32)],
                             "extra_info": [{"prompt_tokens": n} for n in tokens]}), ready.data / "train.parquet")
    with pytest.raises(InputError, match=r"prompts of up to 20000 tokens .* over data.max_prompt_length=16384"):
        preflight(ready, load_config(), gpu_count=lambda: 1)
    config, _ = apply_overrides(load_config(), ["data.max_prompt_length=20480"])
    preflight(ready, config, gpu_count=lambda: 1)
    config, _ = apply_overrides(load_config(), ["data.max_prompt_length=20000"])  # (no room for the template)
    with pytest.raises(InputError, match=r"--max-prompt-tokens 19936 or less"):
        preflight(ready, config, gpu_count=lambda: 1)


R1_STYLE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}")
NO_THINKING = R1_STYLE.replace("<think>\n{% endif %}", "<think>\n\n</think>\n\n{% endif %}")
CHATML = R1_STYLE.replace("<think>\n{% endif %}", "{% endif %}")


def _tokenizer_in(folder: Path, template: str) -> None:
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    bpe = Tokenizer(models.WordLevel({"<unk>": 0, "x": 1}, unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<unk>", pad_token="<unk>")
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)


@pytest.mark.parametrize(("template", "prefix"), [(R1_STYLE, "<think>"), (NO_THINKING, "<think></think>"),
                                                  (CHATML, None)])
def test_a_chat_template_that_writes_the_think_tag_is_scored_with_the_answer(ready: RunSpec, template: str,
                                                                             prefix: str | None) -> None:
    """A template that opens the reasoning for the model (DeepSeek-R1's distills) leaves the rollout without its
    "<think>": the strict format zeroed every reward. The run passes the template's part to the reward."""
    from agentracer.trainer.launch import check_with_verl, response_prefix
    from agentracer.trainer.reward import compute_score

    _tokenizer_in(Path(ready.model), template)
    assert response_prefix(ready.model) == (prefix or "")
    overrides = verl_overrides(load_config(), ready)
    key = "+reward.custom_reward_function.reward_kwargs.response_prefix"
    given = [o.split("=", 1)[1] for o in overrides if o.startswith(key + "=")]
    assert given == ([f"'{prefix}'"] if prefix else [])
    check_with_verl(overrides)  # (verl's own config takes it, where verl is installed)
    truth = {"agent": "Coder", "step": 2, "agents": ["Coder", "Planner"]}
    rollout = "the coder slipped</think>\n<answer>Coder|2</answer>" if prefix == "<think>" else (
        "<answer>Coder|2</answer>" if prefix else "<think>the coder slipped</think><answer>Coder|2</answer>")
    assert compute_score("who_when", rollout, truth, response_prefix=prefix or "")["score"] == 1.0
    if prefix:
        assert compute_score("who_when", rollout, truth)["format"] == 0.0  # (what every rollout scored before)
