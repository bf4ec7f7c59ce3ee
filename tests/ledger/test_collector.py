"""The garbage collector paused for a large batch: off while it runs, as before after it,
shared by threads, and a large settlement still applies as it would with it on."""

from __future__ import annotations

import gc
import threading

from mercat.ledger import collector
from mercat.ledger.collector import collector_paused


def test_the_collector_is_paused_while_a_batch_runs_and_restored_after():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # a second batch, e.g. in another thread
            assert not gc.isenabled()
        assert not gc.isenabled()  # the first one still runs
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_in_the_batch_restores_the_collector():
    try:
        with collector_paused():
            raise ValueError("refused")
    except ValueError:
        pass
    assert gc.isenabled() and collector._batches == 0


def test_threads_share_one_pause():
    inside, release = threading.Barrier(3), threading.Event()

    def batch() -> None:
        with collector_paused():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=batch) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert not gc.isenabled() and collector._batches == 2
    release.set()
    for t in threads:
        t.join()
    assert gc.isenabled() and collector._batches == 0
