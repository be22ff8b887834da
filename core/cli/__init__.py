"""The ``agentracer`` command line. Each command lives in its own module and is imported only when used."""

from __future__ import annotations

import importlib
import sys
import warnings

import click

from ..errors import AgentracerError, ServiceError

# command name -> "module:attribute" (modules under agentracer.cli)
COMMANDS: dict[str, str] = {
    "import": "imports:import_group",
    "export": "exports:export_group",
    "show": "show:show",
    "validate": "validate:validate",
    "replay": "replay:replay",
    "diff": "diff:diff",
    "eval": "evaluate:eval_group",
    "trace": "trace:trace_command",
    "locate": "locate:locate",
    "collect": "collect:collect",
    "demo": "demo:demo",
    "annotate": "annotate:annotate",
    "refine": "refine:refine",
    "train": "train:train_group",
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use, so ``--help`` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{module_name}":
                return None  # command not built yet
            raise
        return getattr(module, attribute)


def _version() -> str:
    from .. import __version__

    return __version__


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="agentracer")
def cli() -> None:
    """agentracer: find which agent, at which step, made a multi-agent run fail — and fix the next run."""


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  line: str | None = None) -> str:
    """A warning as the CLI shows it: one line, without the Python source it came from."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input gives one clear line on stderr and exit code 2, never a traceback."""
    shown, warnings.formatwarning = warnings.formatwarning, _warning_line  # (restored: main may run in-process)
    try:
        _main(argv)
    finally:
        warnings.formatwarning = shown


def _main(argv: list[str] | None) -> None:
    try:
        result = cli.main(args=argv, prog_name="agentracer", standalone_mode=False)
        if isinstance(result, int) and result != 0:  # ctx.exit(n) comes back as its code here
            sys.exit(result)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ServiceError as exc:  # a model or server failed for good (after its retries): not the input's fault
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except (AgentracerError, OSError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
