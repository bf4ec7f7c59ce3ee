"""Argument checks shared by every public entry point.

Each check returns the value (converted where that is lossless) or raises
`InvalidParameterError` with a message naming the parameter, the value and the domain.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

from mercat.errors import InvalidParameterError

Number = float | int | Fraction


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def real(name: str, value: object) -> Number:
    """A finite real number (int, float or Fraction)."""
    if not _is_real(value):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidParameterError(f"{name} must be finite, got {value!r}")
    return value  # type: ignore[return-value]


def positive(name: str, value: object) -> Number:
    """A finite number > 0."""
    v = real(name, value)
    if not v > 0:
        raise InvalidParameterError(f"{name} must be > 0, got {value!r}")
    return v


def non_negative(name: str, value: object) -> Number:
    """A finite number >= 0."""
    v = real(name, value)
    if not v >= 0:
        raise InvalidParameterError(f"{name} must be >= 0, got {value!r}")
    return v


def open_unit(name: str, value: object) -> Number:
    """A probability strictly between 0 and 1 (a target failure rate, say)."""
    v = real(name, value)
    if not 0 < v < 1:
        raise InvalidParameterError(f"{name} must lie in the open interval (0, 1), got {value!r}")
    return v


def probability(name: str, value: object) -> Number:
    """A probability in the closed interval [0, 1]."""
    v = real(name, value)
    if not 0 <= v <= 1:
        raise InvalidParameterError(f"{name} must lie in [0, 1], got {value!r}")
    return v


def integer(name: str, value: object, minimum: int | None = None) -> int:
    """An integer (not a bool, not a float with a fraction) at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidParameterError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {v}")
    return v


def choice(name: str, value: str, options: tuple[str, ...] | list[str]) -> str:
    """One of a fixed set of strings."""
    if value not in options:
        raise InvalidParameterError(f"{name} must be one of {', '.join(options)}; got {value!r}")
    return value
