"""``agentracer show``: a readable terminal view of one trajectory (or an HTML report of it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..atomic import write_text_replacing
from ..errors import InputError
from ..schema import Trajectory, Verdict
from ..store import open_store
from ._io import check_html_output, read_one
from ._terminal import plain, printable

_SOURCE_STYLE = {"human": "bold red", "counterfactual": "bold magenta", "injection": "bold yellow",
                 "tracer": "bold cyan"}


def truncate(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"


def _value(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return truncate(text, limit)


def render(trajectory: Trajectory, *, max_chars: int = 160) -> Group:
    """The rich renderable of a trajectory: a header, then one row per step, labelled steps marked."""
    header = Table.grid(padding=(0, 1))
    header.add_column(style="bold")
    header.add_column()
    header.add_row("id", plain(trajectory.id))
    if trajectory.framework:
        header.add_row("framework", plain(trajectory.framework))
    if trajectory.task:
        header.add_row("task", plain(truncate(trajectory.task, max_chars * 2)))
    if trajectory.ground_truth is not None:
        header.add_row("ground truth", plain(_value(trajectory.ground_truth, max_chars)))
    outcome = trajectory.outcome
    if outcome.success is not None or outcome.answer is not None or outcome.error:
        verdict = {True: ("success", "green"), False: ("failure", "red"), None: ("unknown", "")}[outcome.success]
        detail = f" — {truncate(outcome.error or outcome.feedback or '', max_chars)}" if (
            outcome.error or outcome.feedback) else ""
        header.add_row("outcome", Text.assemble(verdict, printable(detail)))
    header.add_row("agents", plain(", ".join(trajectory.agent_names) or "—"))
    header.add_row("steps", str(len(trajectory.steps)))
    if trajectory.replay is not None:
        header.add_row("replay of", plain(f"{trajectory.replay.parent_id}, from step {trajectory.replay.step}"))
    for label in trajectory.labels:
        header.add_row("label", _label_text(label, max_chars))

    by_step: dict[int, list[Verdict]] = {}
    for label in trajectory.labels:
        by_step.setdefault(label.step, []).append(label)
    steps = Table(show_header=True, header_style="bold", expand=True, show_lines=False)
    steps.add_column("#", justify="right", no_wrap=True)
    steps.add_column("agent", no_wrap=True, max_width=24)
    steps.add_column("kind", no_wrap=True)
    steps.add_column("content", ratio=1, overflow="fold")
    for step in trajectory.steps:
        labels = by_step.get(step.index, [])
        content = plain(truncate(step.text, max_chars))
        if step.tool_calls:
            calls = ", ".join(f"{c.name}({_value(c.arguments, 40)})" for c in step.tool_calls)
            content.append(f"\n  tools: {printable(truncate(calls, max_chars))}", style="dim")
        if step.replaced:
            which = step.metadata.get("replaced_tool_results")
            content.append("\n  " + printable(f"↻ replaced action{f' (tool results {which})' if which else ''}"),
                           style="yellow")
        for label in labels:
            content.append("\n")
            content.append_text(_label_text(label, max_chars, arrow=True))
        mark = "✗ " if labels else "↻ " if step.replaced else ""
        style = "on grey11" if labels else None
        steps.add_row(Text(f"{mark}{step.index}", style="bold red" if labels else ""),
                      plain(step.agent, "bold red" if labels else "bold"), plain(step.kind), content, style=style)
    title = plain(f"trajectory {trajectory.id}", "bold")
    return Group(Panel(header, title=title, title_align="left"), steps)


def _label_text(label: Verdict, max_chars: int, *, arrow: bool = False) -> Text:
    style = _SOURCE_STYLE.get(label.source, "bold")
    text = Text("← " if arrow else "", style=style)
    text.append(f"mistake ({label.source})", style=style)
    text.append(printable(f": {label.agent} at step {label.step}"))
    if label.reason:
        text.append(printable(f" — {truncate(label.reason, max_chars)}"), style="italic")
    return text


@click.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--id", "trajectory_id", help="Which trajectory of a store to show (default: the first).")
@click.option("--width", type=click.IntRange(min=40), help="Width of the view in columns (default: terminal).")
@click.option("--max-chars", type=click.IntRange(min=10), default=160, show_default=True,
              help="Characters of each step's content to show.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Write an HTML report here instead.")
def show(source: str, trajectory_id: str | None, width: int | None, max_chars: int, html_out: str | None) -> None:
    """Show one trajectory of SOURCE: a .jsonl or .db store, a trajectory .json, a Who&When .json or an OTLP/JSON file.

    Lists each step's index, agent, kind and truncated content; labelled steps are marked with the
    label's source (human, counterfactual, injection, tracer) and reason.
    """
    path = Path(source)
    if path.is_dir():
        raise InputError("is a directory; give a .jsonl/.db store or a .json file", where=source)
    if html_out is not None:
        check_html_output(html_out, source)
    trajectory = read_one(path, trajectory_id)
    if html_out is not None:
        _write_html(trajectory, html_out)
        return
    console = Console(width=width, highlight=False, soft_wrap=False)
    console.print(render(trajectory, max_chars=max_chars))
    if trajectory_id is None and path.suffix.lower() in {".jsonl", ".db", ".sqlite", ".sqlite3"}:
        total = len(open_store(path))
        if total > 1:
            console.print(f"[dim](first of {total} records; pick another with --id; `agentracer validate` checks "
                          "them all)[/]")


def _write_html(trajectory: Trajectory, html_out: str) -> None:
    try:
        from ..report.html import render_html
    except ImportError as exc:
        raise InputError(f"HTML reports need agentracer.report, which is not available ({exc})",
                         where="--html") from None
    html = render_html(trajectory, verdict=trajectory.label("tracer"))
    write_page(html_out, html)
    click.echo(f"wrote {html_out}", err=True)


def write_page(path: str, html: str) -> None:
    """Write an HTML page whole or not at all (an earlier page stays if writing fails); an error names the file."""
    try:
        write_text_replacing(path, html)
    except OSError as exc:
        raise InputError(f"cannot write the page ({exc.strerror or exc})", where=path) from None
