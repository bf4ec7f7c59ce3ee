"""The store: migrations build exactly the declared schema and run from the package; the
journal is append-only in the database itself; the audit catches tampering."""

from __future__ import annotations

from dataclasses import replace

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mercat.errors import AlreadyExistsError, LedgerIntegrityError
from mercat.ledger import IntegerRule, Ledger, LedgerConfig
from mercat.ledger.migrate import (
    SCHEMA_REVISION,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from mercat.ledger.schema import metadata
from mercat.ledger.store import make_engine
from tests.ledger.market import Market


def test_the_migrations_build_the_declared_schema(store_url):
    engine = make_engine(store_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision() == SCHEMA_REVISION
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    downgrade(engine)  # and back down to nothing
    assert current_revision(engine) is None
    engine.dispose()


def test_the_journal_refuses_update_and_delete(store_url):
    m = Market(store_url, users=1)
    m.fund(m.users[0], 100)
    for statement in ("UPDATE postings SET amount = amount * 2", "DELETE FROM entries"):
        with pytest.raises(DBAPIError, match="append-only"), m.ledger.engine.begin() as c:
            c.execute(text(statement))
    m.ledger.verify()
    m.ledger.close()


def test_the_audit_catches_a_balance_changed_behind_the_journal(sqlite_url):
    m = Market(sqlite_url, users=1)
    m.fund(m.users[0], 100)
    with m.ledger.engine.begin() as c:
        c.execute(text("UPDATE books SET balance = balance + 5 WHERE name LIKE 'avail:%' "
                       "AND balance = 100"))  # fmt: skip
    with pytest.raises(LedgerIntegrityError, match="postings sum to 100"):
        m.ledger.verify()
    m.ledger.close()


def test_a_store_is_configured_once(sqlite_url):
    config = LedgerConfig(operator="ab" * 32, rule=IntegerRule(penalty=1, reward=0, removal=True))
    Ledger.init(sqlite_url, config).close()
    with pytest.raises(AlreadyExistsError):
        Ledger.init(sqlite_url, config)
    with Ledger(sqlite_url) as ledger:
        assert ledger.config == replace(config, ledger_id=ledger.id)  # drawn at init
        assert len(ledger.id) == 32 and ledger.config.min_stake == 2


def test_a_ledger_from_before_terms_upgrades_in_place(sqlite_url):
    """Revision 0001 stores (escrowed requests without terms, an open task) upgrade to the
    current schema: the ledger gets an id, requests with open tasks are being served and
    close when their tasks settle, the others stay open and can be refunded."""
    import json

    engine = make_engine(sqlite_url)
    upgrade(engine, "0001")
    config = LedgerConfig(operator="ab" * 32, rule=IntegerRule(penalty=99, reward=1, removal=True))
    legacy = {k: v for k, v in json.loads(config.to_json()).items() if k != "ledger_id"}
    with engine.begin() as c:
        c.execute(text("INSERT INTO ledger_meta (id, config, round) VALUES (1, :c, 1)"),
                  {"c": json.dumps(legacy)})  # fmt: skip
        c.execute(text("INSERT INTO accounts (key, role) VALUES (:k, 'operator')"),
                  {"k": "ab" * 32})  # fmt: skip
        c.execute(text("INSERT INTO entries (id, op, signer, nonce, payload, signature) "
                       "VALUES (1, 'x', :k, 1, '{}', 'aa')"), {"k": "ab" * 32})  # fmt: skip
        c.execute(text("INSERT INTO requests (id, owner) VALUES ('busy', :k), ('idle', :k)"),
                  {"k": "ab" * 32})  # fmt: skip
        c.execute(text("INSERT INTO tasks (round, task, request, status, opened_entry) "
                       "VALUES (1, 't', 'busy', 'open', 1)"))  # fmt: skip
    upgrade(engine)
    with engine.connect() as c:
        statuses = dict(c.execute(text("SELECT id, status FROM requests")).all())
        open_tasks = c.execute(text("SELECT open_tasks FROM requests WHERE id = 'busy'")).scalar()
        stored = json.loads(c.execute(text("SELECT config FROM ledger_meta")).scalar())
    assert statuses == {"busy": "assigned", "idle": "open"} and open_tasks == 1
    assert len(stored["ledger_id"]) == 32
    engine.dispose()
    with Ledger(sqlite_url) as ledger:
        assert ledger.id == stored["ledger_id"]


def test_the_audit_catches_terms_and_tasks_changed_behind_the_journal(sqlite_url):
    m = Market(sqlite_url, users=2)
    owner, requester = m.users
    m.fund(owner, 10_000)
    m.fund(requester, 10_000)
    asset = m.asset(owner, 990)
    m.task(m.request(requester, 500), [asset], [100])
    m.ledger.verify()
    for statement, (old, new), found in (
        ("UPDATE task_assets SET payout = 1", ("", ""), "task .* differs"),
        ("UPDATE offers SET offer = replace(offer, :old, :new)", ('"cost":0', '"cost":5'),
         "offer of asset"),
        ("UPDATE requests SET terms = replace(terms, :old, :new)",
         ('"replicas":1', '"replicas":3'), "terms of request"),
    ):  # fmt: skip
        with m.ledger.engine.begin() as c:
            c.execute(text(statement), {"old": old, "new": new} if old else {})
        with pytest.raises(LedgerIntegrityError, match=found):
            m.ledger.verify()
    m.ledger.close()


def test_the_audit_reads_one_snapshot_while_writers_go_on(pg_url):
    """A live ledger (the node audits while rounds run): messages committed while `verify`
    reads are not half seen (postings without their balances, an offer without the entry
    that posted it) and reported as tampering."""
    from sqlalchemy import event

    from mercat.ledger import Deposit, Offer, PostOffer, Withdraw

    m = Market(pg_url, users=1)
    user = m.users[0]
    m.fund(user, 1_000)
    asset = m.asset(user, 500)
    writer = Ledger(pg_url)  # another process's connection, as it were
    writes = {
        "FROM books": lambda: writer.submit(
            m.signer(m.operator).sign(Deposit(account=user.public, amount=7))
        ),
        "FROM offers": lambda: writer.submit(
            m.signer(user).sign(PostOffer(offer=Offer(asset, cost=3)))
        ),
        "FROM entries": lambda: writer.submit(m.signer(user).sign(Withdraw(amount=5))),
    }
    done: set[str] = set()

    def write_meanwhile(conn, cursor, statement, parameters, context, executemany):
        for table, write in writes.items():
            if table in statement and table not in done and statement.startswith("SELECT"):
                done.add(table)
                write()

    event.listen(m.ledger.engine, "before_cursor_execute", write_meanwhile)
    report = m.ledger.verify()  # raises on any problem
    event.remove(m.ledger.engine, "before_cursor_execute", write_meanwhile)
    assert done == set(writes)
    assert report.ok
    m.ledger.verify()  # and after them, everything they wrote is there
    writer.close()
    m.ledger.close()
