"""Reversible patches on a class and all its subclasses, including subclasses defined later.

``ClassTreePatch(root, factories)`` replaces every method name that a class in ``root``'s subclass tree
defines itself (so a user's ``class MyClient(OpenAIChatCompletionClient)`` overriding ``create`` is patched
too) with ``factories[name](original)``, and hooks ``root.__init_subclass__`` to patch classes created
afterwards. A name ``root`` only inherits is patched on ``root`` itself. ``remove()`` puts back the exact
original functions (deleting the ones it added) and the original ``__init_subclass__``.

A factory builds the replacement from the original function (or returns the original itself: that class's method
is left as it is): a plain function (``functools.wraps`` keeps
the original's name, attributes and coroutine-ness when the replacement is itself ``async``) costs a
fraction of a generic proxy on methods called many times per turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Factory = Callable[[Callable[..., Any]], Callable[..., Any]]
_MISSING = object()


def _subclass_tree(root: type) -> list[type]:
    seen: list[type] = []
    stack = [root]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


class ClassTreePatch:
    """Patch methods ``names`` of ``root`` and every subclass that defines them (now and later)."""

    def __init__(self, root: type, factories: dict[str, Factory]) -> None:
        self.root = root
        self.names = tuple(factories)
        self.factories = factories
        self._originals: dict[tuple[type, str], Any] = {}
        self._init_subclass: Any = _MISSING
        self._lock = threading.RLock()
        self.installed = False

    def install(self) -> None:
        """Patch the tree and hook future subclasses (idempotent)."""
        with self._lock:
            if self.installed:
                return
            for cls in _subclass_tree(self.root):
                self.patch_class(cls)
            self._hook_subclasses()
            self.installed = True

    def patch_class(self, cls: type) -> None:
        """Patch the methods ``cls`` defines itself, once."""
        with self._lock:
            for name in self.names:
                original = cls.__dict__.get(name, _MISSING)
                if original is _MISSING and cls is self.root:
                    inherited = getattr(cls, name, None)
                    if callable(inherited) and (cls, name) not in self._originals:
                        self._originals[(cls, name)] = _MISSING
                        setattr(cls, name, self.factories[name](inherited))
                    continue
                if original is _MISSING or (cls, name) in self._originals or not callable(original):
                    continue
                replacement = self.factories[name](original)
                if replacement is original:  # the factory leaves this class's method as it is
                    continue
                self._originals[(cls, name)] = original
                setattr(cls, name, replacement)

    def _hook_subclasses(self) -> None:
        root = self.root
        self._init_subclass = root.__dict__.get("__init_subclass__", _MISSING)
        patch = self

        def __init_subclass__(cls: type, **kwargs: Any) -> None:  # noqa: N807 - the hook's own name
            super(root, cls).__init_subclass__(**kwargs)  # type: ignore[misc, arg-type]
            if patch.installed:
                patch.patch_class(cls)

        if self._init_subclass is not _MISSING:
            previous = self._init_subclass.__func__ if isinstance(self._init_subclass, classmethod) else None

            def __init_subclass__(cls: type, **kwargs: Any) -> None:  # noqa: N807,F811
                if previous is not None:
                    previous(cls, **kwargs)
                if patch.installed:
                    patch.patch_class(cls)

        root.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment]

    def remove(self) -> None:
        """Restore every original function and ``__init_subclass__``."""
        with self._lock:
            if not self.installed:
                return
            for (cls, name), original in self._originals.items():
                if original is _MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, original)
            self._originals.clear()
            if self._init_subclass is _MISSING:
                if "__init_subclass__" in self.root.__dict__:
                    delattr(self.root, "__init_subclass__")
            else:
                self.root.__init_subclass__ = self._init_subclass  # type: ignore[assignment]
            self._init_subclass = _MISSING
            self.installed = False

    def originals(self) -> dict[tuple[type, str], Any]:
        """The functions this patch replaced, by (class, name); inherited ones it shadowed are left out."""
        with self._lock:
            return {key: fn for key, fn in self._originals.items() if fn is not _MISSING}
