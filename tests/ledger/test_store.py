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
