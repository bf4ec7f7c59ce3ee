"""Repair by re-put, strict legacy manifests, durable directories, stray entries and failed
writes."""

import errno
import hashlib
import json
import os

import pytest

from mercat.errors import (
    ContentCorruptedError,
    ContentMismatchError,
    ContentNotFoundError,
    StorageError,
)
from mercat.storage import store as store_module
from mercat.storage.cid import MANIFEST, cid_from_digest, cid_of, parse
from mercat.storage.manifest import manifest_bytes, read_manifest
from mercat.storage.store import ContentStore


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "store", chunk_size=1024)


def manifest_cid(body: bytes) -> str:
    return cid_from_digest(hashlib.sha256(body).digest(), MANIFEST)


# --- re-put repairs ----------------------------------------------------------------------


def test_putting_content_again_replaces_a_corrupt_block(store):
    data = os.urandom(3000)
    cid = store.put(data)
    victim = sorted(b for b in store.blocks() if b.startswith("bafkrei"))[1]
    store._path(victim).write_bytes(b"rot")
    assert store.verify() == [victim]
    assert store.put(data) == cid
    assert store.verify() == []
    assert store.get(cid) == data


def test_putting_a_small_object_again_replaces_its_corrupt_block(store):
    cid = store.put(b"hello")
    store._path(cid).write_bytes(b"jello")
    store.put(b"hello")
    assert store.get(cid) == b"hello"


def test_an_intact_block_is_not_rewritten(store, monkeypatch):
    cid = store.put(b"hello")
    before = store._path(cid).stat().st_ino
    store.put(b"hello")
    assert store._path(cid).stat().st_ino == before


# --- legacy manifests (read, never written) ----------------------------------------------

A, B = b"a" * 1024, b"b" * 1024
GOOD = manifest_bytes(1024, [cid_of(A), cid_of(B)], 2048)


def body(**fields):
    data = {"chunk_size": 1024, "chunks": [{"/": cid_of(A)}, {"/": cid_of(B)}], "size": 2048}
    data.update(fields)
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (body(size=10**12), "blocks"),
        (body(size=10**12, chunks=[{"/": cid_of(b"abc")}]), "blocks"),
        (body(size=3.9), "canonical"),
        (body(size=True), "canonical"),
        (body(chunk_size=-1024), "outside"),
        (body(chunk_size=1 << 30, size=(1 << 30) + 1), "outside"),
        (body(size=1024, chunks=[{"/": cid_of(A)}]), "needs no manifest"),
        (body(size=3000), "blocks"),
        (GOOD.replace(b",", b", "), "canonical"),
        (body(extra=1), "canonical"),
        (body(chunks=[{"/": cid_of(A), "x": 1}, {"/": cid_of(B)}]), "canonical"),
        (
            body(
                chunks=[
                    {"/": "zb2rhZfjRh2FHHB2RkHVEvL2vJnCTcu7kwRqgVsf9gpkLgteo"},
                    {"/": cid_of(B)},
                ]
            ),
            "base32",
        ),
        (body(chunks=[{"/": cid_of(A, MANIFEST)}, {"/": cid_of(B)}]), "raw block"),
        (body(chunks=[{"/": "not-a-cid"}, {"/": cid_of(B)}]), "not a CID"),
        (b"[" * 100_000 + b"]" * 100_000, "canonical"),
        (b"[1, 2]", "canonical"),
        (b"\xff\xfe", "canonical"),
        (b'{"chunk_size":1024}', "canonical"),
    ],
)
def test_a_manifest_not_in_puts_exact_form_is_refused(store, raw, message):
    cid = manifest_cid(raw)
    with pytest.raises(ContentCorruptedError, match=message):
        read_manifest(cid, raw)
    with pytest.raises(ContentMismatchError, match="not a well-formed manifest"):
        store.put_block(cid, raw)
    assert not store.has_block(cid)
    assert list(store.blocks()) == []


def legacy_put(store, data: bytes, chunk_size: int = 1024) -> str:
    """Store `data` as mercat did before UnixFS: raw blocks and a dag-json manifest."""
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    for chunk in chunks:
        store.put_block(cid_of(chunk), chunk)
    body = manifest_bytes(chunk_size, [cid_of(c) for c in chunks], len(data))
    store.put_block(manifest_cid(body), body)
    return manifest_cid(body)


def test_content_under_a_legacy_manifest_stays_readable(store, tmp_path):
    data = os.urandom(2500)
    cid = legacy_put(store, data)
    chunk_size, chunks, size = read_manifest(cid, store.read_block(cid))
    assert (chunk_size, len(chunks), size) == (1024, 3, 2500)
    assert store.get(cid) == data
    info = store.stat(cid)
    assert (info.codec, info.size, info.blocks) == ("dag-json", 2500, 4)
    assert store.has(cid)
    other = ContentStore(tmp_path / "other", chunk_size=1024)
    for block in store.blocks():  # a replica takes the manifest as it is
        other.put_block(block, store.read_block(block))
    assert other.get(cid) == data
    # Putting the bytes again gives their UnixFS CID, over the same leaves.
    converted = store.put(store.get(cid))
    assert parse(converted)[1] == "dag-pb"
    assert store.get(converted) == data
    assert len(list(store.blocks())) == 3 + 1 + 1  # leaves, manifest, UnixFS root


def test_a_block_of_the_wrong_length_stops_the_content_before_it_is_yielded(store):
    short = b"s" * 500  # the manifest says its first block holds 1024 bytes
    raw = manifest_bytes(1024, [cid_of(short), cid_of(B)], 2048)
    store.put_block(cid_of(short), short)
    store.put_block(cid_of(B), B)
    store.put_block(manifest_cid(raw), raw)  # well formed: its lengths cannot be checked yet
    stream = store.iter_content(manifest_cid(raw))
    with pytest.raises(ContentCorruptedError, match="holds 1024 bytes; it holds 500"):
        next(stream)


# --- durability --------------------------------------------------------------------------


def test_block_directories_are_synced_before_the_root_is_written(store, monkeypatch):
    events = []
    real_replace, real_sync = os.replace, store_module.fsync_dir

    def replace(src, dst):
        real_replace(src, dst)
        events.append(("rename", os.path.dirname(os.fspath(dst)), os.path.basename(dst)))

    def sync(path):
        real_sync(path)
        events.append(("sync", os.fspath(path), None))

    monkeypatch.setattr(store_module.os, "replace", replace)
    monkeypatch.setattr(store_module, "fsync_dir", sync)
    cid = ContentStore(store.root, chunk_size=1024, max_links=2).put(os.urandom(5000))
    renames = [i for i, e in enumerate(events) if e[0] == "rename"]
    root_at = next(i for i in renames if events[i][2] == cid)
    assert root_at == renames[-1]
    for i in renames:  # every rename's directory is synced after it ...
        directory = events[i][1]
        synced = [j for j, e in enumerate(events) if e == ("sync", directory, None) and j > i]
        assert synced, events[i]
        if i != root_at:  # ... and a block's before the root is renamed into place
            assert synced[0] < root_at


# --- stray entries and unreadable blocks -------------------------------------------------


def test_stray_entries_under_blocks_are_skipped_and_listed(store):
    cid = store.put(b"hello")
    (store.root / "blocks" / "README").write_text("not a shard")
    (store._path(cid).parent / "notes.txt").write_text("not a block")
    misplaced = store.root / "blocks" / "zz" / cid
    misplaced.parent.mkdir()
    misplaced.write_bytes(b"hello")
    assert list(store.blocks()) == [cid]
    assert store.verify() == []
    assert sorted(p.name for p in store.strays()) == sorted(["README", "notes.txt", cid])


def test_an_unreadable_block_is_a_storage_error_that_names_it(store):
    cid = cid_of(b"a directory stands here")
    store._path(cid).parent.mkdir(parents=True, exist_ok=True)
    store._path(cid).mkdir()
    with pytest.raises(StorageError, match=f"cannot read block {cid}") as refused:
        store.read_block(cid)
    assert not isinstance(refused.value, ContentNotFoundError)
    assert store.verify() == [cid]


def test_a_failed_write_is_a_storage_error_and_leaves_no_temporary_file(store, monkeypatch):
    real = os.replace
    calls = []

    def full(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(src, dst)

    monkeypatch.setattr(store_module.os, "replace", full)
    with pytest.raises(StorageError, match=r"cannot write block \S+ to .*No space left") as failed:
        store.put(os.urandom(5000))
    assert os.path.basename(calls[-1]) in str(failed.value)
    assert list((store.root / "tmp").iterdir()) == []
    assert all(parse(b)[1] == "raw" for b in store.blocks())  # no node names the blocks
