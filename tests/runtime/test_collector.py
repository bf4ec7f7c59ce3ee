"""The garbage collector's setting while a simulation runs (`mercat.runtime.collector`)."""

import gc
import threading

import pytest

from mercat.runtime.collector import FIRST_THRESHOLD, fewer_collections


def test_a_run_freezes_what_was_alive_and_restores_everything_after():
    before = gc.get_threshold()
    alive = object.__new__(type("Alive", (), {}))  # a tracked object made before the run
    with fewer_collections():
        assert gc.get_threshold() == (max(before[0], FIRST_THRESHOLD), *before[1:])
        assert gc.get_freeze_count() > 0
        assert not any(o is alive for o in gc.get_objects())  # frozen: collections skip it
        made = [[]]  # made during the run: collectable as ever
        assert any(o is made for o in gc.get_objects())
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert any(o is alive for o in gc.get_objects())


def test_nested_and_failing_runs_restore_the_setting_once():
    before = gc.get_threshold()
    with fewer_collections(), fewer_collections():  # nested: one setting
        assert gc.get_threshold()[0] == max(before[0], FIRST_THRESHOLD)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("a run that fails restores it too")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_runs_in_threads_share_one_setting_until_the_last_ends():
    before = gc.get_threshold()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first():
        with fewer_collections():
            first_in.set()
            second_in.wait()
        first_out.set()

    def second():
        first_in.wait()
        with fewer_collections():
            second_in.set()
            first_out.wait()
            seen.append((gc.get_threshold()[0], gc.get_freeze_count() > 0))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [(max(before[0], FIRST_THRESHOLD), True)]
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_objects_frozen_by_someone_else_stay_frozen():
    theirs = [[]]
    gc.freeze()
    try:
        with fewer_collections():
            assert not any(o is theirs for o in gc.get_objects())
        assert not any(o is theirs for o in gc.get_objects())  # not unfrozen by the run
    finally:
        gc.unfreeze()
    assert any(o is theirs for o in gc.get_objects())
