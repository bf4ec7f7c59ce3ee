"""Replication: a write quorum, and reads that survive and repair bad copies."""

import logging
import os
import random
import shutil

import pytest

from mercat.errors import (
    ContentNotFoundError,
    InvalidCIDError,
    InvalidParameterError,
    StorageError,
)
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
    def full(data):  # what ContentStore.put raises when its disk is full
        raise StorageError("cannot write block: No space left on device")

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


def test_repair_counts_every_copy_it_replaces(replicas):
    store = ReplicatedStore(replicas)
    data = os.urandom(4000)
    cid = store.put(data)
    x, y, z = sorted(b for b in replicas[0].blocks() if b.startswith("bafkrei"))[:3]
    for replica in replicas[:2]:  # x: bad on the two replicas read before the good copy
        replica._path(x).write_bytes(b"rot")
    replicas[2]._path(y).write_bytes(b"rot")  # y: bad on the last replica only
    replicas[1].discard_block(z)  # z: missing on the middle one
    replicas[0].discard_block(cid)  # the root: missing on the first
    assert store.repair(cid) == 5
    assert all(r.verify() == [] for r in replicas)
    assert store.repair(cid) == 0


def test_a_replica_that_cannot_be_repaired_does_not_fail_the_read(replicas, caplog):
    store = ReplicatedStore(replicas)
    data = random.Random(2).randbytes(4000)  # fixed: its 5 blocks lie in 5 shards
    cid = store.put(data)
    block = next(b for b in replicas[0].blocks() if b.startswith("bafkrei"))
    shard = replicas[0]._path(block).parent
    assert len(list(shard.iterdir())) == 1
    shutil.rmtree(shard)
    shard.write_bytes(b"a file where the shard directory was")  # no block can go there
    with caplog.at_level(logging.WARNING, logger="mercat.storage.replicated"):
        assert store.get(cid) == data
    assert f"could not repair block {block}" in caplog.text
    assert str(replicas[0].root) in caplog.text
    with pytest.raises(StorageError, match=rf"could not replace 1: {replicas[0].root}"):
        store.repair(cid)
    assert all(r.verify() == [] for r in replicas[1:])


def test_a_put_repairs_a_replica_whose_copy_is_corrupt(replicas):
    store = ReplicatedStore(replicas)
    data = os.urandom(4000)
    cid = store.put(data)
    block = next(b for b in replicas[1].blocks() if b.startswith("bafkrei"))
    replicas[1]._path(block).write_bytes(b"rot")
    assert store.put(data) == cid  # a quorum of 3 means: every replica holds it intact
    assert all(r.verify() == [] for r in replicas)
    for replica in replicas:
        assert replica.get(cid) == data


def test_a_bad_cid_is_the_callers_error_not_a_missing_block(replicas):
    with pytest.raises(InvalidCIDError):
        ReplicatedStore(replicas).get("not-a-cid")
