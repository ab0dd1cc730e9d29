"""A small generic registry so datasets, backends and experiments register by name.

A user adds a dataset (or backend, experiment) in their own module with the decorator;
nothing in the core needs editing. Built-ins are registered *lazily* as ``"module:attr"``
strings (as lm-evaluation-harness registers its models): their names are known for
``--help`` and config validation, and the module is imported on first ``get``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from judgegap.errors import JudgegapError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object mapping with a helpful error for unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise JudgegapError(f"{self.kind} {name!r} is already registered"
                                f" (by {getattr(self._items[name], '__module__', '?')}); choose another name")
        self._items[name] = obj

    def add_lazy(self, name: str, target: str) -> None:
        """Register ``name`` as ``"module:attr"``, imported when first needed."""
        if name in self._items or (name in self._lazy and self._lazy[name] != target):
            raise JudgegapError(f"{self.kind} {name!r} is already registered; choose another name")
        self._lazy[name] = target

    def _resolve(self, name: str) -> None:
        target = self._lazy.pop(name, None)
        if target is None:
            return
        import importlib

        module, _, attr = target.partition(":")
        mod = importlib.import_module(module)  # registering on import is fine: add() accepts the same object
        if name not in self._items:
            self._items[name] = getattr(mod, attr)

    def unknown_message(self, name: str) -> str:
        known = ", ".join(self.names()) or "none"
        return f"unknown {self.kind} {name!r} (known: {known})"

    def get(self, name: str) -> T:
        self._resolve(name)
        try:
            return self._items[name]
        except KeyError:
            raise JudgegapError(self.unknown_message(name)) from None

    def validate(self, name: str) -> str:
        """``name`` if registered, else ValueError (for pydantic validators)."""
        if name not in self._items and name not in self._lazy:
            raise ValueError(self.unknown_message(name))
        return name

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self._lazy))

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
