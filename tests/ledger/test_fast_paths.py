"""The batch settlement's fast paths against their reference twins.

- `report_payload` (the bytes an oracle signed, written directly) equals
  `OracleReport.signed_payload` for any report;
- `verify_reports` and `ReportCheck` (one VerifyKey per oracle, threads for a large batch)
  pass exactly when `SignedReport.verify` passes for every report, and raise the error the
  one-by-one loop raises first;
- `messages._canonical` (floats found by the C decoder) answers as `canonical_bytes`, and a
  float is refused with the same error;
- `bulk` writes (executemany on SQLite, unnest arrays on PostgreSQL) leave exactly the rows
  SQLAlchemy's own statements leave, on both stores;
- a forged report in a batch large enough to be checked beside the transaction is still the
  error raised, and nothing is written.
"""

from __future__ import annotations

import gc
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, insert, select, update

from mercat.errors import BadSignatureError, MalformedMessageError
from mercat.identity import Keypair, canonical_bytes
from mercat.ledger import (
    SettleTasks,
    SignedMessage,
    TaskReports,
    messages,
    report_signatures,
)
from mercat.ledger import ledger as ledger_module
from mercat.ledger import schema as s
from mercat.ledger.bulk import insert_rows, select_in, update_rows
from mercat.ledger.ledger import LARGE_MESSAGE
from mercat.ledger.report_signatures import (
    PARALLEL_REPORTS,
    ReportCheck,
    report_payload,
    verify_reports,
)
from mercat.ledger.store import Txn, make_engine, run_in_transaction
from mercat.oracle import OracleReport, SignedReport
from mercat.runtime.collector import FIRST_THRESHOLD
from tests.ledger.market import Market

KEYS = [Keypair.generate() for _ in range(3)]
STRANGER = Keypair.generate()  # signs, but is in no oracle set
LEDGER = "0123456789abcdef0123456789abcdef"

ids = st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z")
digests = st.none() | st.from_regex(r"\A[A-Za-z0-9_.:-]{1,128}\Z")
reports = st.builds(
    OracleReport,
    round=st.integers(0, 2**62 - 1),
    task=ids,
    success=st.booleans(),
    sla_met=st.booleans(),
    latency_ms=st.integers(0, 2**62 - 1),
    digest=digests,
    ledger=st.sampled_from(["", LEDGER]),
)


@settings(max_examples=300, deadline=None)
@given(reports, st.sampled_from(KEYS))
def test_report_payload_is_the_signed_payload(report, key):
    signed = SignedReport.sign(report, key)
    assert report_payload(signed) == report.signed_payload(key.public)


def _outcome(check):  # type: ignore[no-untyped-def]
    try:
        check()
    except (BadSignatureError, MalformedMessageError) as exc:
        return type(exc), str(exc)
    return None


def _reference(batch):  # type: ignore[no-untyped-def]
    for signed in batch:
        signed.verify()


def _forge(signed: SignedReport, how: str) -> SignedReport:
    if how == "signature":
        flipped = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
        return replace(signed, signature=flipped)
    if how == "verdict":
        return replace(signed, report=replace(signed.report, success=not signed.report.success))
    if how == "oracle":  # claims another oracle signed it
        return replace(signed, oracle=KEYS[(KEYS.index(_key(signed)) + 1) % len(KEYS)].public)
    if how == "short":
        return replace(signed, signature=signed.signature[:10])
    raise AssertionError(how)


def _key(signed: SignedReport) -> Keypair:
    return next(k for k in KEYS if k.public == signed.oracle)


FORGERIES = st.sampled_from(["signature", "verdict", "oracle", "short"])


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 3 * PARALLEL_REPORTS),
    st.lists(st.tuples(st.integers(0, 10**6), FORGERIES), max_size=3),
)
def test_batch_check_raises_what_the_one_by_one_check_raises(size, forgeries):
    batch = [
        SignedReport.sign(OracleReport(1, f"t{i}", i % 3 != 0, True, 10 + i, None, LEDGER),
                          KEYS[i % len(KEYS)])
        for i in range(size)
    ]  # fmt: skip
    for where, how in forgeries:
        batch[where % size] = _forge(batch[where % size], how)
    expected = _outcome(lambda: _reference(batch))
    assert _outcome(lambda: verify_reports(batch)) == expected
    check = ReportCheck(batch) if expected is None or size >= PARALLEL_REPORTS else None
    if check is None:  # a small batch is checked at once, raising before any transaction
        assert _outcome(lambda: ReportCheck(batch)) == expected
    else:
        assert _outcome(check.wait) == expected
        assert _outcome(check.wait) == expected  # asked again, the same answer


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8)
    | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(json_values, st.booleans())
def test_canonical_check_answers_as_canonical_bytes(value, sorted_compact):
    data = {"body": value}
    if sorted_compact:
        payload = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    else:
        payload = json.dumps(data, indent=1, ensure_ascii=False).encode()
    parsed = json.loads(payload)
    reference = _outcome(lambda: canonical_bytes(parsed) == payload)
    fast = _outcome(lambda: messages._canonical(payload, parsed))
    assert fast == reference
    if reference is None:
        assert messages._canonical(payload, parsed) == (canonical_bytes(parsed) == payload)


def _rows(engine, table):  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return sorted(tuple(r) for r in connection.execute(select(table)).all())


def test_bulk_writes_match_sqlalchemys_statements(store_url):
    """The same postings, balance changes and verdicts through `bulk` and through Core
    statements, in two copies of the same rows; the tables must end equal."""
    engine = make_engine(store_url, durable=False)
    s.metadata.create_all(engine)
    names = [f"avail:{i:03d}" for i in range(50)]
    try:

        def fill(tx: Txn) -> None:
            tx.execute(insert(s.entries), [
                {"id": 1, "op": "x", "signer": "a", "nonce": 1, "payload": "{}", "signature": "s"}
            ])  # fmt: skip

        run_in_transaction(engine, fill)

        def fast(tx: Txn) -> list[tuple[object, ...]]:
            insert_rows(tx, "books", ("name", "kind", "balance"), [(n, "avail", 0) for n in names])
            insert_rows(tx, "postings", ("entry_id", "book", "amount"),
                        [(1, n, i + 1) for i, n in enumerate(names)])  # fmt: skip
            update_rows(tx, "books", ("balance",), ("name",),
                        [(i + 1, n) for i, n in enumerate(names)], add=True)  # fmt: skip
            update_rows(tx, "books", ("kind",), ("name",), [("unbond", names[7])])
            return select_in(tx, "SELECT name, balance FROM books WHERE {in} ORDER BY name",
                             "name", names[::7], lock=tx.locking)  # fmt: skip

        got = run_in_transaction(engine, fast)
        fast_books, fast_postings = _rows(engine, s.books), _rows(engine, s.postings)

        def reset(tx: Txn) -> None:
            tx.execute(s.postings.delete())
            tx.execute(s.books.delete())

        run_in_transaction(engine, reset)

        def reference(tx: Txn) -> None:
            tx.execute(insert(s.books), [{"name": n, "kind": "avail", "balance": 0} for n in names])
            tx.execute(insert(s.postings), [{"entry_id": 1, "book": n, "amount": i + 1}
                                            for i, n in enumerate(names)])  # fmt: skip
            tx.execute(
                update(s.books).where(s.books.c.name == bindparam("n"))
                .values(balance=s.books.c.balance + bindparam("a")),
                [{"n": n, "a": i + 1} for i, n in enumerate(names)],
            )  # fmt: skip
            tx.execute(update(s.books).where(s.books.c.name == names[7]).values(kind="unbond"))

        run_in_transaction(engine, reference)
        assert _rows(engine, s.books) == fast_books
        # postings in id order: ids follow the order the rows were given, in both forms
        assert [p[1:] for p in _rows(engine, s.postings)] == [p[1:] for p in fast_postings]
        assert [p[2] for p in fast_postings] == names
        assert got == [(n, b) for n, _, b in fast_books if n in names[::7]]
    finally:
        engine.dispose()


@pytest.mark.parametrize("empty", [[], ()])
def test_bulk_helpers_do_nothing_without_rows(sqlite_url, empty):
    engine = make_engine(sqlite_url, durable=False)
    s.metadata.create_all(engine)
    try:

        def work(tx: Txn) -> list[tuple[object, ...]]:
            insert_rows(tx, "books", ("name", "kind", "balance"), empty)
            update_rows(tx, "books", ("balance",), ("name",), empty, add=True)
            return select_in(tx, "SELECT name FROM books WHERE {in}", "name", empty)

        assert run_in_transaction(engine, work) == []
        assert _rows(engine, s.books) == []
    finally:
        engine.dispose()


WIRE_CHANGES = st.sampled_from([
    ("oracle", "A" * 64), ("oracle", "ab"), ("oracle", 7), ("oracle", KEYS[1].public),
    ("signature", "zz" * 64), ("signature", "AB" * 64), ("signature", "ab"), ("signature", None),
    ("round", 1.0), ("round", True), ("round", -1), ("round", 2**62), ("task", ""),
    ("task", "a b"), ("success", 1), ("sla_met", None), ("latency_ms", "5"), ("digest", ""),
    ("digest", "ok:1"), ("ledger", "XYZ"), ("ledger", ""), ("extra", 1), ("drop", "task"),
    ("drop", "oracle"),
])  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(reports, st.lists(WIRE_CHANGES, max_size=3))
def test_report_parsing_equals_from_wire(report, changes):
    wire = SignedReport.sign(report, KEYS[0]).to_wire()
    for field, value in changes:
        if field == "drop":
            wire.pop(value, None)
        else:
            wire[field] = value

    def parsed(parse):  # type: ignore[no-untyped-def]
        try:
            return parse(dict(wire))
        except MalformedMessageError as exc:
            return type(exc), str(exc)

    assert parsed(messages.report_from_wire) == parsed(SignedReport.from_wire)


@pytest.mark.parametrize("checks", ["threads", "worker"])
@pytest.mark.parametrize("also", ["nothing else", "an unknown task"])
def test_a_forged_report_in_a_large_batch_is_the_error_and_nothing_is_written(
    sqlite_url, also, checks, monkeypatch
):
    """A batch's reports are checked beside its transaction (in threads, or in the report
    worker once it is ready); a forged one must still be the error raised (even where the
    transaction found another), roll everything back and leave the genuine message
    applicable. The garbage collector runs less often while the batch runs."""
    if checks == "threads":
        monkeypatch.setattr(report_signatures, "WORKER_PROCESS", False)
    else:
        assert report_signatures.start_worker(timeout_s=60)
    thresholds = []
    handler = ledger_module._ALL_HANDLERS[SettleTasks.name]

    def settle(ctx, op):  # type: ignore[no-untyped-def]
        thresholds.append(gc.get_threshold()[0])
        return handler(ctx, op)

    monkeypatch.setitem(ledger_module._ALL_HANDLERS, SettleTasks.name, settle)

    market = Market(sqlite_url, users=2, oracles=1, quorum=1)
    try:
        alice, bob = market.users
        market.fund(alice, 100_000)
        market.fund(bob, 100_000)
        market.fund_pool(10_000)
        asset = market.asset(alice, 990)
        tasks = [
            market.task(market.request(bob, 10), [asset], [5]) for _ in range(PARALLEL_REPORTS)
        ]
        items = [TaskReports(t, (market.report(1, t, True),)) for t in tasks]
        genuine = market.signer(market.operator).sign(
            SettleTasks(round=1, settlements=tuple(items))
        )
        forged = list(items)
        forged[-1] = TaskReports(tasks[-1], (_forge(items[-1].reports[0], "signature"),))
        if also == "an unknown task":
            forged[0] = TaskReports("nope", (market.report(1, "nope", True),))
        before = market.snapshot()
        with pytest.raises(BadSignatureError):
            market.ledger.submit(
                market.signer(market.operator).sign(SettleTasks(round=1, settlements=tuple(forged)))
            )
        assert market.snapshot() == before
        message = SignedMessage.from_json(genuine.to_json())
        assert len(message.payload) >= LARGE_MESSAGE
        receipt = market.ledger.submit(message)
        assert receipt.applied and receipt.result["settled"] == PARALLEL_REPORTS
        assert thresholds[-1] >= FIRST_THRESHOLD > gc.get_threshold()[0]
        market.ledger.verify()
    finally:
        market.ledger.close()
