"""The hooks: patches on every client class, installed on import, removed exactly."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
import textwrap

import agentracer
import wrapt
from ag_helpers import CountingClient, counting
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.teams._group_chat._base_group_chat_manager import BaseGroupChatManager
from autogen_agentchat.teams._group_chat._chat_agent_container import ChatAgentContainer
from autogen_core.models import ChatCompletionClient
from autogen_core.tools import BaseTool
from autogen_ext.models.openai import OpenAIChatCompletionClient
from autogen_ext.models.replay import ReplayChatCompletionClient

from agentracer_plugins.autogen import HOOKS, plugin

PATCHED = [(ReplayChatCompletionClient, "create"), (ReplayChatCompletionClient, "create_stream"),
           (CountingClient, "create"), (CountingClient, "create_stream"),
           (ChatAgentContainer, "handle_request"), (ChatAgentContainer, "_log_message"), (BaseTool, "run_json")]


def _own(cls, name):
    return cls.__dict__.get(name)


def _patches(fn, original) -> bool:
    """``fn`` replaces ``original`` and keeps what callers inspect: name, handler attributes, async-ness."""
    return (fn is not original and getattr(fn, "__wrapped__", None) is original
            and fn.__name__ == original.__name__
            and inspect.iscoroutinefunction(fn) == inspect.iscoroutinefunction(original)
            and inspect.isasyncgenfunction(fn) == inspect.isasyncgenfunction(original)
            and all(getattr(fn, k, None) is v for k, v in vars(original).items() if k != "__wrapped__"))


def test_uninstrument_restores_the_original_functions_and_instrument_is_idempotent():
    agentracer.uninstrument()
    originals = {key: _own(*key) for key in PATCHED}
    assert not any(isinstance(fn, wrapt.ObjectProxy) for fn in originals.values())
    assert "publish_message" not in BaseGroupChatManager.__dict__
    assert "__init_subclass__" not in ChatCompletionClient.__dict__

    filters_before = list(logging.getLogger("autogen_core").filters)
    plugin.instrument()
    plugin.instrument()
    assert len(logging.getLogger("autogen_core").filters) == len(filters_before) + 1
    for key, original in originals.items():
        assert _patches(_own(*key), original), key
    assert getattr(ChatAgentContainer.handle_request, "is_message_handler", False)  # AutoGen still routes to it
    inherited = BaseGroupChatManager.__mro__[1].publish_message
    assert _patches(BaseGroupChatManager.__dict__["publish_message"], inherited)
    client_base = OpenAIChatCompletionClient.__mro__[1]
    assert _patches(_own(client_base, "create"), client_base.__dict__["create"].__wrapped__)
    assert HOOKS.patched()[(ReplayChatCompletionClient, "create")] is originals[
        (ReplayChatCompletionClient, "create")]

    agentracer.uninstrument()
    for key, original in originals.items():
        assert _own(*key) is original, key
    assert "publish_message" not in BaseGroupChatManager.__dict__
    assert "on_message_impl" not in BaseGroupChatManager.__dict__
    assert "__init_subclass__" not in ChatCompletionClient.__dict__
    assert HOOKS.patched() == {}
    assert logging.getLogger("autogen_core").filters == filters_before  # the replay-error filter is off again
    # a traced run puts them back
    traj = agentracer.trace(lambda: AssistantAgent("a", model_client=counting(["hi"]))).run("x")
    assert traj.steps[-1].content == "hi" and _patches(_own(CountingClient, "create"), originals[
        (CountingClient, "create")])


def test_a_client_class_defined_after_instrumenting_is_wrapped_too():
    plugin.instrument()

    class LateClient(ReplayChatCompletionClient):
        async def create(self, *args, **kwargs):
            return await super().create(*args, **kwargs)

    assert "agentracer_plugins" in LateClient.__dict__["create"].__code__.co_filename
    traj = agentracer.trace(lambda: AssistantAgent("a", model_client=LateClient(["late"]))).run("x")
    assert len(traj.steps[1].model_calls) == 1  # the subclass and its parent make one recorded call

    agentracer.uninstrument()

    class AfterClient(ReplayChatCompletionClient):
        async def create(self, *args, **kwargs):
            return await super().create(*args, **kwargs)

    assert "agentracer_plugins" not in AfterClient.__dict__["create"].__code__.co_filename
    assert "agentracer_plugins" not in LateClient.__dict__["create"].__code__.co_filename


async def test_untraced_runs_are_untouched_while_instrumented():
    plugin.instrument()
    agent = AssistantAgent("a", model_client=counting(["plain"]))
    result = await agent.run(task="x")
    assert result.messages[-1].content == "plain" and CountingClient.live == 1


def test_import_order_does_not_matter():
    """Instrument before AutoGen is imported: the post-import hooks patch it when it arrives."""
    code = textwrap.dedent("""
        import sys
        from agentracer_plugins.autogen import instrument
        instrument()
        assert "autogen_core" not in sys.modules, "instrumenting imported autogen"
        from autogen_ext.models.openai import OpenAIChatCompletionClient
        from autogen_agentchat.teams._group_chat._chat_agent_container import ChatAgentContainer
        base = OpenAIChatCompletionClient.__mro__[1]
        ours = lambda fn: "agentracer_plugins" in fn.__code__.co_filename
        assert ours(base.__dict__["create"]) and ours(ChatAgentContainer.__dict__["handle_request"])
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_speaker_selections_that_ask_no_model_are_left_as_they_are_and_a_subclass_overriding_one_is_wrapped():
    from autogen_agentchat.teams._group_chat._round_robin_group_chat import RoundRobinGroupChatManager
    from autogen_agentchat.teams._group_chat._selector_group_chat import SelectorGroupChatManager
    from autogen_agentchat.teams._group_chat._swarm_group_chat import SwarmGroupChatManager

    agentracer.uninstrument()
    originals = {cls: _own(cls, "select_speaker") for cls in (RoundRobinGroupChatManager, SwarmGroupChatManager,
                                                              SelectorGroupChatManager)}
    plugin.instrument()
    for cls in (RoundRobinGroupChatManager, SwarmGroupChatManager):  # turn order, handoffs: no model to attribute
        assert _own(cls, "select_speaker") is originals[cls] and (cls, "select_speaker") not in HOOKS.patched()
    assert _patches(_own(SelectorGroupChatManager, "select_speaker"), originals[SelectorGroupChatManager])

    class AskingManager(RoundRobinGroupChatManager):  # a user's selection may ask a model: it is the manager's call
        async def select_speaker(self, thread):
            return await super().select_speaker(thread)

    assert "agentracer_plugins" in AskingManager.__dict__["select_speaker"].__code__.co_filename
    agentracer.uninstrument()
    assert _own(RoundRobinGroupChatManager, "select_speaker") is originals[RoundRobinGroupChatManager]
    assert "agentracer_plugins" not in AskingManager.__dict__["select_speaker"].__code__.co_filename
