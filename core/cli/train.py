"""``agentracer train``: prepare verl RL data from labelled trajectories, and launch GRPO training on verl."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import click

from ..errors import InputError


@click.group("train")
def train_group() -> None:
    """Train a tracer model with GRPO on verl (data preparation runs anywhere; training needs GPUs)."""


def _load_tokenizer(path: str | None):  # noqa: ANN202 - optional dependency
    if path is None:
        return None
    file = Path(path)
    if file.is_dir():
        file = file / "tokenizer.json"
    if not file.is_file():
        raise InputError("no tokenizer.json here", where=str(path))
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise InputError("--tokenizer needs the `tokenizers` package (pip install tokenizers)") from None
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # the tokenizers library raises a bare Exception for a file it cannot read
        raise InputError(f"not a tokenizer.json the tokenizers library reads ({exc})", where=str(file)) from None


@train_group.command("prepare")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="Folder for train.parquet, val.parquet and report.json.")
@click.option("--with-gt/--without-gt", "with_gt", default=True, show_default=True,
              help="Show the task's correct answer (ground truth G) in the prompt.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Share of tasks (by question_ID) that go to val.parquet.")
@click.option("--max-prompt-tokens", type=int, default=15000, show_default=True,
              help="Token budget of a prompt; longer trajectories are shortened, then dropped if still over.")
@click.option("--tokenizer", type=click.Path(), default=None,
              help="A tokenizer.json (or a model folder with one) to count tokens; else a generous estimate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Changes which tasks land in val.")
@click.option("--skip-invalid", is_flag=True, help="Leave out unreadable rows and labels outside their "
              "trajectory (listed in report.json) instead of stopping.")
@click.option("--exclude-flag", "exclude_flags", multiple=True, metavar="FLAG",
              help="Leave out labels carrying this flag (repeatable): answer_in_correction (the repair had to "
                   "state the answer), earlier_steps_untried (an earlier step could not be tried).")
def prepare_command(dataset: Path, output: Path, with_gt: bool, val_fraction: float, max_prompt_tokens: int,
                    tokenizer: str | None, seed: int, skip_invalid: bool, exclude_flags: tuple[str, ...]) -> None:
    """Turn DATASET (a Who&When folder, a TracerTraj Parquet/JSONL, or a trajectory store) into verl RL data."""
    from ..tracer.prompt import MIN_PROMPT_TOKENS
    from ..trainer.data import prepare

    if max_prompt_tokens < MIN_PROMPT_TOKENS:  # (the prompt's own parts take about 300: every row was dropped)
        raise InputError(f"--max-prompt-tokens must be at least {MIN_PROMPT_TOKENS}, got {max_prompt_tokens}")
    report = prepare(dataset, output, with_ground_truth=with_gt, val_fraction=val_fraction,
                     max_prompt_tokens=max_prompt_tokens, tokenizer=_load_tokenizer(tokenizer), seed=seed,
                     skip_invalid=skip_invalid, exclude_flags=exclude_flags)
    click.echo(report.summary())
    click.echo(f"wrote {output / 'train.parquet'}, {output / 'val.parquet'} and {output / 'report.json'}")
    if report.val == 0 or report.train == 0:
        empty = "val.parquet" if report.val == 0 else "train.parquet"
        click.echo(f"warning: {empty} has no rows, and `train run` needs rows in both: prepare labelled runs of two "
                   "or more tasks (with --val-fraction above 0)", err=True)


@train_group.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML settings (default: the paper's, trainer/configs/grpo_paper.yaml).")
@click.option("--model", required=True, type=click.Path(path_type=Path), help="Base model folder (Hugging Face).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Checkpoints and validation dumps go here; running again resumes from its latest checkpoint.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Folder written by `agentracer train prepare` (else the config's data.dir).")
@click.option("--logger", type=click.Choice(["console", "wandb"]), default="console", show_default=True)
@click.option("--nodes", type=int, default=1, show_default=True)
@click.option("--gpus-per-node", type=int, default=1, show_default=True)
@click.option("--ray-address", default=None, help="An existing Ray cluster (else a local one is started).")
@click.option("--resume", default="auto", show_default=True,
              help="auto (latest checkpoint under --output), disable, or a global_step_N folder.")
@click.option("--dry-run", is_flag=True, help="Check the arguments, model and data, print the verl command and exit "
              "(this machine's GPUs and verl are not checked).")
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def run_command(config_path: Path | None, model: Path, output: Path, data: Path | None, logger: str, nodes: int,
                gpus_per_node: int, ray_address: str | None, resume: str, dry_run: bool,
                overrides: tuple[str, ...]) -> None:
    """Launch verl's GRPO (main_ppo) with our reward and scheduled-clip loss; extra KEY=VALUE set a key of the
    config (reward.lam=0.3, clip.eps_max=0.3) or go to verl (actor_rollout_ref.rollout.n=4)."""
    from ..trainer.launch import (
        RunSpec,
        apply_overrides,
        check_inputs,
        check_machine,
        command,
        load_config,
        loss_mode_note,
    )

    config, extra = apply_overrides(load_config(config_path), list(overrides))
    spec = RunSpec(model=model, output=output, data=data, logger=logger, nodes=nodes, gpus_per_node=gpus_per_node,
                   ray_address=ray_address, resume=resume, extra=extra)
    check_inputs(spec, config)
    argv = command(config, spec)
    note = loss_mode_note(argv[3:])
    if note is not None:
        click.echo(f"warning: {note}", err=True)
    if dry_run:
        click.echo(shlex.join(argv))  # (a shell reads it back as these arguments: paste it, it runs)
        return
    check_machine(spec)
    output.mkdir(parents=True, exist_ok=True)
    click.echo(shlex.join(argv), err=True)
    env = dict(os.environ)
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    sys.exit(subprocess.call(argv, env=env))
