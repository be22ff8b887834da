"""Reversible wrapt patches on class attributes, installed now or when a module is first imported.

``PatchSet`` keeps the exact original of every attribute it wraps, so ``remove()`` restores the framework
to its unpatched state; ``apply`` is idempotent. ``on_import(module, fn)`` runs ``fn`` when ``module`` is
imported (at once if it already is): import order never matters. ``PluginHooks`` is a plugin's switch over
both: post-import hooks that patch only while it is installed, all undone by ``remove()``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

import wrapt

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]

_registered_hooks: set[tuple[str, int]] = set()
_hooks_lock = threading.Lock()


class PatchSet:
    """Wrapped class attributes and their originals."""

    def __init__(self) -> None:
        self._originals: dict[tuple[type, str], Any] = {}
        self._lock = threading.RLock()

    def apply(self, cls: type, name: str, wrapper: Wrapper) -> bool:
        """Wrap ``cls.name`` (defined on ``cls`` itself) with ``wrapper`` once; False when already wrapped."""
        with self._lock:
            if (cls, name) in self._originals:
                return False
            original = cls.__dict__.get(name)
            if original is None:
                raise AttributeError(f"{cls.__module__}.{cls.__qualname__} defines no {name!r} to instrument")
            self._originals[(cls, name)] = original
            setattr(cls, name, wrapt.FunctionWrapper(original, wrapper))
            return True

    def is_patched(self, cls: type, name: str) -> bool:
        return (cls, name) in self._originals

    def remove(self) -> None:
        """Put every original back."""
        with self._lock:
            for (cls, name), original in self._originals.items():
                setattr(cls, name, original)
            self._originals.clear()

    def __len__(self) -> int:
        return len(self._originals)


def on_import(module: str, fn: Callable[[Any], None]) -> None:
    """Call ``fn(module_object)`` when ``module`` is imported, or now if it already is (registered once)."""
    if module in sys.modules:
        fn(sys.modules[module])
        return
    key = (module, id(fn))
    with _hooks_lock:
        if key in _registered_hooks:
            return
        _registered_hooks.add(key)
    wrapt.register_post_import_hook(fn, module)


class PluginHooks:
    """A plugin's patches behind an on/off switch: hooks registered by ``install`` patch only while it is on."""

    def __init__(self) -> None:
        self._patches = PatchSet()
        self._lock = threading.Lock()
        self.enabled = False

    def install(self, hooks: Mapping[str, Callable[[Any], None]]) -> None:
        """Switch on and run each ``hooks[module]`` when that module is imported (now if it is)."""
        with self._lock:
            self.enabled = True
            for module, hook in hooks.items():
                on_import(module, hook)

    def remove(self) -> None:
        """Switch off and restore every original."""
        with self._lock:
            self.enabled = False
            self._patches.remove()

    def apply(self, cls: type, name: str, wrapper: Wrapper) -> None:
        """Wrap ``cls.name`` while switched on (idempotent); nothing when off."""
        if self.enabled:
            self._patches.apply(cls, name, wrapper)

    def names(self) -> list[str]:
        """The wrapped attributes as ``Class.name``."""
        return [f"{cls.__name__}.{name}" for (cls, name) in self._patches._originals]
