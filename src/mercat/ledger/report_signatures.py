"""Checking the signatures of a batch's oracle reports (seed 002's oracles), fast.

A `SettleTasks` message carries one or more signed reports per task; each Ed25519
verification costs libsodium about 60-140 µs (machine dependent), and
`SignedReport.verify` adds its own Python work around it: encoding the payload through the
general canonical-JSON check and building a `VerifyKey` per report. For a batch of
thousands that overhead, which holds the GIL, is what stops the verification threads from
running beside the settlement's own work. Here:

- `report_payload` writes a report's signed bytes directly (its fields were validated when
  the report was built, so no character needs escaping); `SignedReport.signed_payload` is
  its reference twin and a test holds them equal;
- `verify_reports` verifies with one `VerifyKey` per oracle (a batch has a handful); any
  report that fails, or that does not have the plain shape the fast path expects, is checked
  again by `SignedReport.verify`, so the error raised is exactly the reference's;
- `ReportCheck` checks a large batch while the caller goes on: in the report worker, a
  second process (`mercat.ledger.report_worker`), when it is ready and idle and every report
  has the plain shape; otherwise in `REPORT_THREADS` threads running `verify_reports`
  (libsodium releases the GIL, but each check takes it back for a moment, and gets it only
  at the interpreter's switch interval while the caller runs Python). `wait` returns once
  every report verified, or raises the first report's error in batch order, as the
  one-by-one loop would: a report the worker refuses is checked again by
  `SignedReport.verify`, which raises the exact error.
"""

from __future__ import annotations

import atexit
import os
import select
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import nacl.exceptions
import nacl.signing

from mercat.ledger import report_worker
from mercat.oracle.report import DOMAIN, SignedReport

#: Threads that check a large batch's report signatures beside the transaction.
REPORT_THREADS = 2
#: Batches with fewer reports are checked inline (a thread costs more than a few checks).
PARALLEL_REPORTS = 64
#: Whether large batches may be checked in the report worker process (else threads only).
WORKER_PROCESS = True
#: Seconds a batch waits for the worker's answer before it is stopped and the batch is
#: checked here instead (a healthy worker answers a batch of 10,000 reports in about 1 s).
WORKER_TIMEOUT_S = 60.0

_HEX = frozenset("0123456789abcdef")
_PREFIX = '{"digest":'


def plain_key(value: object) -> bool:
    """Whether `value` is a public key as `check_public_key` accepts it (64 lowercase hex
    digits), without its per-character generator."""
    return type(value) is str and len(value) == 64 and _HEX.issuperset(value)


def report_payload(signed: SignedReport) -> bytes | None:
    """The bytes `signed.oracle` signed for `signed.report` (what
    `report.signed_payload(oracle)` returns), or None when a field is not of the plain type
    the fast encoding assumes (the caller then takes the reference path)."""
    r = signed.report
    if not (
        type(r.round) is int
        and type(r.latency_ms) is int
        and type(r.task) is str
        and type(r.success) is bool
        and type(r.sla_met) is bool
        and type(r.ledger) is str
        and (r.digest is None or type(r.digest) is str)
        and plain_key(signed.oracle)
    ):
        return None
    # OracleReport checked task, digest and ledger against plain-character patterns, so
    # JSON needs no escape for them; keys in sorted order, compact, as canonical_bytes.
    digest = "null" if r.digest is None else f'"{r.digest}"'
    return (
        f'{_PREFIX}{digest},"domain":"{DOMAIN}","latency_ms":{r.latency_ms},'
        f'"ledger":"{r.ledger}","oracle":"{signed.oracle}","round":{r.round},'
        f'"sla_met":{"true" if r.sla_met else "false"},'
        f'"success":{"true" if r.success else "false"},"task":"{r.task}"}}'
    ).encode()


def verify_reports(reports: Sequence[SignedReport]) -> None:
    """Raise the error `SignedReport.verify` raises for the first report (in order) whose
    signature does not verify; return if all do."""
    keys: dict[str, nacl.signing.VerifyKey] = {}
    for signed in reports:
        payload = report_payload(signed)
        signature = signed.signature
        if payload is None or type(signature) is not bytes or len(signature) != 64:
            signed.verify()  # the reference raises the exact error (or passes)
            continue
        key = keys.get(signed.oracle)
        if key is None:
            key = keys[signed.oracle] = nacl.signing.VerifyKey(bytes.fromhex(signed.oracle))
        try:
            key.verify(payload, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            signed.verify()  # raises BadSignatureError with the reference's message
            raise AssertionError("the fast and the reference check disagree") from None


def _frame_items(reports: Sequence[SignedReport]) -> list[tuple[bytes, bytes, bytes]] | None:
    """(key, signature, payload) of every report for the worker, or None if one is not of
    the plain shape `report_payload` writes (the batch then takes the threads, whose
    `verify_reports` sends such a report to the reference)."""
    items = []
    keys: dict[str, bytes] = {}
    for signed in reports:
        payload = report_payload(signed)
        signature = signed.signature
        if payload is None or type(signature) is not bytes or len(signature) != 64:
            return None
        key = keys.get(signed.oracle)
        if key is None:
            key = keys[signed.oracle] = bytes.fromhex(signed.oracle)
        items.append((key, signature, payload))
    return items


class _Worker:
    """The report worker process (`mercat.ledger.report_worker`) and the lock that lets one
    batch at a time use it."""

    def __init__(self) -> None:
        self.pid = os.getpid()  # a forked child must not share its parent's pipes
        self.busy = threading.Lock()
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, report_worker.__file__],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        threading.Thread(target=self._await_ready, name="mercat-report-worker", daemon=True).start()

    def _await_ready(self) -> None:
        assert self.process.stdout is not None
        if os.read(self.process.stdout.fileno(), 1) == report_worker.READY:
            self.ready.set()

    def usable(self) -> bool:
        return self.pid == os.getpid() and self.process.poll() is None

    def send(self, frame: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(frame)
        self.process.stdin.flush()

    def answer(self) -> int | None:
        """The worker's answer to the frame sent, or None if it died or took too long (it is
        stopped then)."""
        assert self.process.stdout is not None
        fd, data = self.process.stdout.fileno(), b""
        while len(data) < 4:
            readable, _, _ = select.select([fd], [], [], WORKER_TIMEOUT_S)
            chunk = os.read(fd, 4 - len(data)) if readable else b""
            if not chunk:
                self.stop()
                return None
            data += chunk
        return int.from_bytes(data, "little")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


#: Workers one process starts at most (one that keeps dying is not started again).
MAX_WORKER_STARTS = 3

_worker: _Worker | None = None
_worker_starts = 0
_worker_lock = threading.Lock()


def _running_worker() -> _Worker | None:
    """The report worker, started if there is none (the caller holds `_worker_lock`)."""
    global _worker, _worker_starts
    if _worker is not None and _worker.usable():
        return _worker
    _worker = None
    if _worker_starts >= MAX_WORKER_STARTS:
        return None
    _worker_starts += 1
    try:
        _worker = _Worker()
    except OSError:
        return None
    return _worker


def start_worker(timeout_s: float = 10.0) -> bool:
    """Start the report worker now rather than on the first large batch (a long-running
    ledger; benchmarks), and wait until it is ready; whether it is."""
    with _worker_lock:
        worker = _running_worker()
    return worker is not None and worker.ready.wait(timeout_s)


def _idle_worker() -> _Worker | None:
    """The report worker, locked for one batch, if it is ready and idle; starts it (for a
    later batch: it imports PyNaCl first, and this batch takes the threads) if there is
    none."""
    with _worker_lock:
        worker = _running_worker()
        if worker is None or not worker.ready.is_set() or not worker.busy.acquire(blocking=False):
            return None
        return worker


def stop_worker() -> None:
    """Stop the report worker, if one runs (at exit; tests)."""
    global _worker
    with _worker_lock:
        if _worker is not None and _worker.pid == os.getpid():
            _worker.stop()
        _worker = None


def _forget_worker_in_child() -> None:
    """A forked child starts its own worker, and must not wait on a lock some thread of its
    parent held at the fork."""
    global _worker, _worker_starts, _worker_lock
    _worker, _worker_starts, _worker_lock = None, 0, threading.Lock()


atexit.register(stop_worker)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_worker_in_child)


class ReportCheck:
    """The signature check of `reports`, run beside the caller when there are many."""

    def __init__(self, reports: Sequence[SignedReport]) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []
        self._error: BaseException | None = None
        self._reports = reports
        self._worker: _Worker | None = None
        if len(reports) < PARALLEL_REPORTS:
            verify_reports(reports)  # raises now, before any transaction begins
            return
        if WORKER_PROCESS and self._in_worker():
            return
        # Contiguous slices, so that the first failing slice holds the first bad report.
        size = -(-len(reports) // REPORT_THREADS)
        self._pool = ThreadPoolExecutor(REPORT_THREADS, thread_name_prefix="mercat-reports")
        self._futures = [
            self._pool.submit(verify_reports, reports[start : start + size])
            for start in range(0, len(reports), size)
        ]

    def _in_worker(self) -> bool:
        """Hand the batch to the report worker if it is ready and idle."""
        items = _frame_items(self._reports)
        worker = _idle_worker() if items is not None else None
        if worker is None:
            return False
        try:
            worker.send(report_worker.encode(items))  # type: ignore[arg-type]
        except OSError:  # it died: the threads check this batch, a new worker the next
            worker.stop()
            worker.busy.release()
            return False
        self._worker = worker
        return True

    def _worker_result(self, worker: _Worker) -> None:
        try:
            answer = worker.answer()
        finally:
            worker.busy.release()
        if answer is None:  # the worker died or hung: check the batch here
            verify_reports(self._reports)
        elif answer != report_worker.ALL_VALID:
            self._reports[answer].verify()  # raises the reference's error
            raise AssertionError("the worker and the reference check disagree")

    def wait(self) -> None:
        """Return once every report verified; otherwise raise the first failure (again on
        every call)."""
        if self._worker is not None:
            worker, self._worker = self._worker, None
            try:
                self._worker_result(worker)
            except BaseException as exc:  # kept, and raised again on every call
                self._error = exc
        if self._pool is not None:
            try:
                for future in self._futures:
                    error = future.exception()
                    if error is not None and self._error is None:
                        self._error = error
            finally:
                self._pool.shutdown(wait=True)
                self._pool = None
        if self._error is not None:
            raise self._error
