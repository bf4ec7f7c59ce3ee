"""Stores for the ledger tests: a fresh SQLite file, and a fresh database on the test
PostgreSQL server (`tests.databases`, whose fixtures tests/auctioneer imports from here)."""

from __future__ import annotations

import pytest

from tests.databases import collated_url, pg_url, postgres  # noqa: F401 - fixtures


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return request.getfixturevalue("pg_url")
