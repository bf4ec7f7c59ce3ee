"""A registry of named classes: mechanisms, market-maker strategies.

Each registry lists its classes explicitly (no import-time magic), in the order that
listings and documentation follow; every class carries a `name` attribute. An unknown name
raises `UnknownNameError`, whose message lists the known ones.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from mercat.errors import UnknownNameError

T = TypeVar("T")


class ClassRegistry(Generic[T]):
    """Classes by their `name`, for `--mechanism NAME`, `--strategy NAME` and the like."""

    def __init__(self, kind: str, members: tuple[type[T], ...]) -> None:
        names = [m.name for m in members]  # type: ignore[attr-defined]
        if len(set(names)) != len(names):
            raise ValueError(f"{kind} names must be unique, got {names}")
        self.kind = kind
        self.members = members

    def by_name(self) -> dict[str, type[T]]:
        """Every registered class by name, in registration order."""
        return {m.name: m for m in self.members}  # type: ignore[attr-defined]

    def names(self) -> list[str]:
        return list(self.by_name())

    def get(self, name: str) -> type[T]:
        """The class called `name`; `UnknownNameError` lists the known ones."""
        found = self.by_name().get(name)
        if found is None:
            raise UnknownNameError(self.kind, name, self.names())
        return found

    def create(self, name: str, **options: Any) -> T:
        """An instance of the class called `name`, built with its options."""
        return self.get(name)(**options)
