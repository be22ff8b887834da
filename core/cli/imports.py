"""``agentracer import``: other formats into a trajectory store (``.jsonl`` or ``.db``)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from ..atomic import left_by_ended_writer, write_replacing
from ..errors import InputError
from ..schema import Trajectory
from ..store import DuplicateIdError, SqliteStore, open_store
from ._io import SQLITE_SUFFIXES, Problems, check_not_source, check_output_store

_OUTPUT = click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
                       help="Store to append to: FILE.jsonl, or FILE.db for SQLite.")
_REPLACE = click.option("--replace", is_flag=True,
                        help="Start the output afresh instead of appending to what it holds.")


_DUPLICATES_NAMED = 3  # duplicate ids reported one by one before the rest are counted


@click.group("import")
def import_group() -> None:
    """Import trajectories from Who&When, TracerTraj or OTLP/JSON (OpenInference) files into a store."""


def _check_output(source: str, output: str) -> None:
    """The output must be a store, and another file than the source it is read from."""
    check_not_source(source, output, what="store", why="importing into it would lose what it holds")
    check_output_store(output)


def _store_all(items: Iterable[tuple[str, Trajectory | InputError]], output: str, replace: bool,
               problems: Problems) -> int:
    """Append every good trajectory to ``output``; each bad item or duplicate id is one reported line.

    With ``replace`` the trajectories go into a new store beside ``output`` that takes its place only once the
    source has been read through and gave at least one trajectory: a source that cannot be read, or holds nothing
    good, leaves ``output`` as it was."""
    if not replace:
        return _append_all(items, Path(output), problems)
    out = Path(output)
    if out.suffix.lower() in SQLITE_SUFFIXES:
        stored = _replace_database(items, out, problems)
    else:
        stored = write_replacing(out, lambda temporary: _append_all(items, temporary, problems, shown_as=out))
    if not stored and out.exists():
        problems.report(InputError("nothing imported, so nothing replaced: the store is as it was", where=str(out)))
    return stored


_IMPORT_PREFIX = ".agentracer-import."
_IMPORT_FOLDER = re.compile(rf"{re.escape(_IMPORT_PREFIX)}(\d+)\..+")


def _remove_stale_imports(folder: Path) -> None:
    """Delete the folders of ``import --replace`` runs killed mid-way (each holds a whole copy of an import): an hour
    untouched and named by a process that has ended, as ``agentracer.atomic`` clears its writers' leftovers."""
    with contextlib.suppress(OSError):
        for candidate in folder.glob(f"{_IMPORT_PREFIX}*"):
            found = _IMPORT_FOLDER.fullmatch(candidate.name)
            if found is not None and candidate.is_dir() and left_by_ended_writer(candidate, int(found.group(1))):
                shutil.rmtree(candidate, ignore_errors=True)


def _replace_database(items: Iterable[tuple[str, Trajectory | InputError]], out: Path, problems: Problems) -> int:
    """``_store_all`` with ``replace`` for an SQLite store: a new database beside it takes the trajectories, which
    then take the place of the store's in one transaction. The store's file is never replaced nor its ``-wal`` and
    ``-shm`` deleted: a process still writing to it (a traced team) would lose its later runs, or spoil the store."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_imports(out.parent)
    with tempfile.TemporaryDirectory(prefix=f"{_IMPORT_PREFIX}{os.getpid()}.", dir=out.parent) as folder:
        fresh = Path(folder) / f"new{out.suffix}"
        stored = _append_all(items, fresh, problems, shown_as=out)
        if stored:
            store, source = SqliteStore(out), SqliteStore(fresh)
            try:
                store.replace_with(source)
            finally:
                store.close()
                source.close()
    return stored


def _append_all(items: Iterable[tuple[str, Trajectory | InputError]], out: Path, problems: Problems, *,
                shown_as: Path | None = None) -> int:
    store = open_store(out)
    stored = duplicates = 0
    try:
        for where, item in items:
            if isinstance(item, InputError):
                problems.report(item)
                continue
            try:
                store.append(item)
                stored += 1
            except DuplicateIdError:
                duplicates += 1
                if duplicates <= _DUPLICATES_NAMED:
                    problems.report(InputError(f"trajectory id {item.id!r} is already in {shown_as or out} (use "
                                               "--replace to start afresh)", where=where))
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()
    if duplicates > _DUPLICATES_NAMED:  # a second import of the same files: one line, not one per file
        problems.report(InputError(f"{duplicates - _DUPLICATES_NAMED} more trajectory ids are already in it",
                                   where=str(shown_as or out)))
    return stored


def _done(what: str, output: str, problems: Problems) -> None:
    """Say what was imported where (and how many problems), then exit 2 if there were any."""
    click.echo(f"imported {what} into {output}" + (f"; {problems.count} problem(s)" if problems.count else ""),
               err=True)
    problems.finish()


class _Counted:
    """The items of an import, counted as they pass (``seen``)."""

    def __init__(self, items: Iterable[tuple[str, Trajectory | InputError]]) -> None:
        self._items = items
        self.seen = 0

    def __iter__(self) -> Iterator[tuple[str, Trajectory | InputError]]:
        for item in self._items:
            self.seen += 1
            yield item


@import_group.command("whowhen")
@click.argument("directory", type=click.Path(exists=True))
@_OUTPUT
@_REPLACE
def import_whowhen(directory: str, output: str, replace: bool) -> None:
    """Import every Who&When ``*.json`` under DIRECTORY (searched recursively).

    Each trajectory keeps the file's path relative to DIRECTORY (``metadata.source_path``), so
    ``agentracer export whowhen`` writes it back to the same place. A bad file gives one line naming the
    file and field; the others are still imported; the exit code is then 2.
    """
    from ..formats.whowhen import iter_whowhen_dir

    _check_output(directory, output)
    problems = Problems()
    items = _Counted(iter_whowhen_dir(directory))
    stored = _store_all(items, output, replace, problems)
    if items.seen == 0:
        problems.report(InputError("no *.json files found", where=directory))
    _done(f"{stored} of {items.seen} Who&When files from {directory}", output, problems)


@import_group.command("tracertraj")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@_OUTPUT
@_REPLACE
@click.option("--label-source", default="counterfactual", show_default=True,
              type=click.Choice(["human", "counterfactual", "injection", "tracer"]),
              help="Source of the mistake label for rows without a 'mistake_source' column.")
def import_tracertraj(source: str, output: str, replace: bool, label_source: str) -> None:
    """Import TracerTraj rows from SOURCE (``.parquet`` or ``.jsonl``); one trajectory per row, labelled.

    A bad row gives one line naming the file, row and field; the others are still imported; the exit code
    is then 2.
    """
    from ..formats.tracertraj import iter_tracertraj

    _check_output(source, output)
    problems = Problems()
    items = _Counted(iter_tracertraj(source, default_source=label_source))
    stored = _store_all(items, output, replace, problems)
    _done(f"{stored} of {items.seen} TracerTraj rows from {source}", output, problems)


@import_group.command("openinference")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@_OUTPUT
@_REPLACE
def import_openinference(source: str, output: str, replace: bool) -> None:
    """Import the traces of an OTLP/JSON file (``.json``: one request; ``.jsonl``: one per line, as an
    OpenTelemetry collector's file exporter writes): one trajectory per trace.

    Runs ``agentracer export openinference`` wrote come back as they were. Spans of other OpenInference or
    OpenTelemetry GenAI instrumentations (Phoenix, an OTel collector) become steps: each agent's turn (the
    innermost AGENT spans) with its model calls and tool results, or, without AGENT spans, each model call and
    tool execution; the root span's input is the task. A bad line or span gives one line naming it; the
    other traces are still imported; the exit code is then 2.
    """
    from ..formats.otlp_import import iter_otlp

    _check_output(source, output)
    problems = Problems()
    stored = _store_all(iter_otlp(source), output, replace, problems)
    _done(f"{stored} trace(s) from {source}", output, problems)
