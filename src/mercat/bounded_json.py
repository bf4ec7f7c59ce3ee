"""JSON from an untrusted source, with its nesting bounded before the parser sees it.

Python's json parser recurses once per level of nesting. It stops at the interpreter's
recursion limit with RecursionError, but some libraries raise that limit when they are
imported (py-evm and py_ecc set it in the tens of thousands), and then `[[[[...` a few
hundred thousand levels deep overflows the C stack and kills the process (a segfault, not an
exception). So input from the network is measured first, in linear time and without
recursion: strings are blanked out, brackets counted with a running sum.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from mercat.errors import MercatError

MAX_DEPTH = 64  # far above any document mercat reads (a market nests 4 levels)

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def nesting_depth(text: bytes | str) -> int:
    """The deepest nesting of arrays and objects in `text` (brackets inside strings do not
    count); for malformed text, a bound the parser will reject anyway."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    blanked = _STRING.sub(b'""', raw)
    if not blanked:
        return 0
    steps = _OPEN[np.frombuffer(blanked, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def loads(
    text: bytes | str,
    error: type[MercatError],
    what: str = "the body",
    max_depth: int = MAX_DEPTH,
) -> Any:
    """`json.loads(text)`, or `error` saying why not: not JSON, or nested deeper than
    `max_depth` (checked first)."""
    depth = nesting_depth(text)
    if depth > max_depth:
        raise error(f"{what} is JSON nested {depth} levels deep; at most {max_depth} are read")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise error(f"{what} is not JSON: {exc}") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise error(f"{what} is JSON nested too deeply") from None
