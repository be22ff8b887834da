"""Load user objects named ``module:attribute`` (e.g. a team factory given on the command line)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from .errors import InputError


def load_object(spec: str) -> Any:
    """Import ``module:attribute`` (or ``path/to/file.py:attribute``), looking in the current folder too."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise InputError(f"expected MODULE:NAME (e.g. myteams:make_team), got {spec!r}")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.exists():
                raise InputError(f"no file {module_name}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            if module_spec is None or module_spec.loader is None:
                raise InputError(f"{module_name} cannot be loaded as a Python module")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"cannot import {module_name!r}: {exc}") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise InputError(f"{module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


def load_team(spec: str, evaluator: str | None = None) -> Any:
    """A ``TracedTeam`` from ``module:factory`` (already traced or not); a factory that cannot be called with no
    arguments is an ``InputError`` before anything runs. ``evaluator`` (a name or ``module:function``) judges its
    runs, in place of a traced team's own."""
    from .team import TracedTeam, is_factory, trace

    judge = None
    if evaluator is not None:
        from .evaluate.outcome import get_evaluator

        judge = get_evaluator(evaluator)
    target = load_object(spec)
    if isinstance(target, TracedTeam):
        if judge is not None:
            target.evaluator, target.evaluator_spec = judge, evaluator
        return target
    team = trace(target, evaluator=evaluator)
    if is_factory(target):
        _check_callable_with_no_arguments(target, spec, gets_task=team._takes_task())
    return team


def _check_callable_with_no_arguments(factory: Any, spec: str, *, gets_task: bool) -> None:
    """Only the signature is checked: a ``TypeError`` the factory raises inside stays the team's own. A factory with
    a ``task`` parameter (``gets_task``) is given each run's task, so that one argument need not have a default."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (some built-in classes): calling it will tell
        return
    try:
        signature.bind(**({"task": ""} if gets_task else {}))
    except TypeError as exc:
        but = " but the run's task" if gets_task else ""
        raise InputError(f"the team factory cannot be called with no arguments{but} ({exc})",
                         where=f"--team {spec}") from None
