"""Databases for the node's tests: the task board's on SQLite and on the test PostgreSQL
server (`tests.databases`)."""

from tests.databases import collated_url, pg_url, postgres  # noqa: F401 - fixtures
