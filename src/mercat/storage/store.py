"""A content-addressed store on the local file system (seed 002, §III.B: models, metadata, logs).

Content goes in as bytes or a stream and comes back by its CID (`mercat.storage.cid`):
- content up to `chunk_size` bytes is one `raw` block, whose CID is the CID of the content;
- larger content is cut into `raw` blocks of `chunk_size` bytes, and a `dag-json` manifest,
  `{"chunk_size": n, "chunks": [{"/": cid}, ...], "size": bytes}`, links them in order. The
  manifest's CID names the content. Equal chunks are stored once. A manifest is accepted only
  in exactly the form `put` writes (canonical bytes, >= 2 chunks, sizes that add up).

Every block is checked against its CID when it is read, so a corrupted or substituted block is
refused (`ContentCorruptedError`), never returned; storing a block again replaces a stored copy
that no longer hashes to its CID. Blocks are written to a temporary file, synced, renamed into
place, and their directories synced; a manifest is written only after all its blocks are
durable: a crash (or power loss) leaves at most unreferenced blocks, never a CID that names
missing or partial content. Layout (like IPFS's flatfs): `ROOT/blocks/<next-to-last two
characters>/<cid>`.

Left out on purpose: IPFS itself (no daemon here; `put_block` is the seam a network transport
would call) and garbage collection of unreferenced blocks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import stat as st
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mercat.errors import (
    ContentCorruptedError,
    ContentMismatchError,
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


# The one shape `_manifest_bytes` writes: integers, link strings of printable ASCII without
# quotes or escapes, no whitespace. Checked before JSON parsing, so that a deeply nested body
# never reaches the recursive parser (a process whose recursion limit was raised, as some
# libraries do, would crash in C rather than raise RecursionError).
_MANIFEST_SHAPE = re.compile(
    rb'\{"chunk_size":-?[0-9]+,"chunks":\[(?:\{"/":"[!#-\[\]-~]*"\}'
    rb'(?:,\{"/":"[!#-\[\]-~]*"\})*)?\],"size":-?[0-9]+\}'
)


def _check_manifest(body: bytes) -> tuple[int, list[str], int]:
    """The fields of a manifest in the one form `put` writes; ValueError (or one of the errors
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
    if body != _manifest_bytes(chunk_size, chunks, size):
        raise ValueError("it is not in canonical form (sorted keys, no whitespace, no extras)")
    return chunk_size, chunks, size


def read_manifest(cid: str, body: bytes) -> tuple[int, list[str], int]:
    """(chunk size, block CIDs in order, content size) of a manifest block, which must be
    exactly what `put` writes; `ContentCorruptedError` otherwise."""
    try:
        return _check_manifest(body)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ContentCorruptedError(f"manifest {cid} is malformed: {exc}") from None


def stream_content(cid: str, read_block: Callable[[str], bytes]) -> Iterator[bytes]:
    """The content named by `cid`, block by block, from `read_block` (which checks each block
    against its CID): one raw block, or the blocks a manifest lists, each held to the length
    the manifest implies before it is yielded."""
    canonical, codec, _ = parse(cid)
    block = read_block(canonical)
    if codec == RAW:
        yield block
        return
    chunk_size, chunks, size = read_manifest(canonical, block)
    for i, chunk in enumerate(chunks):
        data = read_block(chunk)
        expected = chunk_size if i < len(chunks) - 1 else size - chunk_size * i
        if len(data) != expected:
            raise ContentCorruptedError(
                f"manifest {canonical} says block {i} ({chunk}) holds {expected} bytes; "
                f"it holds {len(data)}"
            )
        yield data


def _fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (a rename, a new file) survive power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
            if not (self.root / "blocks").is_dir():
                existed = self.root.is_dir()
                (self.root / "blocks").mkdir(parents=True, exist_ok=True)
                _fsync_dir(self.root)  # a new store's blocks/ survives power loss
                if not existed:
                    _fsync_dir(self.root.absolute().parent)
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
                            _fsync_dir(path.parent.parent)
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
                _fsync_dir(path.parent)
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
                _fsync_dir(directory)
        except OSError as exc:
            raise StorageError(f"cannot sync {str(directory)!r}: {exc.strerror}") from None
        pending.clear()

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
        that the bytes hash to it and, for a manifest, that it is well formed; nothing is written
        otherwise (`ContentMismatchError`)."""
        canonical, codec, digest = parse(cid)
        if hashlib.sha256(data).digest() != digest:
            raise ContentMismatchError(
                f"the bytes given for {canonical} hash to something else; nothing stored"
            )
        if codec == MANIFEST:
            try:
                _check_manifest(data)
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                raise ContentMismatchError(
                    f"the bytes given for {canonical} are not a well-formed manifest ({exc}); "
                    "nothing stored"
                ) from None
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

    # --- content -------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store `data`; returns its CID."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidParameterError(f"content must be bytes, got {type(data).__name__}")
        view = memoryview(data)
        size = self.chunk_size
        return self._put_chunks(bytes(view[i : i + size]) for i in range(0, len(view), size))

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
        return self._put_chunks(iter(lambda: self._read_chunk(stream), b""))

    def _put_chunks(self, chunks: Iterator[bytes]) -> str:
        """Store content given as its chunks in order (every one `chunk_size` bytes but the
        last): one raw block if there is one chunk, else the blocks and then their manifest."""
        first = next(chunks, b"")
        second = next(chunks, b"") if len(first) == self.chunk_size else b""
        if not second:
            cid = cid_of(first)
            self._write_block(cid, first)
            return cid
        cids: list[str] = []
        pending: set[Path] = set()
        size = 0
        for chunk in itertools.chain((first, second), chunks):
            cids.append(cid_of(chunk))
            self._write_block(cids[-1], chunk, pending)
            size += len(chunk)
        return self._put_manifest(cids, size, pending)

    def put_file(self, path: Path | str) -> str:
        try:
            with open(path, "rb") as stream:
                return self.put_stream(stream)
        except OSError as exc:  # writes raise StorageError: this is the file being read
            raise StorageError(f"cannot read {str(path)!r}: {exc.strerror}") from None

    def _put_manifest(self, chunks: list[str], size: int, pending: set[Path]) -> str:
        self._sync_dirs(pending)  # every block durable before anything names them
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
        self.stat(canonical)  # present and readable (at least its first block) before writing
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
            return self._stream_into(canonical, target, where)
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
        return self._replace_file(canonical, target, where, mode)

    def _replace_file(self, cid: str, target: Path, where: str, mode: int) -> int:
        tmp = None
        written = 0
        try:
            handle, tmp = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".part"
            )
            with os.fdopen(handle, "wb") as out:
                for data in self.iter_content(cid):
                    out.write(data)
                    written += len(data)
                out.flush()
                os.fchmod(out.fileno(), mode)
                os.fsync(out.fileno())
            os.replace(tmp, target)
            tmp = None
            _fsync_dir(target.parent)
        except OSError as exc:
            raise StorageError(f"cannot write {where}: {exc.strerror or exc}") from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        return written

    def _stream_into(self, cid: str, target: Path, where: str) -> int:
        written = 0
        try:
            with open(target, "wb") as out:
                for data in self.iter_content(cid):
                    out.write(data)
                    written += len(data)
        except OSError as exc:
            raise StorageError(f"cannot write {where}: {exc.strerror or exc}") from None
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
