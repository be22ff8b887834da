"""The patches: installed once, through post-import hooks, version-guarded, and removed exactly."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import agentracer
import pytest
import wrapt
from agentracer import AgentracerError
from camel.agents import ChatAgent, chat_agent
from camel.models.base_model import BaseModelBackend
from camel.societies import RolePlaying
from camel.societies.workforce import Workforce
from camel.societies.workforce.worker import Worker
from camel.toolkits import function_tool
from camel_teams import ROLE_TASK, Ledger, make_calculator, make_role_play, make_workforce

from agentracer_plugins.camel import Configured, hooks, plugin

PATCHED = [(BaseModelBackend, "run"), (BaseModelBackend, "arun"), (ChatAgent, "step"),
           (ChatAgent, "_get_model_response"), (ChatAgent, "_aget_model_response"),
           (ChatAgent, "_get_context_with_summarization"), (ChatAgent, "_get_context_with_summarization_async"),
           (ChatAgent, "_execute_tool"), (ChatAgent, "_aexecute_tool"), (ChatAgent, "_record_tool_calling"),
           (Worker, "_process_single_task")]


def test_uninstrument_restores_the_exact_originals(ledger: Ledger) -> None:
    plugin.uninstrument()
    originals = {key: vars(key[0])[key[1]] for key in PATCHED}
    assert not any(isinstance(f, wrapt.FunctionWrapper) for f in originals.values())
    executor, pools = function_tool._SYNC_TOOL_EXECUTOR, chat_agent.concurrent

    plugin.instrument()
    plugin.instrument()  # idempotent: wrapped once
    for (cls, name), original in originals.items():
        current = vars(cls)[name]
        assert isinstance(current, wrapt.FunctionWrapper) and current.__wrapped__ is original, name
    assert "ChatAgent.astep" not in hooks.instrumented_names()  # CAMEL walks the stack on every step: no frame of ours there
    assert function_tool._SYNC_TOOL_EXECUTOR is not executor and function_tool._SYNC_TOOL_EXECUTOR._executor is executor
    assert chat_agent.concurrent is not pools and chat_agent.concurrent.futures.TimeoutError is pools.futures.TimeoutError
    agentracer.trace(make_calculator, ledger).run("Please add 1 and 2")

    agentracer.uninstrument()
    for (cls, name), original in originals.items():
        assert vars(cls)[name] is original, name
    assert function_tool._SYNC_TOOL_EXECUTOR is executor and chat_agent.concurrent is pools
    assert not hooks.instrumented()
    # and a traced run puts them back on
    traj = agentracer.trace(make_calculator, ledger).run("Please add 1 and 2")
    assert len(traj.steps) == 4 and hooks.instrumented()


def test_instrument_before_camel_is_imported() -> None:
    code = textwrap.dedent("""
        import sys
        from agentracer_plugins.camel import plugin
        plugin.instrument()
        assert "camel.agents.chat_agent" not in sys.modules, "instrument imported camel"
        import wrapt
        from camel.agents import ChatAgent
        from camel.models.base_model import BaseModelBackend
        assert isinstance(vars(ChatAgent)["step"], wrapt.FunctionWrapper)
        assert isinstance(vars(BaseModelBackend)["run"], wrapt.FunctionWrapper)
        plugin.uninstrument()
        assert not isinstance(vars(ChatAgent)["step"], wrapt.FunctionWrapper)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


def test_version_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin.uninstrument()
    monkeypatch.setattr(hooks, "camel_version", lambda: (0, 2, 80))
    with pytest.raises(AgentracerError, match=r"0\.2\.80 is too old"):
        plugin.instrument()
    assert not hooks.instrumented()


def test_plugin_is_found_by_team_type(ledger: Ledger) -> None:
    calculator = make_calculator(ledger)
    assert agentracer.plugin_for(calculator) is plugin
    assert agentracer.plugin_for(calculator.team) is plugin
    assert agentracer.plugin_for(make_role_play(ledger).team) is plugin
    assert agentracer.plugin_for(make_workforce(ledger)) is plugin
    assert isinstance(calculator, Configured) and isinstance(make_role_play(ledger).team, RolePlaying)
    assert isinstance(make_workforce(ledger), Workforce)
    assert not plugin.matches(object()) and not plugin.matches("RolePlaying")


def test_camels_stack_walk_meets_no_frame_of_ours_but_the_entry_and_the_loop(ledger: Ledger, monkeypatch) -> None:
    """CAMEL runs ``inspect.stack()`` on every agent step: each frame between the user and the agent costs that
    step time, so the traced path adds only ``TracedTeam.run`` (in place of ``asyncio.run``) and the plugin's
    round loop (in place of the user's)."""
    seen: list[list[str]] = []
    walk = ChatAgent._is_called_from_registered_toolkit

    def spy(self: ChatAgent) -> bool:
        frame, ours = sys._getframe(1), []
        while frame is not None:
            if frame.f_globals.get("__name__", "").startswith("agentracer"):
                ours.append(f"{frame.f_globals['__name__']}.{frame.f_code.co_name}")
            frame = frame.f_back
        seen.append(ours)
        return walk(self)

    monkeypatch.setattr(ChatAgent, "_is_called_from_registered_toolkit", spy)
    traj = agentracer.trace(make_role_play, ledger, step_timeout=None).run(ROLE_TASK)
    assert len(seen) == len(traj.steps) > 0  # one walk per agent step
    assert all(ours == ["agentracer_plugins.camel.runner.run_role_playing", "agentracer.team.run"] for ours in seen)
