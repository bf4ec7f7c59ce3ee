"""Peer-to-peer replication over content-addressed stores (seed 002, §III.B, the first of its
three storage types).

A write goes to every replica and succeeds when at least `write_quorum` of them hold every
block. A read takes each block from the first replica whose copy hashes to its CID and writes
that good copy back to the replicas it skipped because their copy was missing or corrupt (read
repair); a replica that refuses the repair is logged and skipped, so the read still succeeds.
`repair` checks every copy and counts every copy it replaced. Content survives as long as one
intact copy of each block does. Because blocks are named by their hash, replicas never need to
agree on anything but the CID: no consensus round, which is why the seed finds this type fastest
(T_c = 0 in eq. 1).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

from mercat import validation as check
from mercat.errors import ContentNotFoundError, InvalidParameterError, StorageError
from mercat.storage.cid import parse
from mercat.storage.content import stream_content
from mercat.storage.store import ContentStore

log = logging.getLogger(__name__)


class ReplicatedStore:
    def __init__(self, replicas: Sequence[ContentStore], write_quorum: int | None = None):
        if not replicas:
            raise InvalidParameterError("a replicated store needs at least one replica")
        layouts = {(r.chunk_size, r.max_links) for r in replicas}
        if len(layouts) != 1:
            raise InvalidParameterError(
                "replicas must share one chunk size and links per node (CIDs depend on them), "
                f"got {sorted(layouts)}"
            )
        quorum = len(replicas) if write_quorum is None else write_quorum
        if check.integer("write quorum", quorum, 1) > len(replicas):
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
            except StorageError as exc:  # the store turns its OSErrors into these
                failures.append(f"{replica.root}: {exc}")
        held = len(self.replicas) - len(failures)
        if held < self.write_quorum:
            raise StorageError(
                f"only {held} of {len(self.replicas)} replicas stored the content "
                f"(quorum {self.write_quorum}): " + "; ".join(failures)
            )
        (cid,) = cids  # same bytes, same chunk size: one CID
        return cid

    def put_pieces(self, pieces: Iterable[bytes]) -> str:
        """Store the concatenation of `pieces` (`encryption.put_encrypted` writes this way);
        held in memory whole, as `put` holds its bytes."""
        return self.put(b"".join(pieces))

    def _fetch(
        self, cid: str, every: bool = False, failed: list[str] | None = None
    ) -> tuple[bytes, int]:
        """The block from the first replica whose copy hashes to `cid`, and the number of
        copies replaced with it: the missing, corrupt or unreadable copies on the replicas read
        before that one (`every`: on all replicas, each one read). A replica that cannot be
        repaired is logged and skipped: the read does not fail while a good copy exists
        (`failed`, when given, collects what went wrong)."""
        canonical, _, _ = parse(cid)  # a bad CID is the caller's error, not a missing block
        good, skipped = None, []
        for replica in self.replicas:
            try:
                data = replica.read_block(canonical)
            except StorageError as exc:
                skipped.append((replica, exc))
                continue
            if good is None:
                good = data
            if not every:
                break
        if good is None:
            reasons = "; ".join(f"{r.root}: {exc}" for r, exc in skipped)
            raise ContentNotFoundError(
                f"no replica holds an intact copy of block {canonical} ({reasons})"
            )
        replaced = 0
        for replica, _ in skipped:
            replaced += self._replace(replica, canonical, good, failed)
        return good, replaced

    def _replace(
        self, replica: ContentStore, cid: str, good: bytes, failed: list[str] | None
    ) -> bool:
        """Put the good copy on `replica` in place of a bad one; False (and a log line) when
        the replica refuses it."""
        try:
            replica.put_block(cid, good)  # replaces a copy that no longer hashes to the CID
        except StorageError as exc:
            log.warning("could not repair block %s on replica %s: %s", cid, replica.root, exc)
            if failed is not None:
                failed.append(f"{replica.root}: {exc}")
            return False
        return True

    def _block(self, cid: str) -> bytes:
        return self._fetch(cid)[0]

    def iter_content(self, cid: str) -> Iterator[bytes]:
        return stream_content(cid, self._block)

    def get(self, cid: str) -> bytes:
        return b"".join(self.iter_content(cid))

    def repair(self, cid: str) -> int:
        """Check every replica's copy of every block of the content and replace the missing or
        corrupt ones from an intact copy (a read repairs only the copies it had to skip);
        returns the number of copies replaced. Copies that could not be replaced (a replica
        that refuses the write) are attempted for every block, then reported together with
        `StorageError`."""
        replaced = 0
        failed: list[str] = []

        def check_all(block: str) -> bytes:
            nonlocal replaced
            good, count = self._fetch(block, every=True, failed=failed)
            replaced += count
            return good

        for _ in stream_content(cid, check_all):
            pass
        if failed:
            raise StorageError(
                f"replaced {replaced} copies of {cid}'s blocks; could not replace "
                f"{len(failed)}: " + "; ".join(failed)
            )
        return replaced
