"""What the long-running participant commands (`mercat agent`, `mercat oracle`,
`mercat request load`) share: amounts in tokens read exactly, `KEY=VALUE` resources, and a
life that ends cleanly on SIGTERM or Ctrl-C (the work in hand stops, the command prints
what it did and exits 0)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

from mercat.errors import InvalidParameterError

T = TypeVar("T")


def base_units(tokens: float | str, unit: int, what: str) -> int:
    """`tokens` in base units, exactly: refused if it is negative or finer than one unit."""
    try:
        exact = Fraction(str(tokens)) * unit
    except (ValueError, ZeroDivisionError):
        raise InvalidParameterError(f"{what} must be a number of tokens, got {tokens!r}") from None
    if exact < 0 or exact.denominator != 1:
        raise InvalidParameterError(
            f"{what} must be a non-negative number of tokens in steps of 1/{unit}, got {tokens}"
        )
    return int(exact)


def resources(pairs: list[str], what: str, unit: int | None = None) -> dict[str, int]:
    """`KEY=VALUE` pairs as {resource: integer} (VALUE in tokens when `unit` is given)."""
    out: dict[str, int] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidParameterError(f"{what} must look like RESOURCE=AMOUNT, got {pair!r}")
        if key in out:
            raise InvalidParameterError(f"{what} names {key!r} twice")
        if unit is not None:
            out[key] = base_units(value, unit, f"{what} {key}")
            continue
        try:
            out[key] = int(value)
        except ValueError:
            raise InvalidParameterError(f"{what} {key} must be an integer, got {value!r}") from None
    return out


def run_until_stopped(work: Callable[[threading.Event], T]) -> T:
    """`work(stop)` in this thread, `stop` set by SIGTERM or SIGINT."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return work(stop)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def ready(line: str) -> None:
    """The line a launcher waits for on standard output."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
