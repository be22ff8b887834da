"""The MetaGPT hooks: installed on the classes, idempotent, pass-through without a run, removed exactly."""

import asyncio
import sys
import textwrap

import wrapt
from metagpt.environment.base_env import Environment
from metagpt.provider.base_llm import BaseLLM
from metagpt.roles.role import Role

from agentracer_plugins import metagpt as mg_plugin
from agentracer_plugins.metagpt.patching import on_import
from agentracer_plugins.metagpt.testing import ScriptedLLM

TARGETS = [(Environment, "publish_message"), (Role, "react"), (Role, "_think"), (Role, "run"), (BaseLLM, "aask"),
           (BaseLLM, "_update_costs")]


def test_instrument_wraps_each_target_once_and_uninstrument_restores_the_originals():
    mg_plugin.uninstrument()
    originals = {(cls, name): cls.__dict__[name] for cls, name in TARGETS}
    assert not any(isinstance(f, wrapt.FunctionWrapper) for f in originals.values())

    mg_plugin.instrument()
    mg_plugin.instrument()  # idempotent: still one wrapper around the original
    for cls, name in TARGETS:
        wrapper = cls.__dict__[name]
        assert isinstance(wrapper, wrapt.FunctionWrapper), f"{cls.__name__}.{name} not wrapped"
        assert wrapper.__wrapped__ is originals[(cls, name)]
    assert sorted(mg_plugin.installed()) == ["BaseLLM._update_costs", "BaseLLM.aask",
                                             "Environment.publish_message", "Role._think", "Role.react", "Role.run"]

    mg_plugin.uninstrument()
    for cls, name in TARGETS:
        assert cls.__dict__[name] is originals[(cls, name)]
    assert mg_plugin.installed() == []
    mg_plugin.instrument()


def test_hooks_pass_through_without_an_active_run():
    mg_plugin.instrument()
    llm = ScriptedLLM(["first", "second"])
    assert asyncio.run(llm.aask("hello")) == "first"
    assert asyncio.run(llm.aask("again", system_msgs=["be brief"])) == "second"
    assert llm.calls[1][0] == {"role": "system", "content": "be brief"}


def test_hooks_for_a_module_imported_later_are_installed_on_import(tmp_path, monkeypatch):
    (tmp_path / "late_module_for_hooks.py").write_text(textwrap.dedent("""
        class Thing:
            def greet(self):
                return "hi"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []

    def hook(module):
        seen.append(module.__name__)
        module.Thing.greet = lambda self: "patched"

    on_import("late_module_for_hooks", hook)
    assert seen == [] and "late_module_for_hooks" not in sys.modules
    import late_module_for_hooks

    assert seen == ["late_module_for_hooks"]
    assert late_module_for_hooks.Thing().greet() == "patched"


def test_instrumenting_again_reads_nothing_and_a_roles_own_think_is_hooked_again_after_removal(monkeypatch):
    """Every traced run instruments: once on, that costs nothing (MetaGPT's version, read from its package metadata,
    is read when the hooks go on). A role class's own ``_think``, hooked at its first turn, is hooked again at its
    first turn after the hooks were removed and put back."""
    from agentracer_plugins.metagpt import hooks

    class Thinker(Role):
        async def _think(self) -> bool:
            return False

    mg_plugin.uninstrument()
    read = []
    real_version = hooks.version
    monkeypatch.setattr(hooks, "version", lambda name: read.append(name) or real_version(name))
    mg_plugin.instrument()
    mg_plugin.instrument()
    assert read == ["metagpt"]
    for _ in range(2):
        hooks._hook_own_think(Thinker)
        assert isinstance(Thinker.__dict__["_think"], wrapt.FunctionWrapper)
        mg_plugin.uninstrument()
        assert not isinstance(Thinker.__dict__["_think"], wrapt.FunctionWrapper)
        mg_plugin.instrument()
    assert read == ["metagpt"] * 3
