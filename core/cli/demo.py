"""``agentracer demo``: the offline walk-through (a plugin ships it through the ``agentracer.demos`` entry points)."""

from __future__ import annotations

from importlib.metadata import entry_points

import click

from ..errors import InputError

GROUP = "agentracer.demos"


@click.command()
@click.option("-o", "--out", "--output", "out_dir", default="agentracer-demo", show_default=True, type=click.Path(file_okay=False),
              help="folder for report.html and trajectories.jsonl")
@click.option("--framework", default=None, help="which demo (default: the first installed, autogen first)")
def demo(out_dir: str, framework: str | None) -> None:
    """A real multi-agent team fails a task; find the decisive step and fix the next run (offline, scripted)."""
    demos = {ep.name: ep for ep in entry_points(group=GROUP)}
    if not demos:
        raise InputError("no demo is installed; install one with: pip install 'agentracer[autogen]'")
    name = framework or ("autogen" if "autogen" in demos else sorted(demos)[0])
    if name not in demos:
        raise InputError(f"no demo named {name!r}; installed: {sorted(demos)}")
    try:
        run_demo = demos[name].load()
    except ImportError as exc:
        raise InputError(f"the {name} demo needs its framework: pip install 'agentracer[{name}]' ({exc})") from None
    result = run_demo(out_dir=out_dir, echo=click.echo)
    if result.verdict is None:
        raise SystemExit(1)
