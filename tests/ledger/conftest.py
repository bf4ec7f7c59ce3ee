"""Stores for the ledger tests: a fresh SQLite file, and a fresh database on a PostgreSQL
server that the suite starts itself (see mercat.ledger.pgserver), once per test process.

MERCAT_TEST_POSTGRES_URL may name an existing server instead (an admin URL such as
postgresql+psycopg://postgres@127.0.0.1:5432/postgres); databases are created on it.
PostgreSQL tests are skipped, with the reason, only when no server can be had.
"""

from __future__ import annotations

import os
import uuid

import pytest

from mercat.ledger.pgserver import PostgresUnavailable, TemporaryPostgres, create_database_sql


class _ExistingServer:
    def __init__(self, url: str) -> None:
        self.admin_url = url

    def create_database(self, name: str, icu_locale: str | None = None) -> str:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(self.admin_url)
        with psycopg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password,
            dbname=url.database, autocommit=True,
        ) as connection:  # fmt: skip
            connection.execute(create_database_sql(name, icu_locale))
        return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres():
    existing = os.environ.get("MERCAT_TEST_POSTGRES_URL")
    if existing:
        yield _ExistingServer(existing)
        return
    try:
        server = TemporaryPostgres().start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL cannot be started here: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres) -> str:
    return postgres.create_database(f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return request.getfixturevalue("pg_url")
