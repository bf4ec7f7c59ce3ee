"""JSON from an untrusted source, with its nesting bounded before the parser sees it.

Python's json parser recurses once per level of nesting. It stops at the interpreter's
recursion limit with RecursionError, but some libraries raise that limit when they are
imported (py-evm and py_ecc set it in the tens of thousands), and then `[[[[...` a few
hundred thousand levels deep overflows the C stack and kills the process (a segfault, not an
exception). So input from the network is measured first, in linear time and without
recursion: strings are masked out, brackets counted with a running sum.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mercat.errors import MercatError

MAX_DEPTH = 64  # far above any document mercat reads (a market nests 4 levels)

_BACKSLASH, _QUOTE = ord("\\"), ord('"')
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


def nesting_depth(text: bytes | str) -> int:
    """The deepest nesting of arrays and objects in `text`, brackets inside strings not
    counted. Vectorized over the positions of quotes, backslashes and brackets: a quote opens
    or closes a string unless an odd run of backslashes precedes it; a bracket counts where an
    even number of such quotes precede it. On malformed text (a backslash outside a string)
    the count may differ from the parser's view after that point, but the parser stops
    there, so it never recurses deeper than the count says. tests/test_bounded_json.py holds
    it to a character-by-character twin."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    data = np.frombuffer(raw, dtype=np.uint8)
    steps = _STEP[data]
    brackets = np.flatnonzero(steps)
    if brackets.shape[0] == 0:
        return 0
    quotes = np.flatnonzero(data == _QUOTE)
    backslashes = np.flatnonzero(data == _BACKSLASH)
    if backslashes.shape[0] and quotes.shape[0]:
        # The run of backslashes that ends right before each quote: its length's parity.
        continues = np.flatnonzero(np.diff(backslashes) == 1) + 1
        starts = np.ones(backslashes.shape[0], dtype=bool)
        starts[continues] = False
        run_start = np.maximum.accumulate(np.where(starts, backslashes, -1))
        before = np.searchsorted(backslashes, quotes) - 1  # the last backslash before each
        ends_here = (before >= 0) & (backslashes[np.maximum(before, 0)] == quotes - 1)
        run = np.where(ends_here, quotes - run_start[np.maximum(before, 0)], 0)
        quotes = quotes[run % 2 == 0]
    inside = np.searchsorted(quotes, brackets) % 2 == 1
    counted = np.where(inside, 0, steps[brackets].astype(np.int64))
    return int(np.cumsum(counted).max(initial=0))


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
