"""Parsing text that comes from outside mercat, within bounds on size and nesting depth.

Market files, the node's request bodies, signed ledger messages (and the oracle reports they
carry), the distributed auctioneer's message headers and peers files are written by someone
else. Python's parsers recurse once per level of nesting, so a document nested about a
thousand levels deep (a few kilobytes of brackets) ends in a RecursionError, and whatever
walks or prints a deep result later (validation messages, `repr`, `jsonable`) recurses as
well. Every such parser goes through this module instead of `json.loads` / `tomllib.loads`:

- the size is checked first (a file is never read past its limit);
- JSON nesting is measured before parsing, on the bytes, at C speed (about 7 % of the
  parse itself on a 16 MB market); TOML, which only peers and configuration files use, is
  measured on the parsed result;
- every failure is the caller's own error class (InvalidMarketError, MalformedMessageError,
  ...), with a one-line message naming what was being read; `shown` cuts an outside value
  down to a few dozen characters for such a message (a megabyte-long id stays out of it).

MAX_DEPTH (64 levels) is far beyond any document mercat reads: a market is 4 levels deep, a
signed settlement with its oracle reports 5.
"""

from __future__ import annotations

import json
import re
import reprlib
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from mercat.errors import MercatError

MAX_DEPTH = 64
"""The most levels of arrays and objects (tables) one document may nest."""

# Every byte except the five that carry JSON's nesting: quotes and brackets.
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'"[]{}')
_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the byte it escapes
_QUOTE, _OPEN_LIST, _CLOSE_LIST, _OPEN_OBJECT, _CLOSE_OBJECT = b'"[]{}'


def json_depth(data: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a bare scalar).

    Brackets inside strings do not count. For valid JSON the answer is exact; for broken
    JSON it counts at least as deep as a parser gets before it fails. Escapes are removed
    first (inside a string a backslash takes the next byte with it; outside, JSON has none),
    then only quotes and brackets are kept (`bytes.translate`, in C) and a bracket counts
    when an even number of quotes precedes it."""
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)
    skeleton = np.frombuffer(data.translate(None, _NOT_STRUCTURE), dtype=np.uint8)
    outside = np.cumsum(skeleton == _QUOTE) % 2 == 0
    opens = (skeleton == _OPEN_LIST) | (skeleton == _OPEN_OBJECT)
    closes = (skeleton == _CLOSE_LIST) | (skeleton == _CLOSE_OBJECT)
    step = (opens & outside).astype(np.int64) - (closes & outside)
    return int(np.cumsum(step).max(initial=0))


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 40
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = _SHORT.maxset = 4
_SHORT.maxlevel = 3


def shown(value: object) -> str:
    """`repr(value)` cut to a few dozen characters and three levels, for error messages
    about values that came from outside."""
    try:
        return _SHORT.repr(value)
    except ValueError:  # an int too long to print (Python refuses > 4300 digits)
        return f"<{type(value).__name__}>"


def _tree_depth(value: Any) -> int:
    """How deep lists and dicts nest in a parsed document (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:  # beyond the limit the answer is already decided
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _check_size(size: int, what: str, error: type[MercatError], max_bytes: int) -> None:
    if size > max_bytes:
        raise error(f"{what} is larger than the limit of {max_bytes} bytes")


def _too_deep(what: str) -> str:
    return f"{what} nests arrays or objects more than {MAX_DEPTH} levels deep"


def check_json_depth(data: str | bytes, *, what: str, error: type[MercatError]) -> None:
    """`error` when a JSON text nests deeper than MAX_DEPTH (for callers that parse it
    themselves, e.g. to fall back to a plain string)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if json_depth(raw) > MAX_DEPTH:
        raise error(_too_deep(what))


def plain_decimal(text: str, max_digits: int = 18) -> int | None:
    """`text` as a whole number if it is ASCII digits only, at most `max_digits` of them,
    else None. HTTP headers arrive as Latin-1, where "²" and "³" are digits to
    `str.isdigit` that int() refuses."""
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None


class RepeatedKey(ValueError):
    """A JSON object gave one key twice (`unique_members`)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One JSON object's members as a dict (json's `object_pairs_hook`); a key given twice
    raises RepeatedKey. Parsers disagree on which of two equal keys counts (Python's json
    keeps the last, others the first), so a signed message or a market could mean one
    thing to its author and another to mercat: it is refused instead."""
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKey(key)
            seen.add(key)
    return members


def parse_json(
    data: str | bytes, *, what: str, error: type[MercatError], max_bytes: int | None
) -> Any:
    """The JSON value of `data` (UTF-8 when bytes), or `error` with a one-line message when
    it is larger than `max_bytes` (None: the caller has bounded it while reading), nested
    deeper than MAX_DEPTH, not JSON, or gives a key twice in one object."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if max_bytes is not None:
        _check_size(len(raw), what, error, max_bytes)
    check_json_depth(raw, what=what, error=error)
    try:
        text = raw.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, object_pairs_hook=unique_members)
    except RepeatedKey as exc:
        raise error(f"{what} gives the key {shown(exc.key)} twice in one object") from None
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4300 digits
        raise error(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:  # unreachable after the depth check; kept as a backstop
        raise error(_too_deep(what)) from None


def parse_toml(text: str, *, what: str, error: type[MercatError], max_bytes: int) -> dict:
    """The TOML document of `text`, or `error` when it is larger than `max_bytes`, nested
    deeper than MAX_DEPTH (tomllib recurses per level: it is caught), or not TOML."""
    _check_size(len(text.encode("utf-8", "surrogatepass")), what, error, max_bytes)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} is not valid TOML: {exc}") from None
    except RecursionError:
        raise error(_too_deep(what)) from None
    if _tree_depth(document) > MAX_DEPTH:
        raise error(_too_deep(what))
    return document


def read_text(path: str | Path, *, what: str, error: type[MercatError], max_bytes: int) -> str:
    """A UTF-8 file's text, never reading past `max_bytes` (a larger file is refused);
    `what` names the file in messages ("market file 'm.json'")."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}") from None
    _check_size(len(raw), what, error, max_bytes)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
