"""Helpers shared by CLI commands: reading trajectories from any supported file, reporting bad records.
Bad records are reported as one line each (``Problems``) or raised (``read_trajectories``, ``read_one``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..schema import Trajectory
from ..store import foreign_content, json_file_records, open_store

STORE_SUFFIXES = {".jsonl", ".db", ".sqlite", ".sqlite3"}
SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}


def check_output_store(path: str) -> None:
    """An output must name a store (``open_store`` takes any other name as JSONL), new or holding trajectories: runs
    appended to another file (a tasks file, a results file, another program's database) would spoil it."""
    if _jsonl_runs_under_another_name(Path(path)):  # (releases before this one wrote refine's -o as JSONL, any name)
        raise InputError("holds runs as JSONL under a name that is not .jsonl (an earlier release wrote them so): "
                         f"rename it to {Path(path).with_suffix('.jsonl').name} to go on with it", where=path)
    if Path(path).suffix.lower() not in STORE_SUFFIXES:
        raise InputError("the output must be a .jsonl or .db store", where=path)
    what = foreign_content(Path(path))
    if what:
        raise InputError(f"holds {what}, not trajectories: write the runs to a new store", where=path)


def _jsonl_runs_under_another_name(path: Path) -> bool:
    if path.suffix.lower() == ".jsonl" or not path.is_file():
        return False
    try:
        with path.open("rb") as fh:
            first = fh.read(64)
    except OSError:
        return False
    return first.removeprefix(b"\xef\xbb\xbf").startswith(b'{"schema_version"')


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file (through links too; by resolved path while one does not exist)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_not_source(source: str, output: str, *, what: str = "file", why: str = "") -> None:
    """Refuse an ``output`` that is the ``source`` file itself: writing it would lose what is read."""
    if same_file(source, output):
        raise InputError(f"the output must be another {what} than SOURCE" + (f" ({why})" if why else ""),
                         where=output)




def check_html_output(html_out: str, *sources: str | None) -> None:
    """An HTML page is written to a new name: never over an input, nor over a name that holds data."""
    for source in sources:
        if source is not None:
            check_not_source(source, html_out, why="the page would replace the runs it shows")
    if Path(html_out).suffix.lower() not in {".html", ".htm"}:
        raise InputError("--html writes a web page: give it a .html name", where=html_out)


_LINE_SUFFIX = re.compile(r":\d+$")


class Problems:
    """Counts bad records and prints each as one line on stderr (up to ``shown_per_file`` of one file: a file that
    is not what the command reads, an HTML page say, would otherwise give a line per line)."""

    def __init__(self, shown_per_file: int = 20) -> None:
        self.count = 0
        self.shown_per_file = shown_per_file
        self._per_file: dict[str, int] = {}

    def report(self, error: InputError | str) -> None:
        self.count += 1
        where = getattr(error, "where", None)
        file = _LINE_SUFFIX.sub("", where.split(": ")[0]) if isinstance(where, str) else ""
        seen = self._per_file[file] = self._per_file.get(file, 0) + 1
        if seen <= self.shown_per_file:
            click.echo(f"error: {error}", err=True)
        elif seen == self.shown_per_file + 1:
            click.echo(f"error: {file}: more problems, not shown (each is counted)", err=True)

    def exit_code(self) -> int:
        return 2 if self.count else 0

    def finish(self) -> None:
        """Exit with code 2 if anything was reported (``SystemExit`` passes through click untouched)."""
        if self.count:
            raise SystemExit(2)


def chosen_method(method: str | None, model: str | None) -> str:
    """The attribution method a command runs (``lite`` without a model, ``agentracer`` with one), checked against
    ``--model``: a model-based method needs one, and a model-free one is not given one it would ignore."""
    from ..tracer import MODEL_FREE, canonical_name

    name = canonical_name(method or ("agentracer" if model else "lite"))
    if name in MODEL_FREE and model:
        raise click.UsageError(f"method {name!r} uses no model: drop --model, or pick a model-based method")
    if name not in MODEL_FREE and not model:
        raise click.UsageError(f"method {name!r} needs --model (e.g. openai:http://127.0.0.1:8000/v1@Qwen3-8B)")
    return name


def model_options(spec: str, concurrency: int, cache: bool = True, *, timeout: float | None = None,
                  fresh: bool = False) -> dict[str, Any]:
    """Options of the model named by ``spec`` for a command that runs ``concurrency`` calls at once; an OpenAI-compatible
    server's ``timeout`` per attempt, and ``fresh``: asked again rather than answered from the cache."""
    scheme = spec.partition(":")[0]
    options: dict[str, Any] = {}
    if scheme in {"openai", "hf", "vllm"}:
        options["max_concurrency"] = concurrency
    if scheme == "openai":
        if not cache:
            options["cache"] = False
        if fresh:
            options["cache_read"] = False
        if timeout is not None:
            options["timeout"] = timeout
    return options


TIMEOUT_OPTION = click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
    help="seconds an OpenAI-compatible server has for each attempt (default $AGENTRACER_TIMEOUT, else 300)")


def iter_trajectories(path: str | Path, problems: Problems) -> Iterator[Trajectory]:
    """Trajectories of a store (``.jsonl``/``.db``), a trajectory or Who&When ``.json`` file, a TracerTraj
    ``.parquet`` or ``.jsonl``, or an OTLP/JSON trace file (``.json``/``.jsonl``); bad records are reported to
    ``problems`` and skipped."""
    for _where, trajectory in iter_located(path, problems):
        yield trajectory


def iter_located(path: str | Path, problems: Problems) -> Iterator[tuple[str, Trajectory]]:
    """``iter_trajectories`` with each trajectory's place in its file (``runs.jsonl:7``, ``runs.db#3``, a row or
    record of other formats)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise InputError("no such file", where=str(path))
    if suffix in {".json", ".jsonl"} and _holds_otlp(path):
        from ..formats.otlp_import import iter_otlp

        yield from _reported(iter_otlp(path), problems)
    elif suffix == ".json":
        yield from _iter_json_file(path, problems)
    elif suffix in {".parquet", ".pq"} or holds_tracertraj(path):
        from ..formats.tracertraj import iter_tracertraj

        yield from _reported(iter_tracertraj(path), problems)
    else:
        yield from _iter_store(path, problems)


def _iter_store(path: Path, problems: Problems) -> Iterator[tuple[str, Trajectory]]:
    """The good records of a store, with their places; bad ones are reported. A record holding a secret (a store
    edited by hand, or written by a version before imports were redacted) comes redacted, as a recording is: what a
    command makes of it (a page, a copy with a verdict, a tracer's prompt) holds no key."""
    from ..formats.imported import redacted

    if path.suffix.lower() in SQLITE_SUFFIXES and path.is_dir():
        raise InputError("is a directory, not an SQLite store", where=str(path))
    errors: list[InputError] = []
    for where, trajectory in open_store(path).iter_located(errors=errors):
        for error in errors:
            problems.report(error)
        errors.clear()
        try:
            yield where, redacted(trajectory, where=where)
        except InputError as exc:  # (a record no JSON can hold)
            problems.report(exc)
    for error in errors:
        problems.report(error)


def _reported(items: Iterator[tuple[str, Trajectory | InputError]],
              problems: Problems) -> Iterator[tuple[str, Trajectory]]:
    for where, item in items:
        if isinstance(item, InputError):
            problems.report(item)
        else:
            yield where, item


_SNIFFED_LINES = 20
"""How many non-blank lines a file's kind is told by: a damaged first line does not make a file of TracerTraj rows
or OTLP requests read as a store (whose reader then refused every good row)."""


def _head_lines(path: Path) -> list[bytes]:
    """The first ``_SNIFFED_LINES`` non-blank lines of a file (none if it cannot be read)."""
    lines: list[bytes] = []
    try:
        with path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    lines.append(line.lstrip())
                    if len(lines) == _SNIFFED_LINES:
                        break
    except OSError:
        return []
    return lines


def _holds_otlp(path: Path) -> bool:
    """Whether a ``.json``/``.jsonl`` file holds OTLP trace requests: it starts with ``{"resourceSpans"`` (written
    out over lines or not), or a record among its first lines does."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    except OSError:
        return False
    if head.startswith(b"["):  # (a list of requests, as some tools save them)
        head = head[1:].lstrip()
    return any(text.startswith(b"{") and (b'"resourceSpans"' in text[:64] or b'"resource_spans"' in text[:64])
               for text in (head, *_head_lines(path)))


def _first_record(path: Path) -> Any:
    """The first line of a ``.jsonl`` file that is a JSON record (within its first lines), parsed; None if none is."""
    if path.suffix.lower() != ".jsonl" or not path.is_file():
        return None
    for line in _head_lines(path):
        try:
            return json.loads(line)
        except (ValueError, RecursionError):
            continue
    return None


def holds_tracertraj(path: Path) -> bool:
    """Whether a ``.jsonl`` file holds TracerTraj rows (its first JSON record has ``history`` and no ``steps``)."""
    record = _first_record(path)
    return isinstance(record, dict) and "history" in record and "steps" not in record


def holds_trajectories(path: Path) -> bool:
    """Whether ``path`` is an agentracer store: SQLite, or JSONL whose first record is a trajectory."""
    if path.suffix.lower() in SQLITE_SUFFIXES:
        return path.is_file()
    record = _first_record(path)
    return isinstance(record, dict) and "steps" in record and ("schema_version" in record or "id" in record)


def _iter_json_file(path: Path, problems: Problems) -> Iterator[tuple[str, Trajectory]]:
    """A ``.json`` file holding one trajectory, a list of them, or a Who&When record (with their places)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # (a BOM, as some editors write, is no error)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, nesting too deep
        problems.report(InputError(f"not valid JSON ({exc})", where=str(path)))
        return
    if isinstance(data, dict) and "history" in data and "steps" not in data:
        from ..formats.whowhen import load_whowhen

        try:
            yield str(path), load_whowhen(path, root=path.parent)
        except InputError as exc:
            problems.report(exc)
        return
    from ..formats.imported import redacted_records

    for where, item in redacted_records(json_file_records(path, data)):  # (a file edited by hand, as a store may be)
        if isinstance(item, InputError):
            problems.report(item)
        else:
            yield where, item


def read_trajectories(path: str | Path) -> Iterator[Trajectory]:
    """Trajectories from a JSONL/SQLite store, a trajectory or Who&When ``.json`` file, or a TracerTraj
    ``.parquet``; the first bad record raises its ``InputError``."""
    problems = _Raise()
    yield from iter_trajectories(path, problems)


def read_one(path: str | Path, trajectory_id: str | None = None) -> Trajectory:
    """One trajectory: the one with ``trajectory_id``, or the file's only/first one."""
    path = Path(path)
    if trajectory_id is not None and path.suffix.lower() in STORE_SUFFIXES and path.is_file() \
            and not _holds_otlp(path) and not holds_tracertraj(path):
        from ..formats.imported import redacted

        try:
            return redacted(open_store(path).get(trajectory_id), where=f"{path} (id {trajectory_id})")
        except KeyError:
            raise InputError(f"no trajectory with id {trajectory_id!r}", where=str(path)) from None
    for trajectory in read_trajectories(path):
        if trajectory_id is None or trajectory.id == trajectory_id:
            return trajectory
    raise InputError(f"no trajectory with id {trajectory_id!r}" if trajectory_id else "no trajectory in file",
                     where=str(path))


class _Raise(Problems):
    def report(self, error: InputError | str) -> None:
        raise error if isinstance(error, InputError) else InputError(error)
