"""``agentracer eval``: score attribution methods on labelled trajectories (Who&When, TracerTraj)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..exclusive import sole_writer
from ..tracer.prompt import MIN_PROMPT_TOKENS
from ._io import TIMEOUT_OPTION, chosen_method, holds_trajectories, model_options

RESULT_FIELDS = frozenset({"id", "method", "with_gt"})  # what every row of a results file names


@click.group("eval")
def eval_group() -> None:
    """Evaluate failure-attribution methods on labelled trajectories."""


def _parsed(line: str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _foreign_line(text: str) -> int | None:
    """The number of the first line of ``text`` that is not a results row; a torn last line (what an
    interrupted run leaves, repaired on resume) is not one."""
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = _parsed(line)
        if row is None and number == len(lines):
            continue
        if not (isinstance(row, dict) and RESULT_FIELDS <= row.keys()):
            return number
    return None


def check_results_file(path: str) -> None:
    """Refuse to append results to an existing file holding anything else (a trajectory store, say)."""
    file = Path(path)
    number = _foreign_line(file.read_text(encoding="utf-8", errors="replace")) if file.is_file() else None
    if number is not None:
        raise InputError(f"not a results file (line {number} is not a row `agentracer eval` wrote); write the "
                         "results to another file", where=path)


def check_same_model(path: str, method: str, model: str | None, rows: list[dict] | None = None) -> None:
    """Refuse to add ``model``'s results to a file holding another model's for ``method``; rows that name no
    model (a model-free method's) are not compared. ``rows``: the file's, when read already."""
    from ..tracer.evaluation import read_rows
    from ._same_model import other_models

    rows = read_rows(path) if rows is None else rows
    others = other_models([row.get("model") for row in rows if row.get("method") == method], method, model)
    if others:
        raise InputError(f"{path} holds results of model {others[0]!r}; write these results to another file")


def check_same_budget(path: str, method: str, budget: int | None, rows: list[dict]) -> None:
    """Refuse to add results scored with prompts of another size than earlier rows of ``method`` were (a trajectory
    longer than the budget is cut to fit: the two would not be one experiment); rows of an earlier version, which
    name no budget, are not compared (``rows``: the file's)."""
    earlier = sorted({row["prompt_budget"] for row in rows
                      if row.get("method") == method and row.get("prompt_budget") not in (None, budget)})
    if earlier and budget is not None:
        raise InputError(f"{path} holds results of {method!r} scored with prompts of up to {earlier[0]} tokens, and "
                         f"this run's prompts are up to {budget} (--max-prompt-tokens, or the server's context window): "
                         f"write these results to another file, or give --max-prompt-tokens {earlier[0]}")


def check_same_setting(path: str, method: str, setting: dict[str, Any], rows: list[dict]) -> None:
    """Refuse to add results whose answers depend on another seed, other references or another script than earlier
    rows of ``method`` did (``setting``: ``answers_depend_on``'s); rows of an earlier version, which name none, are
    not compared (``rows``: the file's)."""
    for row in rows:
        earlier = row.get("setting")
        if row.get("method") != method or not isinstance(earlier, dict):
            continue
        changed = sorted(key for key in earlier.keys() | setting.keys() if earlier.get(key) != setting.get(key))
        if changed:
            key = changed[0]
            how = {"seed": f"--seed {earlier.get(key)}", "references": "the same --references",
                   "script": "the same scripted answers"}.get(key, f"the same {key}")
            raise InputError(f"{path} holds results of {method!r} with another {key} ({earlier.get(key)!r}, this run's "
                             f"is {setting.get(key)!r}): write these results to another file, or give {how}")


def _load_items(data: str, limit: int | None) -> list:
    """The items to evaluate under ``data`` (the first ``limit``); a store or nothing to evaluate is an error."""
    from ..tracer.evaluation import iter_items

    path = Path(data)
    if holds_trajectories(path):
        raise InputError("this is an agentracer trajectory store, not Who&When or TracerTraj data; write its "
                         f"labelled runs as TracerTraj rows first: agentracer export tracertraj {data} -o rows.jsonl",
                         where=data)
    items = list(iter_items(data))
    if not items:
        raise InputError("no Who&When files (*.json) found under it" if path.is_dir() else "no TracerTraj rows in it",
                         where=data)
    return items[:limit] if limit else items


def _load_references(path: str | None) -> list:
    """The labelled trajectories of ``path``, read like any other input (a store annotate wrote, Who&When, TracerTraj);
    a bad record, or none with a label, is an error (the method fell back to step counts without a word)."""
    if not path:
        return []
    from ._io import read_trajectories

    if Path(path).is_dir():
        from ..tracer.evaluation import iter_items

        items = list(iter_items(path))
        bad = next((item.error for item in items if item.error is not None), None)
        if bad is not None:
            raise InputError(f"--references: {bad}")
        trajectories = [item.trajectory for item in items]
    else:
        trajectories = list(read_trajectories(path))
    labelled = [t for t in trajectories if t is not None and t.training_label() is not None]
    if not labelled:
        raise InputError(f"--references holds no labelled trajectory ({len(trajectories)} read)", where=path)
    return labelled


@eval_group.command("whowhen")
@click.option("--data", "data", required=True, type=click.Path(exists=True),
              help="a Who&When folder or .json file, or a TracerTraj .parquet/.jsonl file")
@click.option("--method", "method", default=None,
              help="agentracer, all-at-once, step-by-step, binary-search, random, majority, lite "
                   "(default: lite without --model, agentracer with one)")
@click.option("--model", "model", default=None, help="openai:URL@MODEL, hf:PATH, vllm:PATH or scripted:...")
@click.option("--with-gt/--without-gt", "with_gt", default=True, show_default=True,
              help="give the tracer the task's ground-truth answer G")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="trajectories evaluated at once")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="results.jsonl (appended to; ids already there are skipped)")
@click.option("--limit", type=click.IntRange(1), default=None, help="evaluate only the first N items")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of random and binary-search")
@click.option("--max-prompt-tokens", type=click.IntRange(MIN_PROMPT_TOKENS), default=None,
              help="prompt token budget (default: the model's context window minus 4096; an openai: model's window "
                   "is what its server lists (vLLM's max_model_len), else 32768 tokens)")
@click.option("--references", type=click.Path(exists=True), default=None,
              help="labelled trajectories whose labels the majority method counts (a store annotate wrote, "
                   "Who&When, TracerTraj)")
@click.option("--cache/--no-cache", default=True, show_default=True, help="reuse cached model answers")
@click.option("--retry-errors", is_flag=True,
              help="re-run items whose earlier row has an error, asking the model again (not its cache)")
@TIMEOUT_OPTION
@click.option("--quiet", is_flag=True, help="print only the table")
@click.pass_context
def whowhen(ctx: click.Context, data: str, method: str | None, model: str | None, with_gt: bool,
            concurrency: int, output: str, limit: int | None, seed: int, max_prompt_tokens: int | None,
            references: str | None, cache: bool, retry_errors: bool, timeout: float | None, quiet: bool) -> None:
    """Attribute every trajectory under DATA and print agent/step accuracy per subset.

    Rows stream to OUTPUT as they finish; run again to resume. Exits 2 when an item is bad input (left out of the
    score: its label cannot be read; the others are evaluated and kept), 1 when nothing could be evaluated for another reason (the model failed); answers that
    cannot be read are a result (they count as wrong).
    """
    from ..models import load_model
    from ..tracer import MODEL_FREE, get_method

    check_results_file(output)
    items = _load_items(data, limit)
    readable = [item for item in items if item.trajectory is not None and item.trajectory.steps]
    if readable and all(item.trajectory.training_label() is None for item in readable if item.trajectory):
        raise InputError(f"no item has a label to score against ({len(readable)} runs; a tracer's own verdict is "
                         "never taken for the truth: give runs with a human, counterfactual or injected label)",
                         where=data)
    name = chosen_method(method, model)
    options: dict = {}
    if name in {"random", "binary-search"}:
        options["seed"] = seed
    if name == "majority":
        options["references"] = _load_references(references)
    if name not in MODEL_FREE and max_prompt_tokens:
        options["max_prompt_tokens"] = max_prompt_tokens
    chat_model = None
    if model:
        chat_model = load_model(model, **model_options(model, concurrency, cache, timeout=timeout, fresh=retry_errors))
    attributor = get_method(name, chat_model, **options)

    from ..tracer.evaluation import answers_depend_on

    setting = answers_depend_on(attributor, model)
    with sole_writer(output, "agentracer eval"):
        _evaluate_whowhen(output, data, items, name, chat_model, attributor, with_gt=with_gt, concurrency=concurrency,
                          retry_errors=retry_errors, quiet=quiet, setting=setting)


def _evaluate_whowhen(output: str, data: str, items: list, name: str, chat_model: Any, attributor: Any, *,
                      with_gt: bool, concurrency: int, retry_errors: bool, quiet: bool,
                      setting: dict[str, Any]) -> None:
    from ..evaluate.attribution import format_table, summarize
    from ..team import run_sync
    from ..tracer.evaluation import (
        evaluate_items,
        one_row_per_item,
        prepare_output,
        prompt_budget_of,
        read_rows,
    )

    model_name = getattr(chat_model, "name", None) or getattr(attributor, "weights_id", None)  # (lite: its weights)
    earlier = read_rows(output)  # (both checks read the same rows)
    check_same_model(output, name, model_name, earlier)
    check_same_budget(output, name, prompt_budget_of(attributor), earlier)
    check_same_setting(output, name, setting, earlier)
    stale: list[str] = []
    done = prepare_output(output, with_gt=with_gt, method=name, retry_errors=retry_errors, items=items, stale=stale)
    todo = [item for item in items if item.id not in done]
    say = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    again = (f" ({len(stale)} of them again: what the tracer is shown of them changed since {output} scored them "
             f"(their run, ground truth or label, or how this version reads them), e.g. {stale[0]!r})" if stale else "")
    budget = prompt_budget_of(attributor)  # (an openai: model's window is its server's, if listed)
    say(f"{name}{f' with {chat_model.name}' if chat_model else ''}"
        f"{f' (prompts up to {budget} tokens)' if chat_model and budget else ''}: {len(todo)} to evaluate{again}, "
        f"{len(items) - len(todo)} already in {output}")

    progress = {"n": 0}

    def on_row(row: dict) -> None:
        progress["n"] += 1
        if not quiet and (row["error"] or progress["n"] % 10 == 0 or progress["n"] == len(todo)):
            status = f"error ({row['error_kind']}): {row['error']}" if row["error"] else "ok"
            click.echo(f"  [{progress['n']}/{len(todo)}] {row['id']}: {status[:200]}", err=True)

    if todo:
        run_sync(evaluate_items(todo, attributor, output, with_gt=with_gt, method_name=name,
                                model_name=model_name, concurrency=concurrency, on_row=on_row, setting=setting))
    wanted = {item.id for item in items}  # (both settings' rows of these items: the table shows the two side by side)
    rows = one_row_per_item([r for r in read_rows(output) if r["id"] in wanted])
    title = f"Who&When attribution: method {name}" + (f", model {chat_model.name}" if chat_model else "")
    title += f" ({Path(data).name})"
    click.echo(format_table(summarize(rows), title=title, paper_layout=not quiet))
    from ..formats.whowhen import SUBSETS

    if name == "lite" and not quiet and any(item.subset in SUBSETS for item in items):
        click.echo("note: the shipped lite weights were trained on the Who&When development split (data/whowhen), "
                   "so on those files this is training accuracy; its cross-validated accuracy is in the README "
                   "and in `python benchmarks/bench_lite.py`.", err=True)
    stats = getattr(chat_model, "stats", None)
    usage = getattr(chat_model, "usage", None)
    if stats and not quiet:
        tokens = f"; tokens {usage.prompt_tokens} in / {usage.completion_tokens} out" if usage is not None else ""
        click.echo(f"model: {stats['requests']} requests, {stats['retries']} retries, {stats['failures']} failed, "
                   f"{stats['cache_hits']} from cache{tokens}", err=True)
    mine = [r for r in rows if r.get("with_gt") == with_gt]
    unparsable = sum(1 for r in mine if r.get("error_kind") == "answer")  # (answered, wrongly: a result, 0 %)
    bad = [r for r in mine if r.get("error_kind") == "input"]
    failed = sum(1 for r in mine if r.get("error") is not None) - len(bad) - unparsable
    # what was answered, readable or not: unreadable answers alone are a result, but not beside a failing model
    answered = [r for r in mine if r.get("error") is None or (r.get("error_kind") == "answer" and not failed)]
    if answered and failed and not quiet:
        click.echo(f"note: {failed} item(s) have an error row and count as wrong; rerun with --retry-errors to redo "
                   "them", err=True)
    if unparsable and unparsable == len(answered) and not failed and not quiet:  # (no answer could be read)
        click.echo(f"note: none of the {unparsable} answers could be read (the `unparsed` column): check the model's "
                   "output format, <answer>agent|step</answer> after its reasoning", err=True)
    if answered and bad:  # (bad input is exit 2, as everywhere: the other items are evaluated and kept)
        click.echo(f"error: {len(bad)} of {len(items)} items are bad input, with no label to score against, and are "
                   f"left out of the score (their error fields in {output}), e.g. {bad[0]['id']}: "
                   f"{str(bad[0]['error'])[:200]}", err=True)
        sys.stdout.flush()
        sys.exit(2)
    if not answered:
        bad_input = {r.get("error_kind") for r in rows if r.get("with_gt") == with_gt} <= {"input"}
        refused = any(re.search(r"refused the request: HTTP (400|413|422)|tokens exceeds the", str(r.get("error")))
                      for r in rows if r.get("with_gt") == with_gt)
        why = ("every item is bad input: a run with no step, a label on no step…" if bad_input else
               "the model refused the prompts (over its window?): rerun with a smaller --max-prompt-tokens and "
               "--retry-errors" if refused else
               "once the model answers again, rerun with --retry-errors to redo them")
        click.echo(f"error: nothing could be evaluated ({len(items)} items; see the error fields in {output}; "
                   f"{why})", err=True)
        sys.stdout.flush()
        sys.exit(2 if bad_input else 1)  # (not ctx.exit: with standalone_mode=False click returns the code)
