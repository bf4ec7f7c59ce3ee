"""A content-addressed store on the local file system (seed 002, §III.B: models, metadata, logs).

Content goes in as bytes or a stream and comes back by its CID (`mercat.storage.cid`):
- content up to `chunk_size` bytes is one `raw` block, whose CID is the CID of the content;
- larger content is cut into `raw` blocks of `chunk_size` bytes, and a `dag-json` manifest,
  `{"chunk_size": n, "chunks": [{"/": cid}, ...], "size": bytes}`, links them in order. The
  manifest's CID names the content. Equal chunks are stored once.

Every block is checked against its CID when it is read, so a corrupted or substituted block is
refused (`ContentCorruptedError`), never returned. Blocks are written to a temporary file,
synced, then renamed into place, and a manifest is written only after all its blocks: a crash
leaves at most unreferenced blocks, never a CID that names missing or partial content.
Layout (like IPFS's flatfs): `ROOT/blocks/<next-to-last two characters>/<cid>`.

Left out on purpose: IPFS itself (no daemon here; `put_block` is the seam a network transport
would call) and garbage collection of unreferenced blocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mercat.errors import (
    ContentCorruptedError,
    ContentNotFoundError,
    InvalidParameterError,
    StorageError,
)
from mercat.storage.cid import MANIFEST, RAW, cid_from_digest, cid_of, parse

DEFAULT_CHUNK_SIZE = 1 << 20  # 1 MiB: a 200 MB model is 200 files, not 800 (IPFS: 256 KiB)
MIN_CHUNK_SIZE = 1 << 10
MAX_CHUNK_SIZE = 1 << 26


@dataclass(frozen=True)
class Stat:
    cid: str
    codec: str
    size: int  # bytes of content
    blocks: int  # raw blocks the content is made of


def _manifest_bytes(chunk_size: int, chunks: list[str], size: int) -> bytes:
    # DAG-JSON's canonical form: keys sorted, no whitespace; links are {"/": cid}.
    body = {"chunk_size": chunk_size, "chunks": [{"/": c} for c in chunks], "size": size}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def read_manifest(cid: str, body: bytes) -> tuple[int, list[str], int]:
    """(chunk size, block CIDs in order, content size) of a manifest block."""
    try:
        data = json.loads(body)
        chunks = [link["/"] for link in data["chunks"]]
        size, chunk_size = int(data["size"]), int(data["chunk_size"])
        if not all(parse(c)[1] == RAW for c in chunks) or size < 0:
            raise ValueError("links must be raw blocks and the size >= 0")
    except (ValueError, KeyError, TypeError) as exc:
        raise ContentCorruptedError(f"manifest {cid} is malformed: {exc}") from None
    return chunk_size, chunks, size


def stream_content(cid: str, read_block: Callable[[str], bytes]) -> Iterator[bytes]:
    """The content named by `cid`, block by block, from `read_block` (which checks each block
    against its CID): one raw block, or the blocks a manifest lists, with their total size
    held to the manifest's."""
    canonical, codec, _ = parse(cid)
    block = read_block(canonical)
    if codec == RAW:
        yield block
        return
    _, chunks, size = read_manifest(canonical, block)
    seen = 0
    for chunk in chunks:
        data = read_block(chunk)
        seen += len(data)
        yield data
    if seen != size:
        raise ContentCorruptedError(f"manifest {canonical} says {size} bytes, blocks hold {seen}")


class ContentStore:
    def __init__(
        self, root: Path | str, chunk_size: int = DEFAULT_CHUNK_SIZE, create: bool = True
    ) -> None:
        """A store rooted at `root`, created there if missing (`create=False`: a reader's
        mistyped path is an error, not a new empty store)."""
        if (
            isinstance(chunk_size, bool)
            or not isinstance(chunk_size, int)
            or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE
        ):
            raise InvalidParameterError(
                f"chunk size must be an integer in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}], "
                f"got {chunk_size!r}"
            )
        self.root = Path(root)
        self.chunk_size = chunk_size
        self._shards: set[str] = set()  # shard directories known to exist
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"store path {str(self.root)!r} exists and is not a directory")
        if not create and not (self.root / "blocks").is_dir():
            raise StorageError(f"no store at {str(self.root)!r}")
        try:
            (self.root / "blocks").mkdir(parents=True, exist_ok=True)
            (self.root / "tmp").mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot use {str(self.root)!r} as a store: {exc.strerror}"
            ) from None

    # --- blocks --------------------------------------------------------------------------

    def _path(self, cid: str) -> Path:
        return self.root / "blocks" / cid[-3:-1] / cid

    def _write_block(self, cid: str, data: bytes) -> None:
        path = self._path(cid)
        if path.exists():
            return  # same CID, same bytes: stored once
        if path.parent.name not in self._shards:
            path.parent.mkdir(exist_ok=True)
            self._shards.add(path.parent.name)
        handle, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_block(self, cid: str) -> bytes:
        """One block's bytes, checked against its CID."""
        canonical, _, digest = parse(cid)
        try:
            data = self._path(canonical).read_bytes()
        except FileNotFoundError:
            raise ContentNotFoundError(f"the store holds no block {canonical}") from None
        if hashlib.sha256(data).digest() != digest:
            raise ContentCorruptedError(f"block {canonical} does not hash to its CID; refusing it")
        return data

    def put_block(self, cid: str, data: bytes) -> None:
        """Store a block received from elsewhere (a peer, a backup) under its CID, after checking
        that the bytes hash to it; nothing is written otherwise."""
        canonical, codec, digest = parse(cid)
        if hashlib.sha256(data).digest() != digest:
            raise ContentCorruptedError(f"the bytes given for {canonical} hash to something else")
        if codec == MANIFEST:
            read_manifest(canonical, data)  # a manifest must also parse
        self._write_block(canonical, data)

    def discard_block(self, cid: str) -> None:
        """Drop a block (a corrupt copy that a good one from elsewhere will replace)."""
        canonical, _, _ = parse(cid)
        self._path(canonical).unlink(missing_ok=True)

    def has_block(self, cid: str) -> bool:
        canonical, _, _ = parse(cid)
        return self._path(canonical).exists()

    # --- content -------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store `data`; returns its CID."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidParameterError(f"content must be bytes, got {type(data).__name__}")
        view = memoryview(data)
        if len(view) <= self.chunk_size:
            cid = cid_of(bytes(view))
            self._write_block(cid, bytes(view))
            return cid
        chunks = []
        for start in range(0, len(view), self.chunk_size):
            chunk = bytes(view[start : start + self.chunk_size])
            chunks.append(cid_of(chunk))
            self._write_block(chunks[-1], chunk)
        return self._put_manifest(chunks, len(view))

    def _read_chunk(self, stream: BinaryIO) -> bytes:
        """Exactly `chunk_size` bytes, or fewer only at the end: a pipe may return short reads,
        and chunk boundaries must not depend on them (the CID would)."""
        parts, missing = [], self.chunk_size
        while missing:
            part = stream.read(missing)
            if not part:
                break
            parts.append(part)
            missing -= len(part)
        return b"".join(parts)

    def put_stream(self, stream: BinaryIO) -> str:
        """Store what `stream` yields until its end, at most two chunks in memory; the CID is
        the one `put` gives for the same bytes."""
        first = self._read_chunk(stream)
        following = self._read_chunk(stream) if len(first) == self.chunk_size else b""
        if not following:
            cid = cid_of(first)
            self._write_block(cid, first)
            return cid
        chunks, size, chunk = [], 0, first
        while chunk:
            chunks.append(cid_of(chunk))
            self._write_block(chunks[-1], chunk)
            size += len(chunk)
            chunk, following = following, self._read_chunk(stream) if following else b""
        return self._put_manifest(chunks, size)

    def put_file(self, path: Path | str) -> str:
        try:
            with open(path, "rb") as stream:
                return self.put_stream(stream)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise StorageError(f"cannot read {str(path)!r}: {exc.strerror}") from None

    def _put_manifest(self, chunks: list[str], size: int) -> str:
        body = _manifest_bytes(self.chunk_size, chunks, size)
        cid = cid_from_digest(hashlib.sha256(body).digest(), MANIFEST)
        self._write_block(cid, body)  # last: a manifest only ever names stored blocks
        return cid

    def iter_content(self, cid: str) -> Iterator[bytes]:
        """The content's bytes, block by block, each checked against its CID before it is
        yielded (a corrupted block stops the stream with `ContentCorruptedError`)."""
        return stream_content(cid, self.read_block)

    def get(self, cid: str) -> bytes:
        return b"".join(self.iter_content(cid))

    def get_to_file(self, cid: str, path: Path | str) -> int:
        """Write the content to `path` (through a temporary file, renamed once every block has
        checked out, so a refused read leaves no partial file); returns the bytes written."""
        target = Path(path)
        if target.is_dir():
            raise StorageError(f"{str(target)!r} is a directory")
        handle, tmp = tempfile.mkstemp(dir=target.parent if target.parent.exists() else None)
        written = 0
        try:
            with os.fdopen(handle, "wb") as out:
                for data in self.iter_content(cid):
                    out.write(data)
                    written += len(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return written

    def stat(self, cid: str) -> Stat:
        canonical, codec, _ = parse(cid)
        block = self.read_block(canonical)
        if codec == RAW:
            return Stat(canonical, codec, len(block), 1)
        _, chunks, size = read_manifest(canonical, block)
        return Stat(canonical, codec, size, len(chunks))

    def has(self, cid: str) -> bool:
        """Whether every block of the content is present (not whether it is intact: `verify`)."""
        canonical, codec, _ = parse(cid)
        if not self._path(canonical).exists():
            return False
        if codec == RAW:
            return True
        _, chunks, _ = read_manifest(canonical, self.read_block(canonical))
        return all(self._path(c).exists() for c in chunks)

    def blocks(self) -> Iterator[str]:
        """The CIDs of all blocks held."""
        for shard in sorted((self.root / "blocks").iterdir()):
            for path in sorted(shard.iterdir()):
                yield path.name

    def verify(self) -> list[str]:
        """Every block re-hashed; returns the CIDs of those that do not match (empty: intact)."""
        bad = []
        for cid in self.blocks():
            try:
                self.read_block(cid)
            except (ContentCorruptedError, StorageError):
                bad.append(cid)
        return bad
