"""Labelled trajectories → verl's RL Parquet (``train.parquet``, ``val.parquet``).

Each row: ``data_source``, ``prompt`` (the tracer's chat messages from
``agentracer.tracer.prompt.build_messages``, so the trained model answers exactly the prompt the tracer
sends), ``ability``, ``reward_model`` ``{style: rule, ground_truth: {agent, step, agents}}`` and
``extra_info`` (``id``, ``question_ID``, ``length``, ...). The split is by task (``question_ID``, else the
task text, else the trajectory id) through a hash, so one task never sits in both files and a task keeps
its split when the dataset grows. No torch here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import left_by_ended_writer
from ..errors import InputError
from ..fingerprint import stable_json, task_key
from ..schema import Trajectory, Verdict
from ..tracer.prompt import agent_list, build_messages, build_user_prompt, counter_from
from .reward import name_key

ABILITY = "failure_attribution"
SPLIT_SALT = "agentracer-split-v1"
DEFAULT_MAX_PROMPT_TOKENS = 15000
#: Tokens kept free below the budget when asking the prompt builder to fit: its fitting measures the parts
#: of the prompt one by one, so the whole can come out a few tokens over what it was asked for.
BUILDER_MARGIN = 64


def builder_budget(max_prompt_tokens: int | None) -> int | None:
    """The ``max_tokens`` given to ``build_messages`` for a prompt that must fit ``max_prompt_tokens``."""
    if max_prompt_tokens is None:
        return None
    return max(128, max_prompt_tokens - BUILDER_MARGIN)


@dataclass
class Dropped:
    """A row left out, and why."""

    id: str
    reason: str


@dataclass
class PrepareReport:
    """What ``prepare`` read, kept and left out."""

    read: int = 0
    train: int = 0
    val: int = 0
    train_tasks: int = 0
    val_tasks: int = 0
    truncated: int = 0
    grouped_ids: int = 0  # task ids folded into another's: their runs share its task text
    flagged: Counter[str] = field(default_factory=Counter)  # flags of the labels kept (annotation's caveats)
    dropped: list[Dropped] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    def reasons(self) -> Counter[str]:
        return Counter(d.reason for d in self.dropped)

    def summary(self) -> str:
        lines = [f"read {self.read} trajectories; train {self.train} rows ({self.train_tasks} tasks), "
                 f"val {self.val} rows ({self.val_tasks} tasks); {self.truncated} prompts shortened to fit"]
        for reason, count in sorted(self.reasons().items()):
            lines.append(f"dropped {count}: {reason}")
        if self.invalid:
            lines.append(f"skipped {len(self.invalid)} unreadable rows (--skip-invalid)")
        if self.grouped_ids:
            lines.append(f"{self.grouped_ids} task ids named runs of a task another id names (the same task text): "
                         "kept on one side of the split with it")
        if self.flagged:
            shown = ", ".join(f"{flag} {count}" for flag, count in sorted(self.flagged.items()))
            lines.append(f"labels kept with a flag: {shown} (--exclude-flag FLAG leaves them out)")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"read": self.read, "train": self.train, "val": self.val, "train_tasks": self.train_tasks,
                "val_tasks": self.val_tasks, "truncated": self.truncated, "grouped_ids": self.grouped_ids,
                "flagged": dict(self.flagged),
                "dropped": [d.__dict__ for d in self.dropped], "dropped_by_reason": dict(self.reasons()),
                "invalid": self.invalid}


#: The caveats annotation puts on its labels (``--exclude-flag`` leaves such labels out).
ANNOTATION_FLAGS = ("answer_in_correction", "earlier_steps_untried")


def _check_flags_known(excluded: Sequence[str], seen: set[str]) -> None:
    """An ``--exclude-flag`` that is neither an annotation flag nor on any label read is a misspelling: refused (it
    would leave every label in without a word)."""
    import difflib

    known = {*ANNOTATION_FLAGS, *seen}
    for flag in excluded:
        if flag not in known:
            near = difflib.get_close_matches(flag, sorted(known), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (flags: {', '.join(sorted(known))})"
            raise InputError(f"--exclude-flag {flag!r} is no flag of annotation's nor of any label read{hint}")


def iter_dataset(path: str | Path) -> Iterator[tuple[str, Trajectory | InputError]]:
    """(where, trajectory or its error) from a Who&When folder/file, a TracerTraj Parquet/JSONL, or a store."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", where=str(path))
    if path.is_dir() and (path / "ledger.jsonl").exists():  # an annotate output folder: its labelled runs
        if not (path / "labelled.jsonl").exists():
            raise InputError("an annotate output folder without labelled.jsonl yet (annotate writes it when its run "
                             "ends: run it again to finish)", where=str(path))
        path = path / "labelled.jsonl"
    elif path.suffix.lower() == ".json" and _holds_steps(path):  # trajectories as show and locate read them
        from ..formats.imported import redacted_records
        from ..store import json_file_records

        # (a file edited by hand: redacted and mended, as a store is)
        yield from redacted_records(json_file_records(path, json.loads(path.read_text(encoding="utf-8-sig"))))
        return
    if path.is_dir() or path.suffix.lower() == ".json":
        from ..formats.whowhen import iter_whowhen_dir

        yield from iter_whowhen_dir(path)
        return
    from ..cli._io import holds_tracertraj
    from ..formats.tracertraj import is_parquet, iter_tracertraj

    if is_parquet(path) or holds_tracertraj(path):
        yield from iter_tracertraj(path)
        return
    from ..formats.imported import redacted
    from ..store import open_store

    errors: list[InputError] = []
    for where, trajectory in open_store(path).iter_located(errors=errors):
        try:  # (a store edited by hand: its keys stay out of the training rows, as an import's do)
            yield trajectory.id, redacted(trajectory, where=where)
        except InputError as exc:
            yield where, exc
    for error in errors:
        yield str(error), error


def _holds_steps(path: Path) -> bool:
    """Whether a ``.json`` file holds our trajectories (``steps``: one, or a list) rather than a Who&When record
    (``history``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return False
    first = data[0] if isinstance(data, list) and data else data
    return isinstance(first, dict) and "steps" in first and "history" not in first


def tasks_by_text(trajectories: list[Trajectory], ids: list[str]) -> tuple[list[str], int]:
    """``ids`` (each trajectory's task) with the ids of runs that share a task text and ground truth made one (the
    smallest id of the group), and how many ids were folded into another: a file that named each row by its run
    (TracerTraj exports of older versions) still keeps a task on one side of the split. Ids whose texts or ground
    truths differ are left as they are."""
    parent = {task: task for task in ids}

    def root(task: str) -> str:
        while parent[task] != task:
            parent[task] = parent[parent[task]]
            task = parent[task]
        return task

    first_of_text: dict[str, str] = {}
    for trajectory, task in zip(trajectories, ids, strict=True):
        if not trajectory.task:
            continue
        asked = stable_json([trajectory.task, trajectory.ground_truth])  # (a templated text with other answers:
        earlier = first_of_text.setdefault(asked, task)                    # other tasks)
        a, b = root(earlier), root(task)
        if a != b:
            parent[max(a, b)] = min(a, b)
    grouped = [root(task) for task in ids]
    return grouped, len(set(ids)) - len(set(grouped))


def task_id(trajectory: Trajectory) -> str:
    """The task a trajectory attempts (``agentracer.fingerprint.task_key``; a run with no task is ``id:`` and its id),
    as text: the unit of the split."""
    key = task_key(trajectory)
    return str(key) if key is not None else "id:" + trajectory.id


def split_position(task: str, seed: int = 0) -> float:
    """A uniform number in [0, 1) fixed by the task id (and seed): below ``val_fraction`` means val."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{seed}:{task}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(tasks: list[str], val_fraction: float, seed: int = 0) -> dict[str, str]:
    """``task → "train"|"val"``; at least one task goes to val when there are two or more and the fraction > 0."""
    unique = sorted(set(tasks))
    if len(unique) == 1:  # one task: it is for training, whatever its hash
        return {unique[0]: "train"}
    split = {t: "val" if split_position(t, seed) < val_fraction else "train" for t in unique}
    if val_fraction > 0 and len(unique) >= 2:
        if "val" not in split.values():
            split[min(unique, key=lambda t: split_position(t, seed))] = "val"
        if "train" not in split.values():
            split[max(unique, key=lambda t: split_position(t, seed))] = "train"
    return split


def pick_label(trajectory: Trajectory) -> Verdict | None:
    """The training label: ``Trajectory.training_label`` (human, then counterfactual, then injection)."""
    return trajectory.training_label()


def ground_truth(trajectory: Trajectory, label: Verdict) -> dict[str, Any]:
    """``{agent, step, agents}`` for the reward; ``agents`` is a JSON list (one Parquet type for every row)."""
    return {"agent": label.agent, "step": int(label.step), "agents": json.dumps(agent_list(trajectory))}


def make_row(
    trajectory: Trajectory, label: Verdict, prompt: list[dict], *, split: str, index: int, task: str,
    with_ground_truth: bool, prompt_tokens: int, truncated: bool, prompt_budget: int | None,
) -> dict[str, Any]:
    source = trajectory.metadata.get("source_format") or "store"
    return {
        "data_source": f"agentracer/{source}",
        "prompt": prompt,
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": ground_truth(trajectory, label)},
        "extra_info": {
            "id": trajectory.id,
            "question_ID": task,
            "length": len(trajectory.steps),
            "index": index,
            "split": split,
            "subset": str(trajectory.metadata.get("subset") or ""),
            "label_source": label.source,
            "label_flags": list(label.flags),
            "with_ground_truth": with_ground_truth,
            "prompt_tokens": prompt_tokens,
            "prompt_budget": -1 if prompt_budget is None else prompt_budget,
            "truncated": truncated,
        },
    }


def _check(trajectory: Trajectory, label: Verdict | None) -> str | None:
    """Why a trajectory cannot be a training row, or ``None``."""
    if not trajectory.steps:
        return "no steps"
    if label is None:
        return "no label (human, counterfactual or injection)"
    if not 0 <= label.step < len(trajectory.steps):
        return f"label step {label.step} outside the trajectory (0..{len(trajectory.steps) - 1})"
    if name_key(label.agent) not in {name_key(name) for name in agent_list(trajectory)}:  # (as the reward compares)
        return f"label agent {label.agent!r} is not an agent of the trajectory"
    return None


OUTPUT_FILES = ("train.parquet", "val.parquet", "report.json")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_paths(dataset: Path, out_dir: Path) -> None:
    """Refuse an output folder that would write over ``dataset`` or into the folder it reads."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"the output must be a folder (it gets {', '.join(OUTPUT_FILES)})", where=str(out_dir))
    if any(_same_file(dataset, out_dir / name) for name in OUTPUT_FILES):
        raise InputError("the output would write over the dataset itself: choose another output folder",
                         where=str(dataset))
    taken = [name for name in OUTPUT_FILES if (out_dir / name).is_dir()]
    if taken:
        raise InputError(f"{taken[0]} is a folder there: the output needs that name for a file", where=str(out_dir))
    if dataset.is_dir() and (_same_file(dataset, out_dir) or dataset.resolve() in out_dir.resolve().parents):
        raise InputError("the output folder must be outside the dataset folder (a later prepare would read what "
                         "this one writes)", where=str(out_dir))


def prepare(
    dataset: str | Path,
    out_dir: str | Path,
    *,
    with_ground_truth: bool = True,
    val_fraction: float = 0.1,
    max_prompt_tokens: int | None = DEFAULT_MAX_PROMPT_TOKENS,
    tokenizer: Any = None,
    seed: int = 0,
    skip_invalid: bool = False,
    exclude_flags: Sequence[str] = (),
) -> PrepareReport:
    """Write ``train.parquet``, ``val.parquet`` and ``report.json`` under ``out_dir``.

    Every input is read and checked before anything is rendered or written: an unreadable row or a label
    outside its trajectory is an ``InputError`` naming the rows (unless ``skip_invalid``), and so is a
    dataset with no usable row. Rows whose labelled step the token budget would leave out of the prompt,
    or whose prompt still exceeds the budget, are dropped and reported, as are labels carrying one of
    ``exclude_flags`` (annotation's caveats: ``answer_in_correction``, ``earlier_steps_untried``).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    check_paths(Path(dataset), Path(out_dir))
    report = PrepareReport()
    usable: list[tuple[Trajectory, Verdict]] = []
    invalid: list[str] = []
    seen_flags: set[str] = set()
    seen_ids: set[str] = set()
    for where, item in iter_dataset(dataset):
        if isinstance(item, InputError):
            invalid.append(str(item))
            continue
        report.read += 1
        if item.id in seen_ids:  # (one run twice, a file joined by hand: its row would count twice in training)
            report.dropped.append(Dropped(item.id, "the same run again (its id repeats an earlier one)"))
            continue
        seen_ids.add(item.id)
        label = pick_label(item)
        problem = _check(item, label)
        if problem is not None:
            if problem.startswith("label step"):
                invalid.append(f"{where}: {problem}")
            else:
                report.dropped.append(Dropped(item.id, problem))
            continue
        assert label is not None
        seen_flags.update(label.flags)
        excluded = sorted(set(label.flags) & set(exclude_flags))
        if excluded:
            report.dropped.append(Dropped(item.id, f"label flagged {', '.join(excluded)} (--exclude-flag)"))
            continue
        usable.append((item, label))
    _check_flags_known(exclude_flags, seen_flags)
    if invalid and not skip_invalid:
        shown = "; ".join(invalid[:3]) + (f"; and {len(invalid) - 3} more" if len(invalid) > 3 else "")
        raise InputError(f"{len(invalid)} bad rows in {dataset} (fix them or pass --skip-invalid): {shown}")
    report.invalid = invalid
    if not usable:
        reasons = ", ".join(f"{n} {r}" for r, n in report.reasons().items()) or "nothing readable"
        raise InputError(f"no usable rows in {dataset} ({report.read} trajectories read: {reasons})")

    count = counter_from(tokenizer)
    budget = builder_budget(max_prompt_tokens)
    tasks, report.grouped_ids = tasks_by_text([t for t, _ in usable], [task_id(t) for t, _ in usable])
    splits = assign_splits(tasks, val_fraction, seed)
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for (trajectory, label), task in zip(usable, tasks, strict=True):
        _, rendered = build_user_prompt(trajectory, with_ground_truth=with_ground_truth, max_tokens=budget,
                                        tokenizer=tokenizer)
        if label.step in rendered.omitted_steps:
            report.dropped.append(Dropped(trajectory.id, "labelled step left out of the prompt by the token budget"))
            continue
        prompt = build_messages(trajectory, with_ground_truth=with_ground_truth, max_tokens=budget,
                                tokenizer=tokenizer)
        tokens = sum(count(m["content"]) for m in prompt)
        if max_prompt_tokens is not None and tokens > max_prompt_tokens:
            report.dropped.append(Dropped(trajectory.id, f"prompt over {max_prompt_tokens} tokens after shortening"))
            continue
        split = splits[task]
        report.truncated += int(rendered.truncated)
        report.flagged.update(label.flags)
        rows[split].append(make_row(trajectory, label, prompt, split=split, index=len(rows[split]), task=task,
                                    with_ground_truth=with_ground_truth, prompt_tokens=tokens,
                                    truncated=rendered.truncated, prompt_budget=budget))
    if not rows["train"] and rows["val"]:
        raise InputError(f"no training rows in {dataset}: its {len(rows['val'])} usable row(s) belong to tasks the "
                         f"validation split took (--val-fraction {val_fraction}); add tasks or lower --val-fraction")
    if not rows["train"]:
        raise InputError(f"no usable rows in {dataset} after the token budget ({report.summary()})")
    report.train, report.val = len(rows["train"]), len(rows["val"])
    report.train_tasks = len({r["extra_info"]["question_ID"] for r in rows["train"]})
    report.val_tasks = len({r["extra_info"]["question_ID"] for r in rows["val"]})
    _write_all(rows, report, Path(out_dir))
    return report


def _write_all(rows: dict[str, list[dict[str, Any]]], report: PrepareReport, out_dir: Path) -> None:
    """The three files, each written beside its place first and moved in once all are written: a failure (a full
    disk) leaves the folder as it was. A kill between the moves can leave a new train split beside an old val split:
    both splits carry one mark of the run that wrote them (``prepared_by``), which ``train run`` compares."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_staged(out_dir)
    staged = {name: out_dir / f".{name}.{os.getpid()}.tmp" for name in OUTPUT_FILES}
    try:
        write_parquet(rows, out_dir, names={split: staged[f"{split}.parquet"] for split in rows})
        staged["report.json"].write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
        for name, path in staged.items():
            os.replace(path, out_dir / name)
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)


_STAGED = re.compile(r"\.(" + "|".join(re.escape(name) for name in OUTPUT_FILES) + r")\.(\d+)\.tmp")


def _remove_stale_staged(out_dir: Path) -> None:
    """Delete the staged files a killed ``prepare`` left in ``out_dir`` (its process gone, an hour untouched)."""
    with contextlib.suppress(OSError):
        for candidate in out_dir.glob(".*.tmp"):
            found = _STAGED.fullmatch(candidate.name)
            if found is not None and left_by_ended_writer(candidate, int(found.group(2))):
                candidate.unlink(missing_ok=True)


PREPARED_BY_KEY = b"agentracer.prepared_by"
"""The Parquet metadata key of the mark both splits of one ``prepare`` share: a digest of all their rows."""


def prepared_by(path: str | Path) -> str | None:
    """The mark of the ``prepare`` that wrote the split at ``path`` (None: none there, or written elsewhere)."""
    import pyarrow.parquet as pq

    value = (pq.read_schema(path).metadata or {}).get(PREPARED_BY_KEY)
    return value.decode("utf-8", "replace") if value is not None else None


def _with_string_flags(pa: Any, schema: Any) -> Any:
    """``schema`` with ``extra_info.label_flags`` a list of strings: inferred from rows none of which has a flag, it
    is a list of nulls, which a row with a flag cannot be written in (and which other files' strings do not join)."""
    index = schema.get_field_index("extra_info")
    if index < 0:
        return schema
    info = schema.field(index).type
    fields = [info.field(i) for i in range(info.num_fields)]
    fields = [field.with_type(pa.list_(pa.string())) if field.name == "label_flags" else field for field in fields]
    return schema.set(index, schema.field(index).with_type(pa.struct(fields)))


def write_parquet(rows: dict[str, list[dict[str, Any]]], out_dir: Path, *,
                  names: dict[str, Path] | None = None) -> None:
    """``train.parquet`` and ``val.parquet`` with one schema (an empty val still has the columns); ``names``: other
    paths to write each split to."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError("writing Parquet needs pyarrow: pip install 'agentracer[parquet]'") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    schema = _with_string_flags(pa, pa.Table.from_pylist(rows["train"] + rows.get("val", [])).schema)
    # (of the rows, not of the time: one dataset prepared twice gives the same bytes)
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]
    schema = schema.with_metadata({PREPARED_BY_KEY: digest.encode()})
    for name, split_rows in rows.items():
        table = pa.Table.from_pylist(split_rows, schema=schema)
        pq.write_table(table, (names or {}).get(name, out_dir / f"{name}.parquet"))
