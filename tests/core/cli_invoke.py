"""Run the ``agentracer`` command line in-process, for the CLI tests of tests/core."""

from __future__ import annotations

from agentracer.cli import main
from click.testing import CliRunner


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``agentracer ARGS`` through ``agentracer.cli.main``: (exit code, stdout, stderr)."""
    with CliRunner().isolation() as (stdout, stderr, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, stdout.getvalue().decode(), stderr.getvalue().decode()
