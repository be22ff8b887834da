"""The plugin interface and registry: a team object's type picks its plugin, no framework name needed.

Plugins are discovered through the ``agentracer.plugins`` entry-point group (or ``register_plugin``); the
core imports none of them, nor any framework.
"""

from __future__ import annotations

import threading
import warnings
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from .errors import PluginNotFound
from .record import Run
from .schema import AgentInfo, Trajectory

ENTRY_POINT_GROUP = "agentracer.plugins"


@runtime_checkable
class Plugin(Protocol):
    """What a framework plugin provides to the core."""

    name: str

    def matches(self, team: Any) -> bool:
        """True when this plugin knows how to run ``team``."""

    def instrument(self) -> None:
        """Install the framework hooks (idempotent)."""

    def uninstrument(self) -> None:
        """Remove every hook, restoring the framework's original functions."""

    def describe(self, team: Any) -> list[AgentInfo]:
        """The team's agents with their system prompts."""

    async def arun(self, team: Any, task: str, run: Run) -> Any:
        """Run ``team`` on ``task`` under the active ``run``; return the final answer or result."""

    # Optional: ``team_kind(team) -> str``, the kind of team a replay must be of (default: the object's class name;
    # a plugin whose teams come in a wrapper of run options names the team inside it).
    # Optional: ``records_build_calls() -> bool``, whether this framework's teams may ask their models as a factory
    # builds them (its hooks then go in before a factory runs, so those calls are the run's, served in a replay).
    # Optional: ``keeps_its_loop(team) -> bool``, whether a team object stays bound to the event loop it first ran in
    # even once that loop is closed (a traced team object is then refused in any other loop, before it runs).
    # Optional: ``shape_agents(agents) -> list[str]``, the names of ``describe``'s agents that make a team's shape for
    # a replay's check (default: all; CAMEL leaves out the task agents a RolePlaying asks once as it is made).
    # Optional: ``why_not_replaceable(trajectory, step) -> str | None``, why no action can be put at that step of a
    # run of this framework, whatever the action (None: it can be); see ``why_not_replaceable`` below.


_lock = threading.Lock()
_registered: dict[str, Plugin] = {}
_discovered = False


def register_plugin(plugin: Plugin) -> Plugin:
    """Register ``plugin`` (replacing one of the same name); returns it for use as a decorator target."""
    with _lock:
        _registered[plugin.name] = plugin
    return plugin


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _registered:
            continue
        try:
            plugin = ep.load()
        except Exception:  # a plugin whose framework is absent simply does not apply
            continue
        with _lock:
            _registered.setdefault(plugin.name, plugin)
    _discovered = True


def registered_plugins() -> dict[str, Plugin]:
    """Every known plugin by framework name (entry points loaded on first use)."""
    _discover()
    return dict(_registered)


def plugin_for(team: Any) -> Plugin:
    """The plugin that recognises ``team``; ``PluginNotFound`` names the type and the plugins tried."""
    plugins = registered_plugins()
    for plugin in plugins.values():
        try:
            if plugin.matches(team):
                return plugin
        except Exception:
            continue
    kind = f"{type(team).__module__}.{type(team).__qualname__}"
    if callable(team) and not isinstance(team, type):  # a factory object: tracing calls functions, not objects
        hint = (f"it is callable: if it builds the team, trace a function that calls it, e.g. "
                f"agentracer.trace(lambda: {type(team).__name__.lower()}())")
    else:
        hint = "install the matching extra, e.g. pip install 'agentracer[autogen]'"
    raise PluginNotFound(f"no agentracer plugin recognises a {kind}; known plugins: {sorted(plugins) or 'none'} "
                         f"({hint})")


def plugin_named(name: str) -> Plugin:
    """The plugin registered under ``name``."""
    plugins = registered_plugins()
    if name not in plugins:
        raise PluginNotFound(f"no plugin named {name!r}; known: {sorted(plugins)}")
    return plugins[name]


def uninstrument() -> None:
    """Remove the hooks of every plugin that was loaded (a run still going records nothing more: a warning says so)."""
    from .record import mark_runs_unhooked

    going = mark_runs_unhooked()
    if going:
        warnings.warn(f"agentracer.uninstrument() with {going} traced run(s) still going: they record nothing more "
                      "from here on (each says so in its metadata['unhooked'])", RuntimeWarning, stacklevel=2)
    with _lock:
        plugins = list(_registered.values())
    for plugin in plugins:
        plugin.uninstrument()


def team_kind(plugin: Plugin, team: Any) -> str:
    """The kind of ``team`` that a replay of its runs must be of (``Plugin.team_kind``, else its class name)."""
    named = getattr(plugin, "team_kind", None)
    return str(named(team)) if named is not None else type(team).__qualname__


def why_not_replaceable(trajectory: Trajectory, step: int) -> str | None:
    """Why a replay of ``trajectory`` cannot put any action at ``step`` (its framework makes that step from earlier
    ones, with no model call or tool a replay stands in for), as its plugin says; None when it can, or when no plugin
    of its framework is installed (the replay itself then says)."""
    if not trajectory.framework:
        return None
    try:
        plugin = plugin_named(trajectory.framework)
    except PluginNotFound:
        return None
    check = getattr(plugin, "why_not_replaceable", None)
    return check(trajectory, step) if check is not None else None
