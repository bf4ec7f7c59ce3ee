"""A content-addressed store on the local file system (seed 002, §III.B: models, metadata, logs).

Content goes in as bytes or a stream and comes back by its CID, as UnixFS: the CID is the one
`ipfs add --cid-version 1 --raw-leaves` gives with the same chunk size and links per node
(`mercat.storage.content` and `mercat.storage.unixfs` say how).

Every block is checked against its CID when it is read, so a corrupted or substituted block is
refused (`ContentCorruptedError`), never returned; storing a block again replaces a stored copy
that no longer hashes to its CID. Blocks are written to a temporary file, synced, renamed into
place, and their directories synced; the root of a put is written only after every block it
names is durable: a crash (or power loss) leaves at most unreferenced blocks, never a CID that
names missing or partial content. Layout (like IPFS's flatfs): `ROOT/blocks/<next-to-last two
characters>/<cid>`.

Left out on purpose: garbage collection of unreferenced blocks (`KuboStore` keeps blocks in an
IPFS daemon instead).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mercat.errors import ContentCorruptedError, ContentNotFoundError, StorageError
from mercat.storage.cid import parse
from mercat.storage.content import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    BlockContent,
    BlockWriter,
    Stat,
    check_block,
    check_layout,
    fsync_dir,
    stream_content,
)
from mercat.storage.unixfs import DEFAULT_MAX_LINKS

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_LINKS",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "ContentStore",
    "Stat",
    "stream_content",
]


class _DurableWriter(BlockWriter):
    """The blocks of one put: each synced as it is written, the directories that gained an
    entry gathered and synced once before the root, then the root and its directory."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self.pending: set[Path] = set()

    def block(self, cid: str, data: bytes) -> None:
        self.store._write_block(cid, data, self.pending)

    def root(self, cid: str, data: bytes) -> None:
        self.store._sync_dirs(self.pending)  # every block durable before anything names them
        self.store._write_block(cid, data)


class ContentStore(BlockContent):
    def __init__(
        self,
        root: Path | str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        create: bool = True,
        max_links: int = DEFAULT_MAX_LINKS,
    ) -> None:
        """A store rooted at `root`, created there if missing (`create=False`: a reader's
        mistyped path is an error, not a new empty store). `chunk_size` and `max_links` shape
        the DAGs this store writes (and so their CIDs); it reads any UnixFS file."""
        self.chunk_size, self.max_links = check_layout(chunk_size, max_links)
        self.root = Path(root)
        self._shards: set[str] = set()  # shard directories known to exist
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"store path {str(self.root)!r} exists and is not a directory")
        if not create and not (self.root / "blocks").is_dir():
            raise StorageError(f"no store at {str(self.root)!r}")
        try:
            if not (self.root / "blocks").is_dir():
                existed = self.root.is_dir()
                (self.root / "blocks").mkdir(parents=True, exist_ok=True)
                fsync_dir(self.root)  # a new store's blocks/ survives power loss
                if not existed:
                    fsync_dir(self.root.absolute().parent)
            (self.root / "tmp").mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot use {str(self.root)!r} as a store: {exc.strerror}"
            ) from None

    # --- blocks --------------------------------------------------------------------------

    def _path(self, cid: str) -> Path:
        return self.root / "blocks" / cid[-3:-1] / cid

    def _holds_intact(self, cid: str, path: Path) -> bool:
        """Whether `path` holds bytes that hash to `cid` (a re-put then writes nothing)."""
        try:
            with open(path, "rb") as held:
                return hashlib.sha256(held.read()).digest() == parse(cid)[2]
        except OSError:
            return False  # missing, a directory, unreadable: (re)write it

    def _write_block(self, cid: str, data: bytes, pending: set[Path] | None = None) -> None:
        """Store `data` under `cid` unless an intact copy is there; a copy that no longer hashes
        to `cid` is replaced. The new directory entry is synced at once, or, with `pending`,
        its directory is added there for the caller to sync (`_sync_dirs`) before it writes
        anything that names the block."""
        path = self._path(cid)
        tmp = None
        try:
            # Same CID, same bytes: stored once. An intact copy's entry is still synced below: an
            # earlier put may have died between its rename and its directory sync.
            if not self._holds_intact(cid, path):
                if path.parent.name not in self._shards:
                    if not path.parent.is_dir():
                        path.parent.mkdir(exist_ok=True)
                        if pending is None:  # blocks/ gained an entry
                            fsync_dir(path.parent.parent)
                        else:
                            pending.add(path.parent.parent)
                    self._shards.add(path.parent.name)
                handle, tmp = tempfile.mkstemp(dir=self.root / "tmp")
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
                tmp = None
            if pending is None:
                fsync_dir(path.parent)
            else:
                pending.add(path.parent)
        except OSError as exc:
            raise StorageError(
                f"cannot write block {cid} to {str(path)!r}: {exc.strerror or exc}"
            ) from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def _sync_dirs(self, pending: set[Path]) -> None:
        try:
            for directory in sorted(pending):
                fsync_dir(directory)
        except OSError as exc:
            raise StorageError(f"cannot sync {str(directory)!r}: {exc.strerror}") from None
        pending.clear()

    def _writer(self) -> BlockWriter:
        return _DurableWriter(self)

    def read_block(self, cid: str) -> bytes:
        """One block's bytes, checked against its CID."""
        canonical, _, digest = parse(cid)
        path = self._path(canonical)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ContentNotFoundError(f"the store holds no block {canonical}") from None
        except OSError as exc:
            raise StorageError(
                f"cannot read block {canonical} at {str(path)!r}: {exc.strerror}"
            ) from None
        if hashlib.sha256(data).digest() != digest:
            raise ContentCorruptedError(f"block {canonical} does not hash to its CID; refusing it")
        return data

    def put_block(self, cid: str, data: bytes) -> None:
        """Store a block received from elsewhere (a peer, a backup) under its CID, after checking
        that the bytes hash to it and, for a dag-pb node or a manifest, that it is well formed;
        nothing is written otherwise (`ContentMismatchError`)."""
        canonical, _, _ = check_block(cid, data)
        self._write_block(canonical, data)

    def discard_block(self, cid: str) -> None:
        """Drop a block (a corrupt copy that a good one from elsewhere will replace)."""
        canonical, _, _ = parse(cid)
        path = self._path(canonical)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot discard block {canonical} at {str(path)!r}: {exc.strerror}"
            ) from None

    def has_block(self, cid: str) -> bool:
        canonical, _, _ = parse(cid)
        return self._path(canonical).exists()

    # --- the whole store -----------------------------------------------------------------

    def _entries(self) -> Iterator[tuple[Path, bool]]:
        """Every entry under blocks/, with whether it is a block: a CID in canonical form, in
        the shard directory its name picks."""
        for shard in sorted((self.root / "blocks").iterdir()):
            if not shard.is_dir():
                yield shard, False
                continue
            for path in sorted(shard.iterdir()):
                try:
                    canonical = parse(path.name)[0]
                except StorageError:
                    canonical = None
                yield path, canonical == path.name and path.parent.name == path.name[-3:-1]

    def blocks(self) -> Iterator[str]:
        """The CIDs of all blocks held (entries under blocks/ that are not blocks: `strays`)."""
        for path, is_block in self._entries():
            if is_block:
                yield path.name

    def strays(self) -> Iterator[Path]:
        """Entries under blocks/ that are not blocks (a stray file, a misplaced CID): ignored
        by `blocks` and `verify`."""
        for path, is_block in self._entries():
            if not is_block:
                yield path

    def verify(self) -> list[str]:
        """Every block re-hashed; returns the CIDs of those that do not match or cannot be read
        (empty: intact)."""
        bad = []
        for cid in self.blocks():
            try:
                self.read_block(cid)
            except StorageError:
                bad.append(cid)
        return bad
