"""Replication: a write quorum, and reads that survive and repair bad copies."""

import os

import pytest

from mercat.errors import ContentNotFoundError, InvalidParameterError, StorageError
from mercat.storage.replicated import ReplicatedStore
from mercat.storage.store import ContentStore


@pytest.fixture
def replicas(tmp_path):
    return [ContentStore(tmp_path / f"r{i}", chunk_size=1024) for i in range(3)]


def test_content_survives_while_one_intact_copy_of_each_block_does(replicas):
    store = ReplicatedStore(replicas)
    data = os.urandom(4000)
    cid = store.put(data)
    blocks = sorted(replicas[0].blocks())
    # every block damaged on two replicas, a different pair each time
    for i, block in enumerate(blocks):
        for replica in (replicas[i % 3], replicas[(i + 1) % 3]):
            replica._path(block).write_bytes(b"rot")
    assert store.get(cid) == data
    assert replicas[0].verify() == []  # the first replica is read first: it was repaired
    assert store.repair(cid) > 0
    assert all(r.verify() == [] for r in replicas)
    assert store.repair(cid) == 0


def test_a_block_lost_everywhere_is_not_found(replicas):
    store = ReplicatedStore(replicas)
    cid = store.put(os.urandom(4000))
    block = next(b for b in replicas[0].blocks() if b.startswith("bafkrei"))
    for replica in replicas:
        replica.discard_block(block)
    with pytest.raises(ContentNotFoundError, match="no replica"):
        store.get(cid)


def test_a_write_below_quorum_fails_and_says_which_replicas(replicas, monkeypatch):
    def full(data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(replicas[1], "put", full)
    assert ReplicatedStore(replicas, write_quorum=2).put(b"x" * 10)
    with pytest.raises(StorageError, match=r"only 2 of 3 .*No space"):
        ReplicatedStore(replicas, write_quorum=3).put(b"y" * 10)


def test_bad_replica_sets_are_refused(tmp_path, replicas):
    with pytest.raises(InvalidParameterError, match="at least one"):
        ReplicatedStore([])
    with pytest.raises(InvalidParameterError, match="quorum"):
        ReplicatedStore(replicas, write_quorum=4)
    other = ContentStore(tmp_path / "big", chunk_size=2048)
    with pytest.raises(InvalidParameterError, match="chunk size"):
        ReplicatedStore([*replicas, other])
