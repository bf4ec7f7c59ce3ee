"""Python's cyclic garbage collector paused while the ledger applies one large batch.

A batch of 1000 tasks keeps some 40,000 objects alive until it ends (parsed reports, task
records, rows), nearly all freed by reference counting then; while it runs, the collector's
young collections (about 60 per 1000 tasks) walk them and promote survivors until a full
collection walks every object the process holds. Measured on the settlement benchmark,
that was 25-33 µs per task, 15-20 % of the settling thread (`docs/ledger.md`, "Measured
throughput"). Pausing costs nothing in correctness: a cycle
made meanwhile is found by the next collection after the batch. The memory a pause can
hold is bounded by one message (at most `MAX_TASKS` tasks). Threads share the one
collector: the first batch to start pauses it, the last to finish restores it, and a
collector that was already off stays off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: A message of at least this many bytes pauses the collector (some 40 tasks' reports).
LARGE_MESSAGE = 16 * 1024

_lock = threading.Lock()
_batches = 0  # batches running with the collector paused
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off, as it was before afterwards."""
    global _batches, _was_enabled
    with _lock:
        if _batches == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _batches += 1
    try:
        yield
    finally:
        with _lock:
            _batches -= 1
            if _batches == 0 and _was_enabled:
                gc.enable()
