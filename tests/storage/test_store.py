"""The content-addressed store: CIDs as IPFS writes them, integrity on every read, nothing
partial after a failure."""

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.errors import (
    ContentCorruptedError,
    ContentMismatchError,
    ContentNotFoundError,
    InvalidCIDError,
    InvalidParameterError,
    StorageError,
)
from mercat.storage.cid import cid_of, parse
from mercat.storage.store import ContentStore

HELLO = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"  # ../shared/STACK.md


def test_the_cid_of_hello_is_the_one_ipfs_gives():
    assert cid_of(b"hello") == HELLO


def test_a_cid_in_another_multibase_is_read_as_its_base32_form():
    base58 = "zb2rhZfjRh2FHHB2RkHVEvL2vJnCTcu7kwRqgVsf9gpkLgteo"
    assert parse(base58)[0] == HELLO


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "non-empty"),
        ("hello", "not a CID"),
        ("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", "CIDv0"),
        (HELLO[:-1] + "x", "not a CID"),
    ],
)
def test_bad_cids_are_refused(text, message):
    with pytest.raises(InvalidCIDError, match=message):
        parse(text)


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "store", chunk_size=1024)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5000) | st.integers(0, 5000).map(os.urandom))
def test_what_goes_in_comes_out_by_its_cid_from_bytes_or_a_stream(tmp_path_factory, data):
    store = ContentStore(tmp_path_factory.mktemp("s"), chunk_size=1024)
    cid = store.put(data)
    assert store.put_stream(io.BytesIO(data)) == cid
    assert store.get(cid) == data
    info = store.stat(cid)
    assert info.size == len(data)
    chunks = -(-len(data) // 1024)
    assert info.blocks == (1 if chunks <= 1 else chunks + 1)  # the leaves and their root
    assert (info.codec == "raw") == (len(data) <= 1024)


class ShortReads(io.RawIOBase):
    """A pipe-like stream that hands out at most 100 bytes a read."""

    def __init__(self, data):
        self.data = memoryview(data)

    def readable(self):
        return True

    def read(self, n=-1):
        piece, self.data = self.data[: min(n, 100)], self.data[min(n, 100) :]
        return bytes(piece)


def test_short_reads_do_not_move_chunk_boundaries(store):
    data = os.urandom(3500)
    assert store.put_stream(ShortReads(data)) == store.put(data)


def test_equal_chunks_are_stored_once(store):
    store.put(b"a" * 1024 * 5)
    assert len(list(store.blocks())) == 2  # one chunk, five times, and the root


def test_a_corrupted_block_is_refused_and_found_by_verify(store):
    data = os.urandom(3000)
    cid = store.put(data)
    victim = sorted(b for b in store.blocks() if b.startswith("bafkrei"))[1]
    store._path(victim).write_bytes(b"x" * 1024)
    with pytest.raises(ContentCorruptedError, match=victim):
        store.get(cid)
    assert store.verify() == [victim]
    assert store.has(cid)  # present, though not intact: that is verify's question


def test_a_missing_block_is_not_found(store):
    cid = store.put(os.urandom(3000))
    victim = next(b for b in store.blocks() if b.startswith("bafkrei"))
    store._path(victim).unlink()
    assert not store.has(cid)
    with pytest.raises(ContentNotFoundError):
        store.get(cid)
    with pytest.raises(ContentNotFoundError):
        store.get(cid_of(b"never stored"))


def test_a_refused_read_leaves_no_partial_file(store, tmp_path):
    data = os.urandom(3000)
    cid = store.put(data)
    target = tmp_path / "model.bin"
    assert store.get_to_file(cid, target) == 3000
    assert target.read_bytes() == data
    last = [b for b in store.blocks() if b.startswith("bafkrei")]
    for block in last:
        store._path(block).write_bytes(b"bad")
    fresh = tmp_path / "other.bin"
    with pytest.raises(ContentCorruptedError):
        store.get_to_file(cid, fresh)
    assert not fresh.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("tmp")] == []


def test_put_block_checks_the_bytes_against_the_cid(store, tmp_path):
    other = ContentStore(tmp_path / "other", chunk_size=1024)
    data = os.urandom(3000)
    cid = store.put(data)
    for block in store.blocks():  # replicate block by block, as a peer would
        other.put_block(block, store.read_block(block))
    assert other.get(cid) == data
    with pytest.raises(ContentMismatchError, match="hash to something else") as refused:
        other.put_block(cid_of(b"one thing"), b"another thing")
    assert isinstance(refused.value, ValueError)  # the caller's bad input, not stored rot
    assert not isinstance(refused.value, ContentCorruptedError)
    assert not other.has_block(cid_of(b"one thing"))


def test_a_crash_before_the_root_leaves_no_cid_naming_partial_content(store, monkeypatch):
    calls = []
    real = store._write_block

    def failing(cid, data, pending=None):
        calls.append(cid)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(cid, data, pending)

    monkeypatch.setattr(store, "_write_block", failing)
    data = os.urandom(5000)
    with pytest.raises(OSError):
        store.put(data)
    monkeypatch.undo()
    assert all(parse(b)[1] == "raw" for b in store.blocks())  # no node was written
    assert store.get(store.put(data)) == data  # and a retry completes it


@pytest.mark.parametrize("size", [0, 100, 1 << 27, 2.5])
def test_bad_chunk_sizes_are_refused(tmp_path, size):
    with pytest.raises(InvalidParameterError, match="chunk size"):
        ContentStore(tmp_path, chunk_size=size)


def test_a_file_is_not_a_store(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(StorageError, match="not a directory"):
        ContentStore(path)


def test_put_refuses_what_is_not_bytes(store):
    with pytest.raises(InvalidParameterError, match="bytes"):
        store.put("text")  # type: ignore[arg-type]
