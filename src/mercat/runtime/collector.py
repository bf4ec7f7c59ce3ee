"""Python's garbage collector while a simulation runs rounds of the pipeline.

A simulated market allocates millions of short-lived objects (terms, market parts, tasks,
settlements) and keeps few of them: almost all are freed by reference counting, and the
cyclic collector finds no cycles in them (the round pipeline builds none). It still runs,
every 700 allocations, and each tenth pass of the oldest young generation triggers a full
collection that walks every object alive, the imported libraries included: numba's
compiler alone leaves some 60,000 objects whose walk costs about 40 ms here, so a
round of 2,000 tasks spent a fifth of its CPU in the collector
(`benchmarks/bench_rounds.py`, `garbage_collector_seconds`).

`fewer_collections` makes both costs small while a run lasts and restores them after it:

- young collections every `FIRST_THRESHOLD` allocations instead of 700;
- the objects alive when the run starts (the libraries, the caller's data) are moved to
  the collector's permanent generation (`gc.freeze`), which full collections skip, and
  moved back when the run ends (`gc.unfreeze`). Where something else in the process froze
  objects already, that is left as it is.

Nothing is left uncollected: a cycle made during the run is found at the next collection,
which comes later; one among the frozen objects is found after the run. Runs in several
threads share one setting: the first to start sets it, the last to end restores it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FIRST_THRESHOLD = 10_000
"""Allocations between two young-generation collections while a run lasts (Python's default
is 700)."""

_lock = threading.Lock()
_runs = 0  # runs under way in this process
_before: tuple[int, int, int] = gc.get_threshold()
_froze = False  # whether the first run froze the objects alive (and the last must unfreeze)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The collector as described in the module docstring while the block runs."""
    global _runs, _before, _froze
    with _lock:
        if _runs == 0:
            _before = gc.get_threshold()
            first, *older = _before
            gc.set_threshold(max(first, FIRST_THRESHOLD), *older)
            _froze = gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0:
                gc.set_threshold(*_before)
                if _froze:
                    gc.unfreeze()
                    _froze = False
