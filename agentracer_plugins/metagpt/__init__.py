"""agentracer plugin for MetaGPT 0.8.x (``Team``, or an ``Environment`` with roles).

Every message routed by ``Environment.publish_message`` (the user's idea included) is a step, the role
whose ``react`` turn runs is its author, and every ``BaseLLM.aask`` goes through the recorder, keyed by
role and that role's call index (roles run concurrently). Replay from step t serves earlier model calls
from the recording, makes the call that produced step t return the action, and runs the rest live.
Importing this package does not import MetaGPT; ``metagpt.offline.prepare_home`` writes the config
MetaGPT needs before its first import.
"""

from __future__ import annotations

from agentracer import register_plugin

from .hooks import HOOKS, failures, installed, role_name
from .plugin import MetaGPTPlugin, MetaGPTRunError, Rounds

plugin = register_plugin(MetaGPTPlugin())


def instrument() -> None:
    """Install the MetaGPT hooks now (``agentracer.trace`` does this on first run)."""
    plugin.instrument()


def uninstrument() -> None:
    """Remove the MetaGPT hooks, restoring the original functions."""
    plugin.uninstrument()


__all__ = [
    "HOOKS", "MetaGPTPlugin", "MetaGPTRunError", "Rounds", "failures", "installed", "instrument", "plugin",
    "role_name", "uninstrument",
]
