"""The report worker (a second process checking a batch's signatures) against the reference.

- its frames: every report valid, the first invalid one found in order, a truncated frame;
- `ReportCheck` through the worker passes exactly when `SignedReport.verify` passes for every
  report and raises the error the one-by-one loop raises first;
- a worker that dies or stops answering costs the batch nothing: it is checked here;
- a batch whose reports are not all of the plain shape takes the threads.
"""

from __future__ import annotations

import io
import os
import signal
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mercat.errors import BadSignatureError
from mercat.identity import Keypair
from mercat.ledger import report_signatures, report_worker
from mercat.ledger.report_signatures import PARALLEL_REPORTS, ReportCheck, report_payload
from mercat.oracle import OracleReport, SignedReport
from tests.ledger.test_fast_paths import FORGERIES, KEYS, LEDGER, _forge, _outcome, _reference


def _batch(size: int) -> list[SignedReport]:
    return [
        SignedReport.sign(OracleReport(1, f"t{i}", i % 3 != 0, True, 10 + i, None, LEDGER),
                          KEYS[i % len(KEYS)])
        for i in range(size)
    ]  # fmt: skip


def _frame(batch: list[SignedReport]) -> bytes:
    return report_worker.encode(
        [(bytes.fromhex(r.oracle), r.signature, report_payload(r)) for r in batch]  # type: ignore[misc]
    )


@pytest.fixture
def worker():  # type: ignore[no-untyped-def]
    report_signatures.stop_worker()
    report_signatures._worker_starts = 0
    assert report_signatures.start_worker(timeout_s=60)
    yield report_signatures._worker
    report_signatures.stop_worker()
    report_signatures._worker_starts = 0


def test_a_frame_answers_the_first_invalid_report_in_order():
    batch = _batch(10)
    assert report_worker.first_invalid(io.BytesIO(_frame(batch))) == report_worker.ALL_VALID
    for bad in (0, 4, 9):
        forged = list(batch)
        forged[bad] = _forge(batch[bad], "verdict")
        forged[min(bad + 2, 9)] = _forge(batch[min(bad + 2, 9)], "signature")
        stream = io.BytesIO(_frame(forged) + _frame(batch))
        assert report_worker.first_invalid(stream) == bad
        # the rest of the first frame was read: the next frame is answered on its own
        assert report_worker.first_invalid(stream) == report_worker.ALL_VALID
        assert report_worker.first_invalid(stream) is None  # the end of the stream


def test_a_truncated_frame_is_the_end_of_the_stream():
    frame = _frame(_batch(3))
    for cut in (0, 2, 10, len(frame) - 1):
        assert report_worker.first_invalid(io.BytesIO(frame[:cut])) is None


def test_the_worker_serves_frames_until_its_input_ends():
    batch = _batch(3)
    forged = [batch[0], _forge(batch[1], "oracle"), batch[2]]
    out = io.BytesIO()
    report_worker.serve(io.BytesIO(_frame(batch) + _frame(forged)), out)
    answers = out.getvalue()
    assert answers[:1] == report_worker.READY
    assert answers[1:] == (report_worker.ALL_VALID).to_bytes(4, "little") + (1).to_bytes(
        4, "little"
    )


# the one worker serves every example, as it serves every batch of a process
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(PARALLEL_REPORTS, 3 * PARALLEL_REPORTS),
    st.lists(st.tuples(st.integers(0, 10**6), FORGERIES), max_size=3),
)
def test_a_batch_checked_by_the_worker_raises_what_the_one_by_one_check_raises(
    worker, size, forgeries
):
    batch = _batch(size)
    for where, how in forgeries:
        batch[where % size] = _forge(batch[where % size], how)
    expected = _outcome(lambda: _reference(batch))
    plain = all(len(r.signature) == 64 for r in batch)
    check = ReportCheck(batch)
    assert (check._worker is not None) == plain  # a short signature takes the threads
    assert _outcome(check.wait) == expected
    assert _outcome(check.wait) == expected  # asked again, the same answer
    assert worker.busy.acquire(blocking=False)  # the worker is free for the next batch
    worker.busy.release()


def test_a_worker_that_dies_mid_batch_costs_the_batch_nothing(worker):
    batch = _batch(PARALLEL_REPORTS)
    batch[7] = _forge(batch[7], "signature")
    check = ReportCheck(batch)
    assert check._worker is worker
    worker.process.kill()
    with pytest.raises(BadSignatureError) as caught:
        check.wait()
    assert _outcome(lambda: _reference(batch)) == (BadSignatureError, str(caught.value))
    # The worker may have answered before the kill landed; once it is gone, the next batch
    # starts a new worker (and takes the threads while it gets ready, which a fresh
    # interpreter importing PyNaCl takes far longer than this call; not asserted: that
    # would be a race).
    worker.process.wait(timeout=30)
    good = _batch(PARALLEL_REPORTS)
    check = ReportCheck(good)
    assert check._worker is not worker
    check.wait()
    assert report_signatures._worker is not worker


def test_a_worker_that_stops_answering_is_stopped_and_the_batch_checked_here(worker, monkeypatch):
    monkeypatch.setattr(report_signatures, "WORKER_TIMEOUT_S", 0.2)
    batch = _batch(PARALLEL_REPORTS)
    os.kill(worker.process.pid, signal.SIGSTOP)  # it never answers
    check = ReportCheck(batch)
    assert check._worker is worker
    check.wait()  # every report is valid: checked here after the timeout
    assert worker.process.poll() is not None  # the stopped worker was ended


def test_a_worker_is_not_started_again_and_again():
    report_signatures.stop_worker()
    report_signatures._worker_starts = report_signatures.MAX_WORKER_STARTS
    try:
        batch = _batch(PARALLEL_REPORTS)
        check = ReportCheck(batch)
        assert check._worker is None and report_signatures._worker is None
        check.wait()
    finally:
        report_signatures._worker_starts = 0


def test_a_report_of_another_shape_sends_the_batch_to_the_threads(worker):
    batch = _batch(PARALLEL_REPORTS)
    batch[3] = replace(batch[3], signature=batch[3].signature[:10])
    check = ReportCheck(batch)
    assert check._worker is None
    assert _outcome(check.wait) == _outcome(lambda: _reference(batch))


def test_keys_unused_here_are_refused_like_the_reference(worker):
    stranger = Keypair.generate()
    batch = _batch(PARALLEL_REPORTS)
    batch[5] = replace(batch[5], oracle=stranger.public)
    check = ReportCheck(batch)
    assert check._worker is worker
    assert _outcome(check.wait) == _outcome(lambda: _reference(batch))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_worker(worker):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its parent's worker is forgotten, its own one checks
        ok = False
        try:
            ok = report_signatures._worker is None and report_signatures.start_worker(60)
            ok = ok and report_signatures._worker.process.pid != worker.process.pid
            check = ReportCheck(_batch(PARALLEL_REPORTS))
            ok = ok and check._worker is not None
            check.wait()
            report_signatures.stop_worker()
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"1"
    assert worker.usable()  # the parent's worker is untouched
    check = ReportCheck(_batch(PARALLEL_REPORTS))
    assert check._worker is worker
    check.wait()
