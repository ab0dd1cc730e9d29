"""A small generic registry so datasets, backends and experiments register by name.

A user adds a dataset (or backend, experiment) in their own module with the decorator;
nothing in the core needs editing.
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

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def unknown_message(self, name: str) -> str:
        known = ", ".join(sorted(self._items)) or "none"
        return f"unknown {self.kind} {name!r} (known: {known})"

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise JudgegapError(self.unknown_message(name)) from None

    def validate(self, name: str) -> str:
        """``name`` if registered, else ValueError (for pydantic validators)."""
        if name not in self._items:
            raise ValueError(self.unknown_message(name))
        return name

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
