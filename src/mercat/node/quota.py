"""The store's quota: the bytes of blocks a node keeps for the network (`store_quota_bytes`).

Counting is conservative and cheap: the store's size is measured once when the node starts;
each accepted upload then adds the bytes it could at most have written (its content and its
manifest), although deduplication may have written less. Only when an upload would pass the
quota is the store measured again, exactly, before it is refused: so an upload is never
refused for bytes the store does not hold, and the common case walks nothing. Uploads in
progress hold a reservation, so that two at once cannot together pass the quota.

Bytes written to the store by anything else than this node (another process, a peer's
replication through the library) count from the next measurement on.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mercat import errors as e

# A manifest holds one link (about 70 bytes of JSON) per chunk of at least 1 KiB, and a
# fixed head: 1/8 of the content plus 4 KiB bounds it with room to spare.
MANIFEST_SHARE, MANIFEST_HEAD = 8, 4096


def store_bytes(root: Path) -> int:
    """Bytes of every file under `root` (blocks, manifests and leftovers of a crash)."""
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):  # removed since the listing
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def upload_cost(size: int) -> int:
    """The most bytes storing `size` bytes of content can add to the store."""
    return size + size // MANIFEST_SHARE + MANIFEST_HEAD


class StoreQuota:
    """See the module docstring. Thread-safe: uploads run in worker threads."""

    def __init__(self, root: Path, limit: int) -> None:
        self.root, self.limit = Path(root), limit
        self._lock = threading.Lock()
        self.used = store_bytes(self.root)
        self.reserved = 0

    def check(self, size: int) -> None:
        """StoreQuotaError if `size` bytes of content cannot fit (for an upload still
        arriving: refused as soon as what arrived cannot fit)."""
        self._admit(upload_cost(size), reserve=False)

    @contextmanager
    def holding(self, size: int) -> Iterator[None]:
        """Reserve room for `size` bytes of content while they are stored; count them as
        used afterwards (whether or not they were all new)."""
        cost = upload_cost(size)
        self._admit(cost, reserve=True)
        stored = False
        try:
            yield
            stored = True
        finally:
            with self._lock:
                self.reserved -= cost
                if stored:
                    self.used += cost

    def _admit(self, cost: int, *, reserve: bool) -> None:
        with self._lock:
            if self.used + self.reserved + cost > self.limit:
                self.used = store_bytes(self.root)  # exact, before refusing
                if self.used + self.reserved + cost > self.limit:
                    raise e.StoreQuotaError(
                        f"content of up to {cost} bytes does not fit this node's store quota "
                        f"of {self.limit} bytes ({self.used} used, {self.reserved} reserved "
                        "by uploads in progress)"
                    )
            if reserve:
                self.reserved += cost


class Unmetered:
    """The quota of a store this node does not keep on its own disk (an IPFS daemon's,
    `mercat.storage.kubo.KuboStore`): the daemon manages its space; the node's body limits
    and rate limits still bound what one client can send."""

    def check(self, size: int) -> None:
        pass

    @contextmanager
    def holding(self, size: int) -> Iterator[None]:
        yield
