"""A registry of named plug-ins: mechanisms, market-maker strategies, collective rules, ...

Each registry starts from an explicit list of mercat's own members (no import-time magic),
in the order that listings and documentation follow; every member carries a `name`. It is
open: `register()` adds a member from Python, and the installed distributions' entry points
in the registry's group (`mercat.plugins.GROUPS`) add theirs, imported only when their name
is asked for. `resolve()` also takes `module:Class` (the command line and scenario files use
it; the marketplace node uses `get`, which never imports a module a caller names).

An unknown name raises `UnknownNameError`, whose message lists the known ones; a plug-in of
the wrong kind, or one whose name is taken, raises `PluginError`.
"""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

from mercat import plugins
from mercat.errors import PluginError, UnknownNameError

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
"""What a plug-in name may look like: no spaces, no `:` (that marks a module:Class)."""


class ClassRegistry(Generic[T]):
    """Members by their `name`, for `--mechanism NAME`, `--strategy NAME` and the like.

    `members` are mercat's own, in order. `group` is the entry-point group plug-ins declare
    themselves in (None: no entry points). `base` is the class (or classes) every member
    must derive from; with `instances=True` a member may also be an instance of it (the
    collective rules list their four built-ins as configured objects).
    """

    def __init__(
        self,
        kind: str,
        members: tuple[T, ...],
        *,
        group: str | None = None,
        base: type | tuple[type, ...] | None = None,
        instances: bool = False,
    ) -> None:
        names = [m.name for m in members]  # type: ignore[attr-defined]
        if len(set(names)) != len(names):
            raise ValueError(f"{kind} names must be unique, got {names}")
        self.kind = kind
        self.defaults = tuple(members)
        self.group = group
        self.base = base
        self.instances = instances
        self._registered: dict[str, T] = {}

    # --- adding members ---------------------------------------------------------------------

    def register(self, member: T, *, replace: bool = False) -> T:
        """Add a member (usable as a class decorator). A name mercat already has, or one
        registered before, is refused unless `replace` (which never replaces a built-in)."""
        name = self._check(member, f"register({member!r})")
        builtin = {m.name for m in self.defaults}  # type: ignore[attr-defined]
        if name in builtin:
            raise PluginError(f"{self.kind} {name!r} is one of mercat's own; choose another name")
        if name in self._registered and not replace and self._registered[name] is not member:
            raise PluginError(f"{self.kind} {name!r} is already registered")
        self._registered[name] = member
        return member

    def unregister(self, name: str) -> None:
        """Remove a member added by `register` (mercat's own and entry points stay)."""
        self._registered.pop(name, None)

    # --- looking members up -----------------------------------------------------------------

    @property
    def members(self) -> tuple[T, ...]:
        """Every member, loaded: mercat's own, the registered ones, then the entry points."""
        return tuple(self.by_name().values())

    def _entry_points(self) -> dict[str, Any]:
        if self.group is None:
            return {}
        found = {ep.name: ep for ep in plugins.entry_points(self.group)}
        taken = {m.name for m in self.defaults} | set(self._registered)  # type: ignore[attr-defined]
        for name, ep in found.items():
            if name in taken:
                raise PluginError(
                    f"{plugins.origin(ep)} reuses the name of {self.kind} {name!r}, which "
                    "mercat already has; rename the entry point"
                )
        return found

    def names(self) -> list[str]:
        """Every name, in order; entry points are listed without importing them."""
        own = [m.name for m in self.defaults]  # type: ignore[attr-defined]
        return [*own, *self._registered, *self._entry_points()]

    def by_name(self) -> dict[str, T]:
        """Every member by name, in order (entry points imported)."""
        return {name: self.get(name) for name in self.names()}

    def get(self, name: str) -> T:
        """The member called `name`; `UnknownNameError` lists the known ones."""
        for member in self.defaults:
            if member.name == name:  # type: ignore[attr-defined]
                return member
        if name in self._registered:
            return self._registered[name]
        ep = self._entry_points().get(name)
        if ep is None:
            raise UnknownNameError(self.kind, name, self.names())
        member = plugins.load_entry_point(ep)
        found = self._check(member, plugins.origin(ep))
        if found != name:
            raise PluginError(f"{plugins.origin(ep)} names a {self.kind} called {found!r}")
        return member

    def resolve(self, name: str) -> T:
        """`get`, or the object a `module:Class` reference names (checked, not registered)."""
        if not plugins.is_reference(name):
            return self.get(name)
        member = plugins.import_object(name, self.kind)
        self._check(member, name)
        return member

    def create(self, name: str, **options: Any) -> T:
        """An instance of the member called `name`, built with its options."""
        return self.instantiate(self.get(name), options)

    def instantiate(self, member: Any, options: dict[str, Any]) -> Any:
        """`member` built with `options`; a member that is already an instance takes none."""
        if isinstance(member, type):
            return member(**options)
        if options:
            raise PluginError(
                f"{self.kind} {member.name!r} takes no options, got {', '.join(sorted(options))}"
            )
        return member

    def _check(self, member: object, where: str) -> str:
        """The member's name, after checking that it is of this registry's kind."""
        base = self.base
        if base is not None:
            ok = isinstance(member, type) and issubclass(member, base)
            if not ok and self.instances:
                ok = isinstance(member, base)
            if not ok:
                wanted = (
                    base.__name__
                    if isinstance(base, type)
                    else " or ".join(b.__name__ for b in base)
                )
                raise PluginError(f"{where}: not a {self.kind} (expected a {wanted})")
        name = getattr(member, "name", None)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise PluginError(f"{where}: a {self.kind} needs a `name` without spaces or ':'")
        return name
