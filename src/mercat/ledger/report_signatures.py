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
- `ReportCheck` runs `verify_reports` in `REPORT_THREADS` threads while the caller goes on
  (libsodium releases the GIL); `wait` returns once every report verified, or raises the
  first report's error in batch order, as the one-by-one loop would.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import nacl.exceptions
import nacl.signing

from mercat.oracle.report import DOMAIN, SignedReport

#: Threads that check a large batch's report signatures beside the transaction.
REPORT_THREADS = 2
#: Batches with fewer reports are checked inline (a thread costs more than a few checks).
PARALLEL_REPORTS = 64

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


class ReportCheck:
    """The signature check of `reports`, run beside the caller when there are many."""

    def __init__(self, reports: Sequence[SignedReport]) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []
        self._error: BaseException | None = None
        if len(reports) < PARALLEL_REPORTS:
            verify_reports(reports)  # raises now, before any transaction begins
            return
        # Contiguous slices, so that the first failing slice holds the first bad report.
        size = -(-len(reports) // REPORT_THREADS)
        self._pool = ThreadPoolExecutor(REPORT_THREADS, thread_name_prefix="mercat-reports")
        self._futures = [
            self._pool.submit(verify_reports, reports[start : start + size])
            for start in range(0, len(reports), size)
        ]

    def wait(self) -> None:
        """Return once every report verified; otherwise raise the first failure (again on
        every call)."""
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
