"""What may name something in a market: request and node ids, resource names, capabilities
and the market's own name.

Names come from outside (market files, the node's job bodies) and come back out in rich's
tables, in one-line messages and in JSON written back. A name is printable text
(`str.isprintable`): letters, marks, digits, punctuation, symbols and the ASCII space. That
refuses control characters (a newline splits a table row, a NUL or an escape sequence
misleads a terminal), format characters (a right-to-left override or a zero-width space
makes two different ids look alike, or a message read as something it is not), line and
paragraph separators, spaces other than the ASCII one, lone surrogates (they cannot be
written as UTF-8), private-use and unassigned code points. Ids are compared as they are:
no normalization, so "é" and "e" with a combining accent remain two ids.
"""

from __future__ import annotations

import unicodedata

from mercat.errors import InvalidMarketError
from mercat.untrusted import shown

MAX_NAME_CHARS = 1024
"""The longest name. Generous: hostnames stop at 253 characters, UUIDs and content ids at
well under 100, paths and URLs used as ids at a few hundred. A name is a label, not data:
the cap keeps a table cell and a message readable, and keeps one id from being megabytes
that every payment, reward and allocation row repeats."""

_KINDS = {
    "Cc": "a control character",
    "Cf": "a format character",
    "Cs": "a lone surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Zs": "a space other than ' '",
}


def check_name(what: str, name: object) -> str:
    """`name` when it may name something in a market (module docstring); otherwise an
    `InvalidMarketError` that starts with `what` ("request id", "resource name", ...)."""
    if not isinstance(name, str) or not name:
        raise InvalidMarketError(f"{what} must be a non-empty string, got {shown(name)}")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidMarketError(
            f"{what} {shown(name)} is {len(name)} characters long; names have at most "
            f"{MAX_NAME_CHARS}"
        )
    if not name.isprintable():
        bad = next(c for c in name if not c.isprintable())
        kind = _KINDS.get(unicodedata.category(bad), "not printable")
        raise InvalidMarketError(
            f"{what} {shown(name)} holds U+{ord(bad):04X}, {kind}: names are printable text "
            "(letters, marks, digits, punctuation, symbols and the space)"
        )
    return name
