"""``agentracer train run``: our GRPO settings → verl's ``main_ppo`` command line, checked before launch.

The YAML config (``trainer/configs/grpo_paper.yaml``) holds the paper's settings in our own small schema;
:func:`verl_overrides` turns it into hydra overrides for ``python -m verl.trainer.main_ppo``: GRPO
advantages, no KL anywhere, our reward function (``agentracer.trainer.reward.compute_score``) and our
scheduled-clip policy loss (``agentracer.trainer.verl_policy_loss``). Nothing here imports torch or verl;
:func:`preflight` checks the model path, verl and the GPUs before anything expensive starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .schedule import ClipSchedule

CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "grpo_paper.yaml"
LOSS_NAME = "agentracer_clip_schedule"
LOSS_CONFIG_TARGET = "agentracer.trainer.verl_policy_loss.ScheduledClipLossConfig"
REWARD_MODULE = "pkg://agentracer.trainer.reward"
LOGGERS = ("console", "wandb")


@dataclass
class RunSpec:
    """What ``train run`` was asked for, besides the YAML config."""

    model: Path
    output: Path
    data: Path | None = None
    logger: str = "console"
    nodes: int = 1
    gpus_per_node: int = 1
    ray_address: str | None = None
    resume: str = "auto"  # auto | disable | a checkpoint folder (global_step_N)
    extra: list[str] = field(default_factory=list)


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """The YAML config as a dict (the shipped paper config when ``path`` is None)."""
    import yaml

    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise InputError("no such config file", where=str(path))
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML ({exc})", where=str(path)) from None
    if not isinstance(config, dict):
        raise InputError("the config must be a mapping", where=str(path))
    return ours_from_verl_section(config)


def ours_from_verl_section(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the keys of its ``verl:`` section that are ours, or verl's spelling of ours (``VERL_SPELLINGS``:
    ``actor_rollout_ref.rollout.n`` is ``rollout.n``), moved to our sections, as a command-line override of them is:
    what we derive from them (the clip schedule's updates per step) and our checks follow them. They passed to verl
    unchecked (rollout.n=1 past the group-size check, lam=2 past the reward's range) and unseen by the schedule
    (``data.train_batch_size: 64`` made 2 updates a step, counted as 1)."""
    verl = config.get("verl")
    if not isinstance(verl, dict):
        return config
    config = {name: dict(value) if isinstance(value, dict) else value for name, value in config.items()}
    config["verl"] = verl = flat_keys(verl)
    for key, value in list(verl.items()):
        bare = str(key).removeprefix("+")
        section, _, name = bare.partition(".")
        ours = VERL_SPELLINGS.get(bare) or (bare if name in SECTION_KEYS.get(section, ()) else None)
        interpolated = isinstance(value, str) and value.lstrip().startswith("${")  # (hydra's: verl resolves it)
        if ours is not None and not str(key).startswith("++") and not interpolated:
            section, _, name = ours.partition(".")
            config[section] = {**_section(config, section), name: value}
            del config["verl"][key]
    return config


def flat_keys(mapping: dict[Any, Any], parent: str = "") -> dict[str, Any]:
    """A nested ``verl:`` mapping (``trainer: {max_actor_ckpt_to_keep: 2}``) as dotted keys
    (``trainer.max_actor_ckpt_to_keep: 2``), as hydra overrides name them (a mapping became ``trainer='{...}'``, a
    text verl refused); a ``+`` of any level goes before the whole key; an empty mapping stays a value."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        text = str(key)
        plus = max(text[: len(text) - len(text.lstrip("+"))], parent[: len(parent) - len(parent.lstrip("+"))], key=len)
        full = plus + ".".join(part for part in (parent.lstrip("+"), text.lstrip("+")) if part)
        if isinstance(value, dict) and value:
            flat.update(flat_keys(value, full))
        else:
            flat[full] = value
    return flat


# every key of our schema, by section (``verl:`` passes verl's own keys through)
SECTION_KEYS: dict[str, frozenset[str]] = {
    "data": frozenset({"dir", "train_batch_size", "max_prompt_length", "max_response_length"}),
    "optim": frozenset({"lr"}),
    "rollout": frozenset({"name", "n", "temperature", "tensor_model_parallel_size", "gpu_memory_utilization"}),
    "reward": frozenset({"lam", "sigma"}),
    "clip": frozenset({"eps_max", "eps_min", "shape", "total_steps"}),
    "ppo": frozenset({"mini_batch_size", "epochs", "micro_batch_size_per_gpu", "log_prob_micro_batch_size_per_gpu",
                      "loss_agg_mode"}),
    "trainer": frozenset({"project_name", "experiment_name", "total_epochs", "save_freq", "test_freq",
                          "val_before_train", "total_training_steps"}),
}


# the keys whose values must be numbers (booleans are not), and sections verl has no top-level key of
_INTEGERS = frozenset({"data.train_batch_size", "data.max_prompt_length", "data.max_response_length", "rollout.n",
                       "rollout.tensor_model_parallel_size", "clip.total_steps", "ppo.mini_batch_size", "ppo.epochs",
                       "ppo.micro_batch_size_per_gpu", "ppo.log_prob_micro_batch_size_per_gpu", "trainer.total_epochs", "trainer.save_freq",
                       "trainer.test_freq", "trainer.total_training_steps"})
_FLOATS = frozenset({"optim.lr", "rollout.temperature", "rollout.gpu_memory_utilization", "reward.lam",
                     "reward.sigma", "clip.eps_max", "clip.eps_min"})
_OURS_ONLY = frozenset({"optim", "rollout", "clip", "ppo"})


_ACTOR, _ROLLOUT, _LOSS = "actor_rollout_ref.actor", "actor_rollout_ref.rollout", "actor_rollout_ref.actor.policy_loss"
VERL_SPELLINGS: dict[str, str] = {
    f"{_ACTOR}.ppo_mini_batch_size": "ppo.mini_batch_size", f"{_ACTOR}.ppo_epochs": "ppo.epochs",
    f"{_ACTOR}.ppo_micro_batch_size_per_gpu": "ppo.micro_batch_size_per_gpu",
    f"{_ROLLOUT}.log_prob_micro_batch_size_per_gpu": "ppo.log_prob_micro_batch_size_per_gpu",
    f"{_ACTOR}.loss_agg_mode": "ppo.loss_agg_mode", f"{_ACTOR}.optim.lr": "optim.lr",
    **{f"{_ROLLOUT}.{name}": f"rollout.{name}" for name in SECTION_KEYS["rollout"]},
    **{f"{_LOSS}.{name}": f"clip.{name}" for name in SECTION_KEYS["clip"]},
    **{f"reward.custom_reward_function.reward_kwargs.{name}": f"reward.{name}" for name in SECTION_KEYS["reward"]},
}
"""verl's keys for what our config sets (``actor_rollout_ref.rollout.n`` is ``rollout.n``): an override spelt
verl's way sets our key, so that what we derive from it (the clip schedule's updates per step) and our checks follow."""


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Split command-line ``key=value`` overrides into those of our config (``reward.lam=0.3``, set in a copy of
    ``config``, the value read as YAML) and verl's (returned in order). A key of a section only we have
    (``clip.eps_mx=0.3``) is an ``InputError`` naming what that section takes; ``+key``/``~key`` are verl's, but for
    a key of ours or verl's spelling of one (``VERL_SPELLINGS``), which sets ours (``+reward.lam=0.3`` is
    ``reward.lam=0.3``); ``++key`` passes anything as it is."""
    import yaml

    config = ours_from_verl_section(config)  # (a config made by hand: its verl: keys of ours, before the overrides)
    config = {name: dict(value) if isinstance(value, dict) else value for name, value in config.items()}
    rest: list[str] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and not key.startswith("++") and not value.lstrip().startswith("${"):
            key = VERL_SPELLINGS.get(key.removeprefix("+"), key)  # verl's spelling of a key we set is ours (++ and a
            # hydra interpolation, ${...}, pass it to verl as it is)
            if key.startswith("+") and key[1:].partition(".")[0] in SECTION_KEYS:
                key = key[1:]  # (+reward.lam is reward.lam: verl would add it as a key of its own, read by nothing)
        section, dot, name = key.partition(".")
        if not (sep and dot) or section not in SECTION_KEYS or (name not in SECTION_KEYS[section]
                                                                 and section not in _OURS_ONLY):
            near = _near_our_key(section, name) if sep and dot else None
            if near is not None:  # reward.lamda=0.3 would reach verl, which has no such key either
                raise InputError(f"unknown key {key} in {item!r}: did you mean {near}? (to give verl a key of its own "
                                 f"as it is, write ++{key}=...)")
            rest.append(item)
            continue
        if name not in SECTION_KEYS[section]:
            raise InputError(f"unknown key {key} in {item!r}; {section} takes {sorted(SECTION_KEYS[section])} "
                             "(verl's own keys are written in full, e.g. actor_rollout_ref.rollout.n=4)")
        try:
            parsed = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            parsed = value
        config[section] = {**_section(config, section), name: parsed}
    return config, rest


# verl's own keys of the sections it shares with our config (verl 0.9): never taken for a typo of ours
_VERL_KEYS = frozenset({
    "data.gen_batch_size", "data.val_batch_size", "data.train_max_samples", "data.val_max_samples", "data.seed",
    "data.shuffle", "data.validation_shuffle", "data.prompt_key", "data.reward_fn_key", "data.truncation",
    "trainer.total_epochs", "trainer.val_only", "trainer.test_freq", "trainer.save_freq", "trainer.resume_mode",
    "trainer.nnodes", "trainer.device", "trainer.logger", "reward.num_workers", "reward.reward_manager",
    "reward.reward_model", "reward.custom_reward_function", "reward.sandbox_fusion",
})


def _near_our_key(section: str, name: str) -> str | None:
    """Our config key ``section.name`` nearly spells (a typo of ``reward.lam``), when it is neither one of ours nor
    one of verl's (``++key=value`` passes anything to verl as it is)."""
    import difflib

    keys = SECTION_KEYS.get(section)
    if not keys or name in keys or "." in name or f"{section}.{name}" in _VERL_KEYS:
        return None
    close = difflib.get_close_matches(name, sorted(keys), n=1, cutoff=0.75)
    return f"{section}.{close[0]}" if close else None


def _check_types(config: dict[str, Any]) -> None:
    """A setting that must be a number and is not (``data.train_batch_size=abc``): one error naming its key."""
    for key in sorted(_INTEGERS | _FLOATS):
        section, name = key.split(".")
        value = _section(config, section).get(name)
        if value is None or (key == "trainer.total_training_steps" and not value):
            continue
        if isinstance(value, str):  # YAML reads 1e-6 (no dot) as text: a number all the same, stored as one
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                value = int(number) if key in _INTEGERS and number.is_integer() else number
                _section(config, section)[name] = value
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not isinstance(value, int | float) or (key in _INTEGERS and not whole):
            kind = "a whole number" if key in _INTEGERS else "a number"
            raise InputError(f"{key} must be {kind}, got {value!r}")


# the least each counting setting may be (a batch of 0 trains on nothing; GRPO's advantage of a group of one
# rollout is always 0, so rollout.n = 1 trains nothing either)
_AT_LEAST = {"data.train_batch_size": 1, "data.max_prompt_length": 1, "data.max_response_length": 1, "rollout.n": 2,
             "rollout.tensor_model_parallel_size": 1, "ppo.mini_batch_size": 1, "ppo.epochs": 1,
             "ppo.micro_batch_size_per_gpu": 1, "ppo.log_prob_micro_batch_size_per_gpu": 1, "clip.total_steps": 0,
             "trainer.total_epochs": 1, "trainer.save_freq": -1, "trainer.test_freq": -1}


def _check_ranges(config: dict[str, Any]) -> None:
    """A setting out of its range (``data.train_batch_size=0``, ``rollout.n=1``, ``optim.lr=-1``): one error now,
    not a run that trains nothing."""
    for key, least in _AT_LEAST.items():
        section, name = key.split(".")
        value = _section(config, section).get(name)
        if value is not None and value < least:
            why = " (GRPO compares the rollouts of one prompt: one alone has no advantage)" if key == "rollout.n" else ""
            raise InputError(f"{key} must be at least {least}, got {value}{why}")
    lr = _section(config, "optim").get("lr")
    if lr is not None and not 0 < lr < math.inf:
        raise InputError(f"optim.lr must be above 0, got {lr}")
    temperature = _section(config, "rollout").get("temperature")
    if temperature is not None and not 0 < temperature < math.inf:
        raise InputError(f"rollout.temperature must be above 0 (GRPO samples its rollouts), got {temperature}")
    memory = _section(config, "rollout").get("gpu_memory_utilization")
    if memory is not None and not 0 < memory <= 1:
        raise InputError(f"rollout.gpu_memory_utilization must be in (0, 1], got {memory}")
    data, ppo = _section(config, "data"), _section(config, "ppo")
    batch, mini = data.get("train_batch_size", 32), ppo.get("mini_batch_size")
    if mini is not None and mini > batch:
        raise InputError(f"ppo.mini_batch_size ({mini}) is larger than data.train_batch_size ({batch}): verl needs "
                         "a batch to hold at least one mini-batch; lower ppo.mini_batch_size too")


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name) or {}
    if not isinstance(value, dict):
        raise InputError(f"config section '{name}' must be a mapping")
    return value


def check_config(config: dict[str, Any]) -> None:
    """A misspelt key (``reward.lambda``) or a reward or clip setting out of range is one ``InputError`` now, not
    a default silently used, or an error at the first reward or loss call, after the model and rollouts loaded."""
    for name in config:
        if name not in SECTION_KEYS and name != "verl":
            raise InputError(f"unknown config section {name!r}; known: {sorted([*SECTION_KEYS, 'verl'])}")
    for name, known in SECTION_KEYS.items():
        unknown = sorted(set(_section(config, name)) - known)
        if unknown:
            raise InputError(f"unknown key {name}.{unknown[0]}; {name} takes {sorted(known)} (verl's own settings "
                             "go under verl:)")
    _check_types(config)
    _check_ranges(config)
    reward, clip = _section(config, "reward"), _section(config, "clip")
    try:
        lam, sigma = float(reward.get("lam", 0.5)), float(reward.get("sigma", 1.0))
        if not (0.0 <= lam <= 1.0 and 0.0 < sigma < math.inf):
            raise ValueError(f"reward needs 0 <= lam <= 1 and 0 < sigma, got lam={lam}, sigma={sigma}")
        ClipSchedule(eps_max=float(clip.get("eps_max", 0.28)), eps_min=float(clip.get("eps_min", 0.2)),
                     shape=str(clip.get("shape", "cosine")), total_steps=int(clip.get("total_steps", 0)))
    except (TypeError, ValueError) as exc:
        raise InputError(f"config: {exc}") from None


_HYDRA_SPECIAL = re.compile(r"""[\s,=\[\]{}()<>'"\\]""")  # what ends or changes an unquoted hydra value


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):  # (hydra's dict syntax: one in a list, or an empty one, flat_keys leaves as a value)
        return "{" + ",".join(f"{k}:{_value(x)}" for k, x in v.items()) + "}"
    text = str(v)
    if isinstance(v, str) and _HYDRA_SPECIAL.search(text):  # a path with a comma, a name with '=': quoted
        return _hydra_quoted(text)
    return text


def _hydra_quoted(text: str) -> str:
    """``text`` as a quoted hydra value: a quote escaped; backslashes doubled only where hydra reads them as escapes
    (before a quote, and at the end)."""
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


def resumed_step(spec: RunSpec) -> int:
    """The training step the run resumes at, as verl will find it (-1: it starts afresh): ``global_step_N`` given, or
    with ``auto`` the step ``latest_checkpointed_iteration.txt`` names in the checkpoint folder."""
    if spec.resume == "disable":
        return -1
    if spec.resume != "auto":
        found = re.fullmatch(r"global_step_(\d+)", Path(spec.resume).name)
        return int(found.group(1)) if found else -1
    return _latest_step(Path(spec.output) / "checkpoints")


def _latest_step(checkpoints: Path) -> int:
    """The step ``latest_checkpointed_iteration.txt`` in ``checkpoints`` names (-1: none)."""
    try:
        text = (checkpoints / "latest_checkpointed_iteration.txt").read_text(encoding="utf-8").strip()
    except OSError:
        return -1
    return int(text) if text.isdigit() else -1


def resumed_step_of(overrides: list[str]) -> int:
    """The training step verl resumes at under ``overrides`` (the last of each key winning, as in hydra), as
    ``resumed_step`` but after every override: ``trainer.resume_mode=disable`` starts afresh (-1), ``resume_path``
    resumes at ``trainer.resume_from_path``'s ``global_step_N``, ``auto`` at the latest checkpoint in
    ``trainer.default_local_dir``. -1 where it is not known (a hydra interpolation)."""
    def last(key: str) -> str | None:
        values = [o.split("=", 1)[1] for o in overrides if "=" in o and o.split("=", 1)[0].lstrip("+") == key]
        return _unquoted(values[-1]) if values else None

    mode = last("trainer.resume_mode") or "auto"
    if mode == "disable":
        return -1
    if mode == "resume_path":
        found = re.fullmatch(r"global_step_(\d+)", Path(last("trainer.resume_from_path") or "").name)
        return int(found.group(1)) if found else -1
    folder = last("trainer.default_local_dir")
    return -1 if not folder or "${" in folder else _latest_step(Path(folder))


def _unquoted(value: str) -> str:
    """A hydra value as the text it stands for (``_hydra_quoted``'s quotes and escapes undone)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return re.sub(r"\\(\\|['\"])", r"\1", value[1:-1])
    return value


def updates_per_step(batch_size: int, mini_batch_size: int, epochs: int) -> int:
    """Optimizer updates in one training step: epochs x mini-batches per batch."""
    return max(1, epochs) * max(1, math.ceil(batch_size / max(1, mini_batch_size)))


def response_prefix(model: str | os.PathLike[str]) -> str:
    """What the model's chat template writes of the answer into the generation prompt, from ``<think>`` on and
    without its spaces and newlines (which the answer format allows anywhere there): ``<think>`` for a template that
    opens the reasoning for the model, ``<think></think>`` for one that closes an empty one; else ''. The rollout's
    text starts after it, so the reward scores it as part of the answer (without it, the strict format would zero
    every reward). '' for a model that is no local folder or has no chat template."""
    folder = Path(model)
    if not folder.is_dir() or importlib.util.find_spec("transformers") is None:
        return ""
    from ..tracer.answer_format import template_answer_start

    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception:  # (a folder without a tokenizer: nothing to find)
        return ""
    return "".join(template_answer_start(tokenizer).split())



def verl_overrides(config: dict[str, Any], spec: RunSpec) -> list[str]:
    """The hydra overrides for verl's ``main_ppo`` (``key=value`` strings; ``+key`` adds a key verl lacks)."""
    config = ours_from_verl_section(config)
    check_config(config)
    data, optim, rollout = _section(config, "data"), _section(config, "optim"), _section(config, "rollout")
    reward, clip, ppo = _section(config, "reward"), _section(config, "clip"), _section(config, "ppo")
    trainer = _section(config, "trainer")
    data_dir = spec.data or (Path(data["dir"]) if data.get("dir") else None)
    if data_dir is None:
        raise InputError("no training data: pass --data DIR (from `agentracer train prepare`) or set data.dir")
    batch = int(data.get("train_batch_size", 32))
    mini = int(ppo.get("mini_batch_size", batch))
    epochs = int(ppo.get("epochs", 1))
    micro = int(ppo.get("micro_batch_size_per_gpu", 1))
    out: dict[str, Any] = {
        # data
        # (absolute: verl reads data and writes checkpoints in Ray workers, whose folder is not this one)
        "data.train_files": str(Path(data_dir).resolve() / "train.parquet"),
        "data.val_files": str(Path(data_dir).resolve() / "val.parquet"),
        "data.train_batch_size": batch,
        "data.max_prompt_length": int(data.get("max_prompt_length", 16384)),
        "data.max_response_length": int(data.get("max_response_length", 2048)),
        "data.filter_overlong_prompts": True,
        "data.truncation": "error",
        # GRPO, no KL in the reward or the loss
        "algorithm.adv_estimator": "grpo",
        "algorithm.norm_adv_by_std_in_grpo": True,
        "algorithm.use_kl_in_reward": False,
        "actor_rollout_ref.actor.use_kl_loss": False,
        "actor_rollout_ref.actor.kl_loss_coef": 0.0,
        "actor_rollout_ref.actor.entropy_coeff": 0.0,
        # model and optimiser
        # (a local folder, as train run checks; a name it does not hold, as written)
        "actor_rollout_ref.model.path": str(Path(spec.model).resolve()) if Path(spec.model).exists() else str(spec.model),
        "actor_rollout_ref.actor.optim.lr": float(optim.get("lr", 1e-6)),
        "actor_rollout_ref.actor.ppo_mini_batch_size": mini,
        "actor_rollout_ref.actor.ppo_epochs": epochs,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": micro,
        "actor_rollout_ref.actor.loss_agg_mode": ppo.get("loss_agg_mode", "token-mean"),
        # our policy loss: clipped surrogate, clipping range on a schedule
        "actor_rollout_ref.actor.policy_loss._target_": LOSS_CONFIG_TARGET,
        LOSS_MODE_KEY: LOSS_NAME,
        "+actor_rollout_ref.actor.policy_loss.eps_max": float(clip.get("eps_max", 0.28)),
        "+actor_rollout_ref.actor.policy_loss.eps_min": float(clip.get("eps_min", 0.2)),
        "+actor_rollout_ref.actor.policy_loss.shape": clip.get("shape", "cosine"),
        "+actor_rollout_ref.actor.policy_loss.total_steps": int(clip.get("total_steps", 0)),
        "+actor_rollout_ref.actor.policy_loss.updates_per_step": updates_per_step(batch, mini, epochs),
        RESUMED_KEY: resumed_step(spec),
        # rollout
        "actor_rollout_ref.rollout.name": rollout.get("name", "vllm"),
        "actor_rollout_ref.rollout.n": int(rollout.get("n", 8)),
        "actor_rollout_ref.rollout.temperature": float(rollout.get("temperature", 1.0)),
        "actor_rollout_ref.rollout.tensor_model_parallel_size": int(rollout.get("tensor_model_parallel_size", 1)),
        "actor_rollout_ref.rollout.gpu_memory_utilization": float(rollout.get("gpu_memory_utilization", 0.6)),
        # the old policy's log-probabilities, recomputed after each rollout (verl asks for a micro batch)
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": int(
            ppo.get("log_prob_micro_batch_size_per_gpu", micro)),
        # our reward
        "reward.custom_reward_function.path": REWARD_MODULE,
        "reward.custom_reward_function.name": "compute_score",
        "+reward.custom_reward_function.reward_kwargs.lam": float(reward.get("lam", 0.5)),
        "+reward.custom_reward_function.reward_kwargs.sigma": float(reward.get("sigma", 1.0)),
        **({"+reward.custom_reward_function.reward_kwargs.response_prefix": prefix}
           if (prefix := response_prefix(spec.model)) else {}),
        # trainer: placement, logging, checkpoints and resume
        "trainer.nnodes": spec.nodes,
        "trainer.n_gpus_per_node": spec.gpus_per_node,
        "trainer.logger": ["console", "wandb"] if spec.logger == "wandb" else ["console"],
        "trainer.project_name": trainer.get("project_name", "agentracer"),
        "trainer.experiment_name": trainer.get("experiment_name", "grpo"),
        "trainer.default_local_dir": str(Path(spec.output).resolve() / "checkpoints"),
        "trainer.validation_data_dir": str(Path(spec.output).resolve() / "validation"),
        "trainer.total_epochs": int(trainer.get("total_epochs", 1)),
        "trainer.save_freq": int(trainer.get("save_freq", 20)),
        "trainer.test_freq": int(trainer.get("test_freq", 10)),
        "trainer.val_before_train": bool(trainer.get("val_before_train", True)),
    }
    if trainer.get("total_training_steps"):
        out["trainer.total_training_steps"] = int(trainer["total_training_steps"])
    if spec.resume in ("auto", "disable"):
        out["trainer.resume_mode"] = spec.resume
    else:
        out["trainer.resume_mode"] = "resume_path"
        out["trainer.resume_from_path"] = str(Path(spec.resume).resolve())  # (verl joins a relative one to its own)
    if spec.ray_address:
        out["+ray_kwargs.ray_init.address"] = spec.ray_address
    ours = {key.lstrip("+"): key for key in out}
    for key, value in _section(config, "verl").items():
        out[ours.get(key.lstrip("+"), key)] = value  # (a key we set, spelt with or without its +, is ours)
    extra = [_as_update(item, ours) for item in spec.extra]
    if not any(ours.get(key.lstrip("+")) == RESUMED_KEY for key in _section(config, "verl")):
        # where verl resumes after every override (trainer.resume_mode=disable: afresh), not where --resume said
        out[RESUMED_KEY] = resumed_step_of([f"{k}={_value(v)}" for k, v in out.items()] + extra)
    return [f"{k}={_value(v)}" for k, v in out.items()] + extra


RESUMED_KEY = "+actor_rollout_ref.actor.policy_loss.resumed_step"


def _as_update(item: str, ours: dict[str, str]) -> str:
    """A command-line override of a key we set already: ``+key=value`` becomes ``key=value`` (hydra refuses to add a
    key twice; a plain override after ours sets it)."""
    key, sep, value = item.partition("=")
    if sep and key.startswith("+") and not key.startswith("++") and key.lstrip("+") in ours:
        return f"{key.lstrip('+')}={value}"
    return item


LOSS_MODE_KEY = "actor_rollout_ref.actor.policy_loss.loss_mode"


VERL_CLIP_KEYS = tuple(f"{_ACTOR}.{name}" for name in ("clip_ratio", "clip_ratio_low", "clip_ratio_high",
                                                        "clip_ratio_c"))
"""verl's clipping settings, which its own losses read and ours does not (it clips both sides by the schedule's eps,
with no dual clip): no key of ours means the same (``clip_ratio_high`` is no schedule's start)."""


def loss_mode_note(overrides: list[str]) -> str | None:
    """A warning when ``overrides`` (as ``verl_overrides`` gives them, the last one winning) set verl's policy loss to
    another than ours: the clipping schedule (``clip.*``) is then passed on and never used; or, with ours, set one of
    verl's clip ratios (``VERL_CLIP_KEYS``), which ours never reads."""
    modes = [o.split("=", 1)[1] for o in overrides if "=" in o and o.split("=", 1)[0].lstrip("+") == LOSS_MODE_KEY]
    if modes and modes[-1] != LOSS_NAME:
        return (f"{LOSS_MODE_KEY}={modes[-1]} replaces agentracer's policy loss ({LOSS_NAME}): the clipping schedule "
                "(clip.eps_max, clip.eps_min, clip.shape, clip.total_steps) is not used")
    ratios = [o for o in overrides if "=" in o and o.split("=", 1)[0].lstrip("+~") in VERL_CLIP_KEYS]
    if not ratios:
        return None
    return (f"{', '.join(ratios)}: agentracer's policy loss ({LOSS_NAME}) does not read verl's clip ratios (it clips "
            "both sides by the schedule's eps, with no dual clip); set clip.eps_max and clip.eps_min instead, or "
            f"replace the loss ({LOSS_MODE_KEY}=vanilla) to use them")


def command(config: dict[str, Any], spec: RunSpec, python: str | None = None) -> list[str]:
    """The full command: ``python -m verl.trainer.main_ppo`` with our overrides."""
    return [python or sys.executable, "-m", "verl.trainer.main_ppo", *verl_overrides(config, spec)]


def _visible_gpus() -> int:
    try:
        import torch
    except ImportError:
        raise InputError("training needs torch and verl: install the train environment "
                         "(bash envs/train/install.sh VENV)") from None
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


_OVERRIDE = re.compile(r"(\+{1,2}|~)?[A-Za-z_][\w.\-/@]*(=.*)?", re.DOTALL)


def check_overrides(extra: list[str]) -> None:
    """``InputError`` for an extra argument that is not a hydra override (``key=value``, ``+key=value``,
    ``++key=value``, ``~key``): a mistyped option (``--gpus 2``) would otherwise reach verl as an override."""
    for item in extra:
        if item.startswith("-"):
            raise InputError(f"{item!r} is not an option of `agentracer train run` (see --help); verl settings go "
                             "after the options as key=value")
        match = _OVERRIDE.fullmatch(item)
        if match is None or (match.group(2) is None and match.group(1) != "~"):
            raise InputError(f"{item!r} is not a verl override: write key=value (e.g. trainer.total_epochs=2), "
                             "+key=value to add a key, ~key to remove one")


def check_spec(spec: RunSpec) -> None:
    """The checks of the run's own arguments (made for ``--dry-run`` too): one clear ``InputError``."""
    if spec.logger not in LOGGERS:
        raise InputError(f"--logger must be one of {LOGGERS}, got {spec.logger!r}")
    if spec.nodes < 1 or spec.gpus_per_node < 1:
        raise InputError("--nodes and --gpus-per-node must be at least 1")
    if spec.resume not in ("auto", "disable") and not Path(spec.resume).name.startswith("global_step_"):
        raise InputError("--resume must be auto, disable, or a checkpoint folder named global_step_N",
                         where=str(spec.resume))
    check_overrides(list(spec.extra))


def _override(overrides: list[str], key: str) -> str:
    """The value ``key`` gets from ``overrides`` (the last one wins, as in hydra)."""
    return [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == key][-1]


def _parquet_rows(path: str) -> int | None:
    """The row count of a Parquet file (None without pyarrow); ``InputError`` when it is not one."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    try:
        return int(pq.read_metadata(path).num_rows)
    except Exception as exc:
        raise InputError(f"not a readable Parquet file ({type(exc).__name__}: {exc})", where=path) from None


def _check_row_counts(overrides: list[str]) -> None:
    """verl drops a last incomplete training batch and refuses an empty validation set: say so before launching."""
    train, val = _override(overrides, "data.train_files"), _override(overrides, "data.val_files")
    batch = int(_override(overrides, "data.train_batch_size"))
    train_rows, val_rows = _parquet_rows(train), _parquet_rows(val)
    together = Path(train).parent == Path(val).parent  # (a val set of its own, named apart, is the user's choice)
    if train_rows is not None and together and _prepared_by(train) != _prepared_by(val):
        raise InputError("train.parquet and val.parquet were written by different runs of `agentracer train prepare` "
                         "(one was stopped between its files?): a task could sit in both; prepare again",
                         where=str(Path(train).parent))
    if train_rows is not None and train_rows < batch:
        raise InputError(f"{train_rows} training rows, fewer than one batch (data.train_batch_size={batch}): verl "
                         f"drops an incomplete batch and would train on nothing; lower data.train_batch_size",
                         where=train)
    if val_rows == 0:
        raise InputError("the validation set has no rows, and verl needs at least one: prepare with --val-fraction > 0 "
                         "from labelled runs of two or more tasks", where=val)
    limit = int(_override(overrides, "data.max_prompt_length"))
    for path in (train, val):
        longest = _longest_prompt(path)
        if longest is not None and longest + TEMPLATE_ROOM > limit:
            raise InputError(f"prompts of up to {longest} tokens (as `train prepare` counted their messages), and the "
                             f"chat template adds some: over data.max_prompt_length={limit}, verl would drop those "
                             f"rows; prepare again with --max-prompt-tokens {limit - TEMPLATE_ROOM} or less, or raise "
                             f"data.max_prompt_length", where=path)


def _prepared_by(path: str) -> str | None:
    from .data import prepared_by

    return prepared_by(path)


TEMPLATE_ROOM = 64  # tokens a chat template adds around a prompt's messages (the paper config leaves 1384)


def _longest_prompt(path: str) -> int | None:
    """The most prompt tokens a prepared row records (``extra_info.prompt_tokens``), if pyarrow and the column are
    there."""
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        return None
    try:
        info = pq.read_table(path, columns=["extra_info"]).column("extra_info")
        counts = pc.struct_field(info, "prompt_tokens")
    except Exception:  # (rows made elsewhere, without the field: verl filters them itself)
        return None
    longest = pc.max(counts).as_py()
    return int(longest) if longest is not None else None


def preflight(spec: RunSpec, config: dict[str, Any], *, gpu_count: Any = _visible_gpus) -> None:
    """Every check that is cheap, before launching: one clear ``InputError`` for the first that fails."""
    check_inputs(spec, config)
    check_machine(spec, gpu_count=gpu_count)


def check_inputs(spec: RunSpec, config: dict[str, Any]) -> None:
    """The run's arguments and the files they name (made for ``--dry-run`` too): model, data, rows, checkpoint."""
    check_spec(spec)
    model = Path(spec.model)
    if not model.exists():
        raise InputError("base model path does not exist", where=str(model))
    if model.is_dir() and not (model / "config.json").is_file():
        raise InputError("base model folder has no config.json (a Hugging Face model folder is expected)",
                         where=str(model))
    if spec.data is not None and Path(spec.data).is_file():
        raise InputError("--data takes the folder `agentracer train prepare` wrote (with train.parquet and "
                         "val.parquet), not a file in it", where=str(spec.data))
    overrides = verl_overrides(config, spec)
    for key in ("data.train_files", "data.val_files"):
        path = _override(overrides, key)
        if not Path(path).is_file():
            raise InputError(f"{key.split('.')[-1].replace('_', ' ')} not found (run `agentracer train prepare`)",
                             where=path)
    _check_row_counts(overrides)
    check_with_verl(overrides)
    if spec.resume not in ("auto", "disable"):
        resume = Path(spec.resume)
        if not resume.is_dir() or not resume.name.startswith("global_step_"):
            raise InputError("--resume must be an existing checkpoint folder named global_step_N", where=str(resume))


def check_with_verl(overrides: list[str]) -> bool:
    """Compose verl's own config with ``overrides`` and run the check ``verl.trainer.main_ppo`` makes before anything
    starts (a verl key set by hand can break what ours set: a micro batch left unset, a mini-batch above the batch):
    ``InputError`` with verl's words. False, checking nothing, where verl is not installed or does not import (a dry
    run elsewhere), or inside a running hydra app."""
    if importlib.util.find_spec("verl") is None:
        return False
    import warnings

    try:  # (verl that does not import here, a login node without CUDA's libraries: the launch itself will say)
        import verl
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config
    except Exception:
        return False
    if GlobalHydra.instance().is_initialized():  # (called inside a hydra app: its config cannot be composed here)
        return False

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    try:
        with warnings.catch_warnings():  # (verl warns that GRPO has no critic, as it should not)
            warnings.simplefilter("ignore")
            with initialize_config_dir(config_dir=str(config_dir), version_base=None):
                composed = compose(config_name="ppo_trainer", overrides=overrides)
            with contextlib.redirect_stdout(io.StringIO()):  # (its notices: the dry run's output is the command)
                validate_config(composed, use_reference_policy=need_reference_policy(composed),
                                use_critic=need_critic(composed))
    except (AssertionError, ValueError, TypeError, KeyError, HydraException, OmegaConfBaseException) as exc:
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"verl refuses this configuration: {said}") from None
    return True


def check_machine(spec: RunSpec, *, gpu_count: Any = _visible_gpus) -> None:
    """What the launch needs of this machine: a Ray cluster for several nodes, verl, enough GPUs."""
    if spec.nodes > 1 and not (spec.ray_address or os.environ.get("RAY_ADDRESS")):
        raise InputError("--nodes > 1 needs a running Ray cluster: pass --ray-address (or set RAY_ADDRESS)")
    if importlib.util.find_spec("verl") is None:
        raise InputError("verl is not installed in this environment (bash envs/train/install.sh VENV)")
    if spec.ray_address is None and spec.nodes == 1:
        found = gpu_count()
        if found == 0:
            raise InputError("no GPU found: GRPO training with verl needs CUDA GPUs (this machine has none)")
        if found < spec.gpus_per_node:
            raise InputError(f"--gpus-per-node {spec.gpus_per_node} but only {found} GPU(s) are visible")
