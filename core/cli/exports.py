"""``agentracer export``: trajectories from a store into Who&When, TracerTraj or OpenInference/OTLP."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import click

from ..atomic import write_replacing, write_text_replacing
from ..errors import InputError
from ..schema import Trajectory
from ._io import Problems, check_not_source, holds_trajectories, iter_located, same_file

_SOURCE = click.argument("source", type=click.Path(exists=True, dir_okay=False))


def _exported_runs(source: str, problems: Problems) -> Iterator[Trajectory]:
    """The trajectories of ``source`` with any secret a hand-edited store (or one an older version wrote) holds
    redacted, as imports and recordings are, its ground truth too: what an export writes or sends holds no key. An id met again (stores
    joined with ``cat``) is reported and its first run alone exported: two runs of one id would be one trace, one
    file, or two rows a reader cannot tell apart."""
    from ..formats.imported import redacted

    first_seen: dict[str, str] = {}
    for where, trajectory in iter_located(source, problems):
        if trajectory.id in first_seen:
            problems.report(InputError(f"trajectory id {trajectory.id!r} repeats the run at {first_seen[trajectory.id]}: "
                                       "only that one is exported", where=where))
            continue
        first_seen[trajectory.id] = where
        try:
            yield redacted(trajectory, where=where, ground_truth_too=True)
        except InputError as exc:  # (a record no JSON can hold: the others are exported)
            problems.report(exc)


@click.group("export")
def export_group() -> None:
    """Export trajectories from a store (``.jsonl``/``.db``) into other formats."""


def _safe_relative(relative: str) -> PurePosixPath | None:
    """``relative`` as a path inside the export folder, or None if it would leave it."""
    path = PurePosixPath(relative.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


def _check_output(source: str, output: str) -> None:
    """An export's output must be another file than its source, and no trajectory store (replaced whole, its runs
    would be lost)."""
    check_not_source(source, output, why="writing it would lose the trajectories")
    if Path(output).is_file() and holds_trajectories(Path(output)):
        raise InputError("holds trajectories (an agentracer store): the export would replace it; give it a new file",
                         where=output)


def _exported(what: str, count: int, source: str, output: str, problems: Problems) -> None:
    """Say what was exported to ``output``, or that nothing was and ``output`` was left as it was."""
    done = (f"exported {count} {what} from {source} to {output}" if count
            else f"no {what} to export from {source}; nothing written to {output}")
    click.echo(done + (f"; {problems.count} problem(s)" if problems.count else ""), err=True)


@export_group.command("whowhen")
@_SOURCE
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder to write one Who&When JSON file per trajectory into.")
def export_whowhen(source: str, output: str) -> None:
    """Write each trajectory of SOURCE as a Who&When file under OUTPUT.

    A trajectory imported from Who&When goes back to the relative path it came from
    (``metadata.source_path``), with equal JSON; others go to ``ID.json`` (an id ``team/run-1`` to ``team/run-1.json``, which imports as that id again). An id
    no file imports back as (empty, ``a//b``, ``../up``, ``a\\b``, a hidden folder) is reported and not written. Each file is
    written whole (a file of that name is replaced), never over SOURCE.
    """
    from ..formats.whowhen import export_path, to_whowhen

    problems = Problems()
    root = Path(output)
    written: dict[PurePosixPath, str] = {}
    for trajectory in _exported_runs(source, problems):
        where = f"{source} (id {trajectory.id})"
        try:
            relative = _safe_relative(export_path(trajectory))
        except InputError as exc:  # (an id no file name gives back: the others are exported)
            problems.report(InputError(str(exc), where=where))
            continue
        if relative is None:
            problems.report(InputError(f"source_path {export_path(trajectory)!r} would leave {output}", where=where))
            continue
        if relative in written:
            problems.report(InputError(f"{relative} was already written for trajectory {written[relative]!r}",
                                       where=where))
            continue
        target = root / relative
        if "\x00" in str(relative):  # (no file name holds one)
            problems.report(InputError(f"the id {trajectory.id!r} holds a NUL character, which no file name can",
                                       where=where))
            continue
        if same_file(source, target):
            problems.report(InputError(f"{target} is SOURCE itself: writing it would lose the trajectories; export "
                                       "into another folder", where=where))
            continue
        try:
            write_text_replacing(target, json.dumps(to_whowhen(trajectory), indent=4, ensure_ascii=False) + "\n")
        except OSError as exc:  # (ids a and a.json/b: a.json would be a file and a folder) the others go on
            problems.report(InputError(f"cannot write {relative} ({exc.strerror or exc})", where=where))
            continue
        written[relative] = trajectory.id
    _exported("trajectories", len(written), source, output, problems)
    problems.finish()


@export_group.command("tracertraj")
@_SOURCE
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="OUT.parquet (needs the 'parquet' extra) or OUT.jsonl.")
@click.option("--label-source", type=click.Choice(["human", "counterfactual", "injection", "tracer"]),
              help="Which label becomes mistake_agent/mistake_step (default: a human label, else counterfactual, "
                   "else injection; a tracer's verdict only when asked for).")
@click.option("--allow-unlabelled", is_flag=True,
              help="Write trajectories without such a label with null mistake_* fields instead of reporting them.")
def export_tracertraj(source: str, output: str, label_source: str | None, allow_unlabelled: bool) -> None:
    """Write the trajectories of SOURCE as TracerTraj rows (one per trajectory) to OUTPUT.

    A trajectory without a label is reported (one line) and skipped unless --allow-unlabelled. OUTPUT is
    replaced whole once the rows are written, and left as it was if there are none.
    """
    if Path(output).suffix.lower() not in {".parquet", ".pq", ".jsonl"}:
        raise click.BadParameter("must end in .parquet or .jsonl", param_hint="'-o'")
    _check_output(source, output)
    problems = Problems()
    count = write_replacing(output, lambda path: _write_rows(source, path, problems, label_source,
                                                             require_label=not allow_unlabelled))
    _exported("TracerTraj rows", count, source, output, problems)
    problems.finish()


def _write_rows(source: str, path: Path, problems: Problems, label_source: str | None, *,
                require_label: bool) -> int:
    """Write the TracerTraj row of each trajectory of ``source`` to ``path``; one without the label is reported."""
    from ..formats.tracertraj import TracerTrajWriter, to_row

    with TracerTrajWriter(path) as writer:
        for trajectory in _exported_runs(source, problems):
            try:
                row = to_row(trajectory, source=label_source, require_label=require_label)
            except InputError as exc:
                problems.report(InputError(str(exc), where=source))
                continue
            writer.write(row)
    return writer.count


@export_group.command("openinference")
@_SOURCE
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="OTLP/JSON file: OUT.json (one request) or OUT.jsonl (one request per trajectory).")
@click.option("--endpoint", help="OTLP/HTTP endpoint, e.g. http://localhost:4318 (/v1/traces is added).")
@click.option("--header", "headers", multiple=True, metavar="KEY=VALUE", help="Extra HTTP header (repeatable).")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the endpoint.")
@click.option("--skip", default=0, show_default=True, type=click.IntRange(min=0),
              help="Send to --endpoint all but the first N trajectories of SOURCE (those an earlier export that "
                   "stopped says were accepted).")
def export_openinference(source: str, output: str | None, endpoint: str | None, headers: tuple[str, ...],
                         timeout: float, skip: int) -> None:
    """Export SOURCE as OpenInference/OpenTelemetry spans: one trace per trajectory, one span per step and
    per model or tool call. Write OTLP/JSON with -o (replaced whole once written, left as it was if there is
    nothing to write), send OTLP/HTTP with --endpoint (needs the 'otel' extra), or both. An endpoint that stops
    accepting says how many trajectories it took: --skip them when sending again."""
    from ..formats.openinference import export_otlp_http, traces_endpoint, write_otlp_json

    if output is None and endpoint is None:
        raise click.UsageError("give -o OUT.json, --endpoint URL, or both")
    if output is not None:
        if Path(output).suffix.lower() not in {".json", ".jsonl"}:
            raise click.BadParameter("must end in .json or .jsonl (OTLP/JSON)", param_hint="'-o'")
        _check_output(source, output)
    header_map: dict[str, str] = {}
    for header in headers:
        key, sep, value = header.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{header!r} is not KEY=VALUE", param_hint="'--header'")
        header_map[key.strip()] = value
    if skip and endpoint is None:
        raise click.UsageError("--skip is for --endpoint (a file is always written whole)")
    if endpoint is not None:
        traces_endpoint(endpoint)  # reject a bad URL before reading anything
    problems = Problems()
    if output is not None:
        count = write_replacing(output, lambda path: write_otlp_json(_exported_runs(source, problems), path))
        _exported("spans", count, source, output, problems)
    if endpoint is not None:
        sending = itertools.islice(_exported_runs(source, Problems() if output else problems), skip, None)
        count = export_otlp_http(sending, endpoint, headers=header_map, timeout=timeout, skipped=skip)
        from ..urls import without_credentials

        click.echo(f"sent {count} spans from {source} to {without_credentials(traces_endpoint(endpoint))}", err=True)
    problems.finish()
