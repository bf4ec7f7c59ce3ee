"""Peer-to-peer replication over content-addressed stores (seed 002, §III.B, the first of its
three storage types).

A write goes to every replica and succeeds when at least `write_quorum` of them hold every
block. A read takes each block from the first replica whose copy hashes to its CID and writes
that good copy back to the replicas it skipped because their copy was missing or corrupt (read
repair); `repair` checks every copy. Content survives as long as one intact copy of each block
does. Because blocks are named by their
hash, replicas never need to agree on anything but the CID: no consensus round, which is why
the seed finds this type fastest (T_c = 0 in eq. 1).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mercat.errors import (
    ContentCorruptedError,
    ContentNotFoundError,
    InvalidParameterError,
    StorageError,
)
from mercat.storage.store import ContentStore, stream_content


class ReplicatedStore:
    def __init__(self, replicas: Sequence[ContentStore], write_quorum: int | None = None):
        if not replicas:
            raise InvalidParameterError("a replicated store needs at least one replica")
        sizes = {r.chunk_size for r in replicas}
        if len(sizes) != 1:
            raise InvalidParameterError(
                f"replicas must share one chunk size (CIDs depend on it), got {sorted(sizes)}"
            )
        quorum = len(replicas) if write_quorum is None else write_quorum
        if (
            isinstance(quorum, bool)
            or not isinstance(quorum, int)
            or not 1 <= quorum <= len(replicas)
        ):
            raise InvalidParameterError(
                f"write quorum must be an integer in [1, {len(replicas)}], got {write_quorum!r}"
            )
        self.replicas = tuple(replicas)
        self.write_quorum = quorum

    def put(self, data: bytes) -> str:
        """Store on every replica; the CID once `write_quorum` replicas hold the content."""
        cids, failures = set(), []
        for replica in self.replicas:
            try:
                cids.add(replica.put(data))
            except StorageError as exc:
                failures.append(f"{replica.root}: {exc}")
            except OSError as exc:
                failures.append(f"{replica.root}: {exc.strerror}")
        held = len(self.replicas) - len(failures)
        if held < self.write_quorum:
            raise StorageError(
                f"only {held} of {len(self.replicas)} replicas stored the content "
                f"(quorum {self.write_quorum}): " + "; ".join(failures)
            )
        (cid,) = cids  # same bytes, same chunk size: one CID
        return cid

    def _block(self, cid: str) -> bytes:
        good, need_repair = None, []
        for replica in self.replicas:
            try:
                good = replica.read_block(cid)
                break
            except (ContentNotFoundError, ContentCorruptedError):
                need_repair.append(replica)
        if good is None:
            raise ContentNotFoundError(f"no replica holds an intact copy of block {cid}")
        for replica in need_repair:
            replica.discard_block(cid)  # a corrupt copy must not shadow the good one
            replica.put_block(cid, good)
        return good

    def iter_content(self, cid: str) -> Iterator[bytes]:
        return stream_content(cid, self._block)

    def get(self, cid: str) -> bytes:
        return b"".join(self.iter_content(cid))

    def repair(self, cid: str) -> int:
        """Check every replica's copy of every block of the content and replace the missing or
        corrupt ones from an intact copy (a read repairs only the copies it had to skip);
        returns the number of copies replaced."""
        replaced = 0

        def check_all(block: str) -> bytes:
            nonlocal replaced
            good = self._block(block)
            for replica in self.replicas:
                try:
                    replica.read_block(block)
                except (ContentNotFoundError, ContentCorruptedError):
                    replica.discard_block(block)
                    replica.put_block(block, good)
                    replaced += 1
            return good

        for _ in stream_content(cid, check_all):
            pass
        return replaced
