"""Content over a block store: what every mercat store does once it can read and write blocks
by CID (seed 002, §III.B).

`BlockContent` turns bytes into blocks and back:
- content up to `chunk_size` bytes is one `raw` block, whose CID is the CID of the content;
- larger content is cut into `raw` leaves of `chunk_size` bytes, linked by UnixFS dag-pb nodes
  in kubo's balanced layout (`mercat.storage.unixfs`), so the CID is the one
  `ipfs add --cid-version 1 --raw-leaves --chunker size-<chunk_size>` prints when kubo links
  `max_links` children per node (its default, 174). Equal chunks are stored once.
- reading follows the DAG and checks every block against its CID and every node's sizes
  before any of its bytes are returned; manifests written by older mercat versions
  (`mercat.storage.manifest`) are read too.

A subclass supplies the blocks: `read_block`, `has_block`, `put_block` and a writer that
stores the blocks of one put (`ContentStore` on a local disk, `KuboStore` in an IPFS daemon).
The writer gets the root last, after every block it names, so a store that can make blocks
durable makes them durable first.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import stat as st
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mercat.errors import (
    ContentMismatchError,
    ContentNotFoundError,
    InvalidParameterError,
    StorageError,
)
from mercat.storage.cid import DAG_PB, MANIFEST, RAW, cid_of, parse
from mercat.storage.manifest import MANIFEST_ERRORS, check_manifest, iter_manifest, read_manifest
from mercat.storage.unixfs import (
    DEFAULT_MAX_LINKS,
    MAX_LINKS,
    BalancedBuilder,
    Child,
    MalformedNodeError,
    decode_file_node,
    file_shape,
    iter_file,
)

DEFAULT_CHUNK_SIZE = 1 << 18  # 256 KiB: kubo's default chunker, so `ipfs add` gives our CIDs
MIN_CHUNK_SIZE = 1 << 8
MAX_CHUNK_SIZE = 1 << 26  # local use only: IPFS peers exchange blocks of at most 1 MiB


@dataclass(frozen=True)
class Stat:
    cid: str
    codec: str
    size: int  # bytes of content
    blocks: int  # blocks a full read fetches: leaves, nodes and the root (1 for a raw block)


def check_layout(chunk_size: object, max_links: object) -> tuple[int, int]:
    """The chunk size and links per node, refused unless integers in their ranges."""
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE
    ):
        raise InvalidParameterError(
            f"chunk size must be an integer in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}], "
            f"got {chunk_size!r}"
        )
    if (
        isinstance(max_links, bool)
        or not isinstance(max_links, int)
        or not 2 <= max_links <= MAX_LINKS
    ):
        raise InvalidParameterError(
            f"links per node must be an integer in [2, {MAX_LINKS}], got {max_links!r}"
        )
    return chunk_size, max_links


def check_block(cid: str, data: bytes) -> tuple[str, str, bytes]:
    """(canonical CID, codec, digest) of a block offered under `cid`, after checking that the
    bytes hash to it and that a dag-pb node or a manifest is well formed; ContentMismatchError
    otherwise (nothing must then be stored)."""
    canonical, codec, digest = parse(cid)
    if not isinstance(data, bytes):
        raise InvalidParameterError(f"a block must be bytes, got {type(data).__name__}")
    if hashlib.sha256(data).digest() != digest:
        raise ContentMismatchError(
            f"the bytes given for {canonical} hash to something else; nothing stored"
        )
    try:
        if codec == DAG_PB:
            decode_file_node(data)
        elif codec == MANIFEST:
            check_manifest(data)
    except (MalformedNodeError, *MANIFEST_ERRORS) as exc:
        what = "UnixFS file node" if codec == DAG_PB else "manifest"
        raise ContentMismatchError(
            f"the bytes given for {canonical} are not a well-formed {what} ({exc}); nothing stored"
        ) from None
    return canonical, codec, digest


def stream_content(cid: str, read_block: Callable[[str], bytes]) -> Iterator[bytes]:
    """The content named by `cid`, block by block, from `read_block` (which checks each block
    against its CID): a raw block, a UnixFS DAG, or a legacy manifest's blocks."""
    canonical, codec, _ = parse(cid)
    if codec == MANIFEST:
        yield from iter_manifest(canonical, read_block(canonical), read_block)
    else:
        yield from iter_file(canonical, read_block)


def content_stat(cid: str, read_block: Callable[[str], bytes]) -> Stat:
    """Size and block count of stored content, from its root and nodes (leaves are not read)."""
    canonical, codec, _ = parse(cid)
    if codec == MANIFEST:
        _, chunks, size = read_manifest(canonical, read_block(canonical))
        return Stat(canonical, codec, size, len(chunks) + 1)
    size, blocks, _ = file_shape(canonical, read_block)
    return Stat(canonical, codec, size, blocks)


def rechunk(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """`pieces` cut and joined into chunks of exactly `size` bytes, the last one shorter (none
    for no bytes): chunk boundaries, and so CIDs, never depend on how input arrives."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _read_pieces(stream: BinaryIO, size: int) -> Iterator[bytes]:
    while piece := stream.read(size):
        yield piece


class BlockWriter(ABC):
    """Stores the blocks of one put: `block` for each block in order, then `root` once."""

    @abstractmethod
    def block(self, cid: str, data: bytes) -> None: ...

    @abstractmethod
    def root(self, cid: str, data: bytes) -> None: ...


class BlockContent(ABC):
    """Content (put, get, stat, encryption) over a store of blocks named by CID."""

    chunk_size: int
    max_links: int

    # --- what a block store supplies -----------------------------------------------------

    @abstractmethod
    def read_block(self, cid: str) -> bytes:
        """One block's bytes, checked against its CID (`ContentCorruptedError` if they do not
        hash to it, `ContentNotFoundError` if the store lacks it)."""

    @abstractmethod
    def has_block(self, cid: str) -> bool: ...

    @abstractmethod
    def put_block(self, cid: str, data: bytes) -> None:
        """Store a block received from elsewhere under its CID, after `check_block`."""

    @abstractmethod
    def _writer(self) -> BlockWriter: ...

    # --- writing -------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store `data`; returns its CID."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidParameterError(f"content must be bytes, got {type(data).__name__}")
        view = memoryview(data)
        size = self.chunk_size
        return self._put_chunks(bytes(view[i : i + size]) for i in range(0, len(view), size))

    def put_stream(self, stream: BinaryIO) -> str:
        """Store what `stream` yields until its end, about two chunks in memory; the CID is
        the one `put` gives for the same bytes, however short the stream's reads are."""
        return self.put_pieces(_read_pieces(stream, self.chunk_size))

    def put_pieces(self, pieces: Iterable[bytes]) -> str:
        """Store the concatenation of `pieces` (of any sizes); returns its CID."""
        return self._put_chunks(rechunk(pieces, self.chunk_size))

    def put_file(self, path: Path | str) -> str:
        try:
            with open(path, "rb") as stream:
                return self.put_stream(stream)
        except OSError as exc:  # writes raise StorageError: this is the file being read
            raise StorageError(f"cannot read {str(path)!r}: {exc.strerror}") from None

    def _put_chunks(self, chunks: Iterator[bytes]) -> str:
        """Store content given as its chunks in order (every one `chunk_size` bytes but the
        last): one raw block if there is at most one chunk, else the leaves, the nodes as they
        fill, and the root last."""
        writer = self._writer()
        builder = BalancedBuilder(self.max_links)
        first = next(chunks, b"")
        second = next(chunks, None) if len(first) == self.chunk_size else None
        if second is None:
            cid = cid_of(first)
            writer.root(cid, first)
            return cid
        for chunk in itertools.chain((first, second), chunks):
            self._add_leaf(writer, builder, chunk)
        nodes, root, root_block = builder.finish()
        for cid, block in nodes:
            writer.block(cid, block)
        assert root is not None and root_block is not None  # two leaves make a node
        writer.root(root.cid, root_block)
        return root.cid

    @staticmethod
    def _add_leaf(writer: BlockWriter, builder: BalancedBuilder, chunk: bytes) -> None:
        cid = cid_of(chunk)
        writer.block(cid, chunk)
        for node_cid, block in builder.add(Child(cid, len(chunk), len(chunk))):
            writer.block(node_cid, block)

    # --- reading -------------------------------------------------------------------------

    def iter_content(self, cid: str) -> Iterator[bytes]:
        """The content's bytes, block by block, each checked against its CID (and each node
        against its children's sizes) before it is yielded; a bad block stops the stream with
        `ContentCorruptedError`."""
        return stream_content(cid, self.read_block)

    def get(self, cid: str) -> bytes:
        return b"".join(self.iter_content(cid))

    def stat(self, cid: str) -> Stat:
        return content_stat(cid, self.read_block)

    def has(self, cid: str) -> bool:
        """Whether every block of the content is present (not whether it is intact: `verify`)."""
        canonical, codec, _ = parse(cid)
        if not self.has_block(canonical):
            return False
        try:
            if codec == MANIFEST:
                _, chunks, _ = read_manifest(canonical, self.read_block(canonical))
                return all(self.has_block(c) for c in chunks)
            if codec == RAW:
                return True
            return file_shape(canonical, self.read_block, self.has_block)[2]
        except ContentNotFoundError:  # a node under the root is missing
            return False

    def get_to_file(self, cid: str, path: Path | str) -> int:
        """Write the content to `path`; returns the bytes written. The CID and the target are
        checked before anything is written:
        - a missing path or a regular file is written through a temporary file in its own
          directory, synced and renamed into place once every block has checked out (a refused
          read leaves the old file, or none); the new file gets the mode `open(path, "w")`
          would give it (0o666 less the umask; an existing file keeps its mode);
        - a symbolic link is followed, and what it points at is written by these rules;
        - a FIFO or character device is written straight into, block by block as blocks
          check out (a bad block stops the stream there, as on standard output);
        - a directory, a missing parent directory, a parent that is not a directory, or any
          other kind of file is refused with `StorageError`."""
        canonical, _, _ = parse(cid)
        self.stat(canonical)  # present and readable (its root and nodes) before writing
        return write_file(self.iter_content(canonical), path)

    # --- encryption (mercat.storage.encryption) ------------------------------------------

    def put_encrypted(self, data: bytes | BinaryIO) -> tuple[str, bytes]:
        """Store `data` encrypted under a fresh content key; returns (CID of the ciphertext,
        the 32-byte key). Seal the key to a provider with `encryption.seal_key`."""
        from mercat.storage.encryption import put_encrypted

        return put_encrypted(self, data)

    def get_decrypted(self, cid: str, key: bytes) -> bytes:
        """The plaintext of content stored with `put_encrypted`; `DecryptionError` for a wrong
        key or altered ciphertext."""
        from mercat.storage.encryption import get_decrypted

        return get_decrypted(self, cid, key)


def _umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - systems without /proc/self/status
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (a rename, a new file) survive power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(pieces: Iterator[bytes], path: Path | str) -> int:
    """Write `pieces` to `path` by the rules of `BlockContent.get_to_file`; the bytes written."""
    given = Path(path)
    target = Path(os.path.realpath(given))
    where = repr(str(given)) if target == given.absolute() else f"{str(given)!r} ({target})"
    try:
        info = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        info = None  # missing; its parent is checked below
    except OSError as exc:
        raise StorageError(f"cannot write {where}: {exc.strerror}") from None
    if info is not None and st.S_ISDIR(info.st_mode):
        raise StorageError(f"{where} is a directory")
    if info is not None and (st.S_ISFIFO(info.st_mode) or st.S_ISCHR(info.st_mode)):
        return _stream_into(pieces, target, where)
    if info is not None and not st.S_ISREG(info.st_mode):
        raise StorageError(f"{where} is not a regular file, FIFO or character device")
    try:
        parent = os.stat(target.parent)
    except (FileNotFoundError, NotADirectoryError):
        raise StorageError(
            f"cannot write {where}: directory {str(target.parent)!r} does not exist"
            " (no directory is created)"
        ) from None
    except OSError as exc:
        raise StorageError(f"cannot write {where}: {exc.strerror}") from None
    if not st.S_ISDIR(parent.st_mode):
        raise StorageError(f"cannot write {where}: {str(target.parent)!r} is not a directory")
    mode = st.S_IMODE(info.st_mode) if info is not None else 0o666 & ~_umask()
    return _replace_file(pieces, target, where, mode)


def _replace_file(pieces: Iterator[bytes], target: Path, where: str, mode: int) -> int:
    tmp = None
    written = 0
    try:
        handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        with os.fdopen(handle, "wb") as out:
            for data in pieces:
                out.write(data)
                written += len(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, target)
        tmp = None
        fsync_dir(target.parent)
    except OSError as exc:
        raise StorageError(f"cannot write {where}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return written


def _stream_into(pieces: Iterator[bytes], target: Path, where: str) -> int:
    written = 0
    try:
        with open(target, "wb") as out:
            for data in pieces:
                out.write(data)
                written += len(data)
    except OSError as exc:
        raise StorageError(f"cannot write {where}: {exc.strerror or exc}") from None
    return written


class _Discard(BlockWriter):
    def block(self, cid: str, data: bytes) -> None:
        pass

    def root(self, cid: str, data: bytes) -> None:
        pass


class _HashOnly(BlockContent):
    """Blocks that are made and dropped: a CID computed without storing anything."""

    def __init__(self, chunk_size: int, max_links: int) -> None:
        self.chunk_size, self.max_links = check_layout(chunk_size, max_links)

    def read_block(self, cid: str) -> bytes:
        raise ContentNotFoundError(f"a hash-only store holds no block {cid}")

    def has_block(self, cid: str) -> bool:
        return False

    def put_block(self, cid: str, data: bytes) -> None:
        check_block(cid, data)

    def _writer(self) -> BlockWriter:
        return _Discard()


def content_cid(
    data: bytes | BinaryIO,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_links: int = DEFAULT_MAX_LINKS,
) -> str:
    """The CID that storing `data` (bytes or a stream) would give, without storing it, like
    `ipfs add --only-hash --cid-version 1 --raw-leaves`."""
    target = _HashOnly(chunk_size, max_links)
    return (
        target.put(data)
        if isinstance(data, bytes | bytearray | memoryview)
        else target.put_stream(data)
    )
