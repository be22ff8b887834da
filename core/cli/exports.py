"""``agentracer export``: trajectories from a store into Who&When, TracerTraj or OpenInference/OTLP."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import click

from ..errors import InputError
from ._io import Problems, iter_trajectories

_SOURCE = click.argument("source", type=click.Path(exists=True, dir_okay=False))


@click.group("export")
def export_group() -> None:
    """Export trajectories from a store (``.jsonl``/``.db``) into other formats."""


def _safe_relative(relative: str) -> PurePosixPath | None:
    """``relative`` as a path inside the export folder, or None if it would leave it."""
    path = PurePosixPath(relative.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


@export_group.command("whowhen")
@_SOURCE
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder to write one Who&When JSON file per trajectory into.")
def export_whowhen(source: str, output: str) -> None:
    """Write each trajectory of SOURCE as a Who&When file under OUTPUT.

    A trajectory imported from Who&When goes back to the relative path it came from
    (``metadata.source_path``), with equal JSON; others go to ``ID.json``.
    """
    from ..formats.whowhen import export_path, to_whowhen

    problems = Problems()
    root = Path(output)
    written: dict[PurePosixPath, str] = {}
    for trajectory in iter_trajectories(source, problems):
        relative = _safe_relative(export_path(trajectory))
        where = f"{source} (id {trajectory.id})"
        if relative is None:
            problems.report(InputError(f"source_path {export_path(trajectory)!r} would leave {output}", where=where))
            continue
        if relative in written:
            problems.report(InputError(f"{relative} was already written for trajectory {written[relative]!r}",
                                       where=where))
            continue
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(to_whowhen(trajectory), indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
        written[relative] = trajectory.id
    click.echo(f"exported {len(written)} trajectories from {source} to {output}"
               + (f"; {problems.count} problem(s)" if problems.count else ""), err=True)
    problems.finish()


@export_group.command("tracertraj")
@_SOURCE
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="OUT.parquet (needs the 'parquet' extra) or OUT.jsonl.")
@click.option("--label-source", type=click.Choice(["human", "counterfactual", "injection", "tracer"]),
              help="Which label becomes mistake_agent/mistake_step (default: each trajectory's first).")
@click.option("--allow-unlabelled", is_flag=True,
              help="Write trajectories without such a label with null mistake_* fields instead of reporting them.")
def export_tracertraj(source: str, output: str, label_source: str | None, allow_unlabelled: bool) -> None:
    """Write the trajectories of SOURCE as TracerTraj rows (one per trajectory) to OUTPUT.

    A trajectory without a label is reported (one line) and skipped unless --allow-unlabelled.
    """
    from ..formats.tracertraj import TracerTrajWriter, to_row

    if Path(output).suffix.lower() not in {".parquet", ".pq", ".jsonl"}:
        raise click.BadParameter("must end in .parquet or .jsonl", param_hint="'-o'")
    problems = Problems()
    with TracerTrajWriter(output) as writer:
        for trajectory in iter_trajectories(source, problems):
            try:
                row = to_row(trajectory, source=label_source, require_label=not allow_unlabelled)
            except InputError as exc:
                problems.report(InputError(str(exc), where=source))
                continue
            writer.write(row)
    click.echo(f"exported {writer.count} TracerTraj rows from {source} to {output}"
               + (f"; {problems.count} problem(s)" if problems.count else ""), err=True)
    problems.finish()


@export_group.command("openinference")
@_SOURCE
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="OTLP/JSON file: OUT.json (one request) or OUT.jsonl (one request per trajectory).")
@click.option("--endpoint", help="OTLP/HTTP endpoint, e.g. http://localhost:4318 (/v1/traces is added).")
@click.option("--header", "headers", multiple=True, metavar="KEY=VALUE", help="Extra HTTP header (repeatable).")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the endpoint.")
def export_openinference(source: str, output: str | None, endpoint: str | None, headers: tuple[str, ...],
                         timeout: float) -> None:
    """Export SOURCE as OpenInference/OpenTelemetry spans: one trace per trajectory, one span per step and
    per model or tool call. Write OTLP/JSON with -o, send OTLP/HTTP with --endpoint (needs the 'otel' extra),
    or both."""
    from ..formats.openinference import export_otlp_http, traces_endpoint, write_otlp_json

    if output is None and endpoint is None:
        raise click.UsageError("give -o OUT.json, --endpoint URL, or both")
    header_map: dict[str, str] = {}
    for header in headers:
        key, sep, value = header.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{header!r} is not KEY=VALUE", param_hint="'--header'")
        header_map[key.strip()] = value
    if endpoint is not None:
        traces_endpoint(endpoint)  # reject a bad URL before reading anything
    problems = Problems()
    if output is not None:
        count = write_otlp_json(iter_trajectories(source, problems), output)
        click.echo(f"wrote {count} spans from {source} to {output}", err=True)
    if endpoint is not None:
        count = export_otlp_http(iter_trajectories(source, Problems() if output else problems), endpoint,
                                 headers=header_map, timeout=timeout)
        click.echo(f"sent {count} spans from {source} to {traces_endpoint(endpoint)}", err=True)
    problems.finish()
