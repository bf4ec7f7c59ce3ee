"""Plug-ins: code outside mercat that mercat finds by name.

A plug-in reaches mercat in one of three ways:

1. **An entry point** of an installed distribution, in the group of its kind. A package
   declares it in its pyproject.toml:

       [project.entry-points."mercat.mechanisms"]
       fair-share = "mypkg.mechanisms:FairShare"

   The entry point's name is the plug-in's name (`mercat clear --mechanism fair-share`) and
   must equal the class's `name`. Entry points are listed without importing anything; a
   plug-in's module is imported the first time its name is asked for.
2. **`module:Class`** on the command line or in a scenario file
   (`mercat clear --mechanism mypkg.mechanisms:FairShare`): imported on the spot, nothing
   installed. Only the command line and scenario files accept it; the marketplace node never
   imports a module a request names.
3. **An explicit `register()`** on the kind's registry, from Python
   (`mercat.clearing.registry.register(FairShare)`).

`GROUPS` lists the kinds and their entry-point groups. A plug-in that fails to import, or
whose name clashes with one mercat already has, is a `PluginError` naming the plug-in and
where it came from, raised when that name (or the whole list) is asked for.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from functools import cache
from typing import Any

from mercat.errors import PluginError

GROUPS: dict[str, str] = {
    "mechanism": "mercat.mechanisms",
    "market-maker strategy": "mercat.market_makers",
    "collective rule": "mercat.collective_rules",
    "requester strategy": "mercat.requester_strategies",
    "provider strategy": "mercat.provider_strategies",
    "collective adversary": "mercat.collective_adversaries",
    "experiment": "mercat.experiments",
    "simulation": "mercat.simulations",
}
"""Plug-in kinds (as registries and error messages name them) and their entry-point groups."""


@cache
def entry_points(group: str) -> tuple[importlib.metadata.EntryPoint, ...]:
    """The entry points of `group` in the installed distributions, by name (cached; `refresh`
    forgets the cache after the environment changed)."""
    found = importlib.metadata.entry_points(group=group)
    return tuple(sorted(found, key=lambda ep: ep.name))


def refresh() -> None:
    """Forget the entry points and plug-ins seen so far (after installing a package, or after
    putting a directory on sys.path, in a running process)."""
    entry_points.cache_clear()
    load_entry_point.cache_clear()
    importlib.invalidate_caches()


def origin(ep: importlib.metadata.EntryPoint) -> str:
    """Where an entry point comes from, for messages: its target and distribution."""
    dist = getattr(ep, "dist", None)
    source = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "unknown"
    return f"entry point {ep.name} = {ep.value} in group {ep.group} (distribution {source})"


@cache
def load_entry_point(ep: importlib.metadata.EntryPoint) -> Any:
    """The object an entry point names, imported once; a failure is a `PluginError`."""
    try:
        return ep.load()
    except Exception as exc:  # any import-time failure of foreign code
        raise PluginError(f"{origin(ep)} failed to load: {type(exc).__name__}: {exc}") from exc


def import_object(reference: str, kind: str) -> Any:
    """The object `module:qualname` names (`mypkg.mechanisms:FairShare`)."""
    module_name, sep, qualname = reference.partition(":")
    if not sep or not module_name or not qualname:
        raise PluginError(f"{kind} {reference!r}: expected module:Class")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(
            f"{kind} {reference!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PluginError(
                f"{kind} {reference!r}: module {module_name!r} has no {qualname!r}"
            ) from None
    return target


def is_reference(name: str) -> bool:
    """Whether a name is a `module:Class` reference rather than a registered name."""
    return ":" in name
