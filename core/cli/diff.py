"""``agentracer diff``: a replay (or any run) next to the run it is compared with, step by step."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..compare import Comparison, compare
from ..errors import InputError
from ..schema import Step, Trajectory
from ._io import check_html_output, read_one
from ._terminal import plain, printable
from .show import truncate, write_page

_STATUS_STYLE = {"same": "dim", "replaced": "bold magenta", "changed": "bold yellow", "only before": "red",
                 "only after": "green"}


def _cell(step: Step | None, text: str) -> Text:
    if step is None:
        return Text("—", style="dim")
    return Text.assemble((printable(f"{step.agent} "), "bold"), (printable(f"[{step.kind}] "), "dim"), printable(text))


def _shown(step: Step) -> str:
    """A step's text with its tool calls and results, which the comparison weighs too."""
    def text(value: object) -> str:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)

    parts = [step.text, *(f"{c.name}({text(c.arguments)})" for c in step.tool_calls),
             *(f"→ {'error: ' if r.is_error else ''}{text(r.content)}" for r in step.tool_results)]
    return " ".join(part for part in parts if part)


def _texts(before: Step | None, after: Step | None, max_chars: int) -> tuple[str, str]:
    """Both steps' texts cut to ``max_chars``; when they differ past the cut, both are shown from a little before
    their first difference (a replaced step's change is often far into its text)."""
    a = " ".join(_shown(before).split()) if before is not None else ""
    b = " ".join(_shown(after).split()) if after is not None else ""
    if before is None or after is None or a == b:
        return truncate(a, max_chars), truncate(b, max_chars)
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    if first < max_chars - max_chars // 4:
        return truncate(a, max_chars), truncate(b, max_chars)
    start = first - max_chars // 4
    return truncate("…" + a[start:], max_chars), truncate("…" + b[start:], max_chars)


def render(comparison: Comparison, *, max_chars: int) -> Table:
    """The comparison as a table: one row per step index, both runs' steps and how they relate."""
    before, after = comparison.before, comparison.after
    table = Table(show_header=True, header_style="bold", expand=True,
                  title=plain(f"{before.id} -> {after.id}"), caption=plain(comparison.summary()))
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("before", ratio=1, overflow="fold")
    table.add_column("after", ratio=1, overflow="fold")
    first_difference = comparison.first_difference
    for row in comparison.rows:
        style = _STATUS_STYLE[row.status]
        first = row.index == first_difference
        before_text, after_text = _texts(row.before, row.after, max_chars)
        table.add_row(Text(f"{'→ ' if first else ''}{row.index}", style="bold" if first else ""),
                      Text(row.status, style=style), _cell(row.before, before_text), _cell(row.after, after_text))
    return table


def _holds_one_run(path: Path) -> bool:
    """Whether a file holds exactly one run (a trajectory file: the run to compare with, whatever its id)."""
    from ._io import read_trajectories

    try:
        return len(list(itertools.islice(read_trajectories(path), 2))) == 1
    except InputError:
        return False


def _against(source: Path, after: Trajectory, against: str | None, against_id: str | None) -> Trajectory:
    """The run to compare with: ``--against-id`` (in AGAINST, or SOURCE), else the replay's own parent (in AGAINST, or
    SOURCE), else AGAINST's first run."""
    where = Path(against) if against is not None else source
    wanted = against_id or (after.replay.parent_id if after.replay is not None else None)
    if wanted is None and against is None:
        raise InputError(f"trajectory {after.id} is not a replay: name the run to compare it with (AGAINST, "
                         "--against-id)", where=str(source))
    try:
        return read_one(where, wanted)
    except InputError:
        if against_id is not None:
            raise
        if against is not None and _holds_one_run(where):  # (no parent there: AGAINST's one run is the one named)
            return read_one(where, None)
        raise InputError(f"the run trajectory {after.id} replayed ({wanted}) is not in this file: give the file "
                         "that holds it as AGAINST", where=str(source)) from None


@click.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.argument("against", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--id", "trajectory_id", help="Which trajectory of SOURCE (default: the first).")
@click.option("--against-id", help="Which trajectory to compare with (default: the replay's parent, looked up in "
                                   "AGAINST or, without it, in SOURCE; or AGAINST's first).")
@click.option("--max-chars", type=click.IntRange(min=10), default=80, show_default=True,
              help="Characters of each step's content to show.")
@click.option("--width", type=click.IntRange(min=60), help="Width of the view in columns (default: terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON instead (with --html: as well).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Write the comparison as an HTML page here.")
def diff(source: str, against: str | None, trajectory_id: str | None, against_id: str | None, max_chars: int,
         width: int | None, as_json: bool, html_out: str | None) -> None:
    """Compare a run of SOURCE with the run it replayed (or with AGAINST's), step by step.

    Each step index is `same` in both runs, the `replaced` action, `changed`, or only in one of them; the
    first difference is marked, and the last line sums the steps up with both outcomes. SOURCE and AGAINST are
    .jsonl/.db stores or trajectory .json files (e.g. the output of `agentracer replay` and its input).
    """
    if html_out is not None:
        check_html_output(html_out, source, against)
    after = read_one(Path(source), trajectory_id)
    before = _against(Path(source), after, against, against_id)
    comparison = compare(before, after)
    if html_out is not None:
        from ..report.compare_html import render_comparison_html

        write_page(html_out, render_comparison_html(comparison))
        click.echo(f"wrote {html_out}", err=True)
    if as_json:
        click.echo(json.dumps(comparison.as_json(), ensure_ascii=False, default=str))
    if html_out is not None or as_json:
        return
    Console(width=width, highlight=False, soft_wrap=False).print(render(comparison, max_chars=max_chars))
