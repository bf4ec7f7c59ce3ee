"""A request's `workload` string: which workload, with which parameters.

The string travels inside a signed request (`RequestTerms.workload`, up to 256 printable
characters), so it is small and plain: `NAME` or `NAME:KEY=VALUE,KEY=VALUE`, e.g.
`train-logreg:steps=200,lr=0.5`. `parse` checks it against the workload's declared
parameters (`Param`: a type and bounds) and fills in the defaults, so every replica and
every oracle that re-executes the task reads the same parameters from the same string.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from mercat.errors import InvalidWorkloadError

_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class Param:
    """One parameter: integer or real, its default and inclusive bounds."""

    kind: type
    default: Any
    low: float
    high: float
    help: str = ""

    def read(self, key: str, text: str) -> int | float:
        try:
            value: int | float = int(text) if self.kind is int else float(text)
        except ValueError:
            kind = "an integer" if self.kind is int else "a number"
            raise InvalidWorkloadError(
                f"workload parameter {key} must be {kind}, got {text!r}"
            ) from None
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise InvalidWorkloadError(
                f"workload parameter {key} must lie in [{self.low:g}, {self.high:g}], got {text}"
            )
        return value


@dataclass(frozen=True)
class WorkloadSpec:
    """A parsed workload string: the workload's name and every parameter's value."""

    name: str
    params: dict[str, int | float]

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def text(self) -> str:
        """The canonical string of this spec (parameters that differ from the defaults are
        written, sorted): `parse(spec.text()) == spec`."""
        from mercat.workloads.catalog import WORKLOADS

        defaults = WORKLOADS[self.name].params
        changed = [f"{k}={v:g}" for k, v in sorted(self.params.items()) if v != defaults[k].default]
        return self.name + (":" + ",".join(changed) if changed else "")


def parse(text: str) -> WorkloadSpec:
    """The spec of a workload string (module docstring); `InvalidWorkloadError` names what
    is wrong with it: an unknown workload or parameter, a value out of bounds."""
    from mercat.workloads.catalog import WORKLOADS

    if not isinstance(text, str) or not text or len(text) > 256:
        raise InvalidWorkloadError("a workload is NAME or NAME:KEY=VALUE,... (up to 256 chars)")
    name, _, rest = text.partition(":")
    if not _NAME.fullmatch(name) or name not in WORKLOADS:
        raise InvalidWorkloadError(
            f"unknown workload {name[:40]!r}; known: {', '.join(sorted(WORKLOADS))}"
        )
    declared = WORKLOADS[name].params
    values: dict[str, int | float] = {k: p.default for k, p in declared.items()}
    seen: set[str] = set()
    for item in rest.split(",") if rest else []:
        key, sep, value = item.partition("=")
        if not sep or not _KEY.fullmatch(key):
            raise InvalidWorkloadError(f"workload parameter {item[:40]!r} is not KEY=VALUE")
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise InvalidWorkloadError(f"{name} takes no parameter {key!r} (it takes: {known})")
        if key in seen:
            raise InvalidWorkloadError(f"workload parameter {key} is given twice")
        seen.add(key)
        values[key] = declared[key].read(key, value)
    return WorkloadSpec(name, values)
