"""agentracer plugin for AutoGen (autogen-agentchat/-core/-ext >= 0.7).

``agentracer.trace`` picks it for any ``BaseGroupChat`` (RoundRobin, Selector, Swarm, Magentic-One) or
single ``BaseChatAgent``: each message and event of ``team.run_stream`` becomes a step, each model call
(``ChatCompletionClient.create``/``create_stream`` of any client) goes through the recorder, and replay
from step t serves the prefix from the recording. Importing this package does not import AutoGen.
"""

from __future__ import annotations

from agentracer import register_plugin

from .hooks import HOOKS
from .plugin import AutoGenPlugin, agent_info

plugin = register_plugin(AutoGenPlugin())


def instrument() -> None:
    """Install the AutoGen hooks now (``agentracer.trace`` does this on first run)."""
    plugin.instrument()


def uninstrument() -> None:
    """Remove the AutoGen hooks, restoring the original functions."""
    plugin.uninstrument()


__all__ = ["HOOKS", "AutoGenPlugin", "agent_info", "instrument", "plugin", "uninstrument"]
