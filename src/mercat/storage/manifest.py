"""Manifests of content stored before mercat wrote UnixFS: read, never written.

Until mercat stored large content as UnixFS (`mercat.storage.unixfs`), it linked the `raw`
blocks of content above one chunk with a `dag-json` manifest, `{"chunk_size": n, "chunks":
[{"/": cid}, ...], "size": bytes}`, whose CID named the content. Stores holding such manifests
stay readable: `get`, `stat`, `verify` and replication work on them as before, and `put_block`
still accepts one (a replica repairing an old copy). IPFS cannot rebuild such content from its
CID; putting the same bytes again (`mercat storage get OLD -o - | mercat storage put -`) gives
the UnixFS CID that `ipfs add --cid-version 1 --raw-leaves` gives, and reuses the blocks.

A manifest is accepted only in exactly the form mercat wrote: canonical bytes, >= 2 chunks,
sizes that add up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

from mercat.errors import ContentCorruptedError
from mercat.storage.cid import RAW, parse

MIN_CHUNK_SIZE = 1 << 10  # the bounds mercat enforced when it wrote manifests
MAX_CHUNK_SIZE = 1 << 26


def manifest_bytes(chunk_size: int, chunks: list[str], size: int) -> bytes:
    """The bytes mercat wrote for a manifest (DAG-JSON's canonical form: keys sorted, no
    whitespace; links are {"/": cid}); tests build legacy stores with it."""
    body = {"chunk_size": chunk_size, "chunks": [{"/": c} for c in chunks], "size": size}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


# The one shape `manifest_bytes` writes: integers, link strings of printable ASCII without
# quotes or escapes, no whitespace. Checked before JSON parsing, so that a deeply nested body
# never reaches the recursive parser (a process whose recursion limit was raised, as some
# libraries do, would crash in C rather than raise RecursionError).
_MANIFEST_SHAPE = re.compile(
    rb'\{"chunk_size":-?[0-9]+,"chunks":\[(?:\{"/":"[!#-\[\]-~]*"\}'
    rb'(?:,\{"/":"[!#-\[\]-~]*"\})*)?\],"size":-?[0-9]+\}'
)


def check_manifest(body: bytes) -> tuple[int, list[str], int]:
    """The fields of a manifest in the one form mercat wrote; ValueError (or one of the errors
    a malformed body raises) with the reason otherwise."""
    if not isinstance(body, bytes) or not _MANIFEST_SHAPE.fullmatch(body):
        raise ValueError(
            'it is not canonical DAG-JSON of the form {"chunk_size":int,"chunks":[{"/":cid},'
            '...],"size":int} (sorted keys, integers, no whitespace, nothing else)'
        )
    data = json.loads(body)  # the shape makes both sizes integers and the links a list
    chunk_size, size, links = data["chunk_size"], data["size"], data["chunks"]
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size {chunk_size} is outside [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]")
    chunks = [link["/"] for link in links]
    for chunk in chunks:
        canonical, codec, _ = parse(chunk)
        if codec != RAW or canonical != chunk:
            raise ValueError(f"link {chunk!r} is not a raw block's CID in base32")
    if size <= chunk_size:
        raise ValueError(f"size {size} fits one {chunk_size}-byte block, which needs no manifest")
    if len(chunks) != -(-size // chunk_size):
        raise ValueError(
            f"{size} bytes in {chunk_size}-byte blocks are {-(-size // chunk_size)} blocks, "
            f"not {len(chunks)}"
        )
    if body != manifest_bytes(chunk_size, chunks, size):
        raise ValueError("it is not in canonical form (sorted keys, no whitespace, no extras)")
    return chunk_size, chunks, size


MANIFEST_ERRORS = (ValueError, KeyError, TypeError, RecursionError)


def read_manifest(cid: str, body: bytes) -> tuple[int, list[str], int]:
    """(chunk size, block CIDs in order, content size) of a manifest block, which must be
    exactly what mercat wrote; `ContentCorruptedError` otherwise."""
    try:
        return check_manifest(body)
    except MANIFEST_ERRORS as exc:
        raise ContentCorruptedError(f"manifest {cid} is malformed: {exc}") from None


def iter_manifest(cid: str, body: bytes, read_block: Callable[[str], bytes]) -> Iterator[bytes]:
    """The content a manifest names, block by block from `read_block`, each held to the length
    the manifest implies before it is yielded."""
    chunk_size, chunks, size = read_manifest(cid, body)
    for i, chunk in enumerate(chunks):
        data = read_block(chunk)
        expected = chunk_size if i < len(chunks) - 1 else size - chunk_size * i
        if len(data) != expected:
            raise ContentCorruptedError(
                f"manifest {cid} says block {i} ({chunk}) holds {expected} bytes; "
                f"it holds {len(data)}"
            )
        yield data
