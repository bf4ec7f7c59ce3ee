"""Databases for the tests of what runs on SQLAlchemy (the ledger, the node's task board, the
auctioneers' result logs): a fresh database on a PostgreSQL server that the suite starts
itself (see mercat.ledger.pgserver), one server per test process however many folders'
tests use it.

MERCAT_TEST_POSTGRES_URL may name an existing server instead (an admin URL such as
postgresql+psycopg://postgres@127.0.0.1:5432/postgres); databases are created on it.
PostgreSQL tests are skipped, with the reason, only when no server can be had.

A folder's conftest.py (or a test module) takes the fixtures by importing them:
`from tests.databases import pg_url, postgres  # noqa: F401`.
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


_SERVER: list[TemporaryPostgres | _ExistingServer | PostgresUnavailable] = []
"""The process's server, started by the first test that needs one (or why none could be):
each folder that imports the `postgres` fixture has a fixture of its own, and they share it."""


def _server() -> TemporaryPostgres | _ExistingServer | PostgresUnavailable:
    if not _SERVER:
        existing = os.environ.get("MERCAT_TEST_POSTGRES_URL")
        if existing:
            _SERVER.append(_ExistingServer(existing))
        else:
            try:
                _SERVER.append(TemporaryPostgres().start())
            except PostgresUnavailable as exc:
                _SERVER.append(exc)
    return _SERVER[0]


@pytest.fixture(scope="session")
def postgres():
    server = _server()
    if isinstance(server, PostgresUnavailable):
        pytest.skip(f"PostgreSQL cannot be started here: {server}")
    try:
        yield server
    finally:  # at the session's end (stopping twice is harmless)
        if isinstance(server, TemporaryPostgres):
            server.stop()


@pytest.fixture
def pg_url(postgres) -> str:
    return postgres.create_database(f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture(params=["sqlite", "postgresql", "postgresql-en-US"])
def collated_url(request, tmp_path) -> str:
    """A fresh database on SQLite, on PostgreSQL with the server's default collation, and on
    PostgreSQL whose text sorts by the en-US locale (ICU), as a production database's often
    does: what orders ids must give byte order on each."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    server = request.getfixturevalue("postgres")
    icu = "en-US" if request.param.endswith("en-US") else None
    return server.create_database(f"t_{uuid.uuid4().hex[:16]}", icu_locale=icu)
