"""Writing thousands of rows of one batch in one statement per table.

A settlement batch of 1000 tasks writes about 12 000 rows (postings, balances, task
verdicts, per-asset effects, oracle reports). Each helper here takes the rows as plain
tuples and hands them to the driver without SQLAlchemy's per-row parameter processing:

- SQLite: one `executemany` of a `?` statement (the loop runs in C, in process);
- PostgreSQL: one statement whose rows arrive as one array per column and are unpacked
  by `unnest` (`INSERT ... SELECT FROM unnest(...)`, `UPDATE ... FROM unnest(...)`). A
  psycopg `executemany`, even pipelined, costs about 60 µs of Python per row; the arrays
  cost one round trip and a few µs per row.

The statements are fixed text over the ledger's own tables and columns (never a value from a
message: values are always bound parameters). The SQLite form is the plain reference; a test
holds both forms to the same rows on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy.dialects import postgresql

from mercat.ledger import schema as s
from mercat.ledger.store import Txn


@cache
def _pg_type(table: str, column: str) -> str:
    """The PostgreSQL type of a ledger column, as an array cast names it."""
    return str(s.metadata.tables[table].c[column].type.compile(dialect=postgresql.dialect()))


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def _unnest(table: str, names: Sequence[str]) -> str:
    arrays = ", ".join(f"%s::{_pg_type(table, name)}[]" for name in names)
    return f"unnest({arrays}) WITH ORDINALITY AS u({', '.join(names)}, n)"


def insert_rows(
    tx: Txn, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """INSERT `rows` (tuples in `columns` order), in their order (ids follow it)."""
    if not rows:
        return
    names = ", ".join(columns)
    if tx.connection.dialect.name == "postgresql":
        sql = (
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {_unnest(table, columns)} "
            "ORDER BY n"
        )
        tx.connection.exec_driver_sql(sql, tuple(_columns(rows, len(columns))))
        return
    marks = ", ".join("?" for _ in columns)
    tx.connection.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(rows))


def update_rows(
    tx: Txn,
    table: str,
    sets: Sequence[str],
    keys: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    add: bool = False,
) -> None:
    """UPDATE one row per tuple (`sets` values, then `keys` values): each `sets` column
    becomes the tuple's value (`add`: the column plus it). A key must name one row and
    appear once."""
    if not rows:
        return
    if tx.connection.dialect.name == "postgresql":
        names = [*sets, *keys]
        assignments = ", ".join(
            f"{c} = {table}.{c} + u.{c}" if add else f"{c} = u.{c}" for c in sets
        )
        matches = " AND ".join(f"{table}.{k} = u.{k}" for k in keys)
        sql = f"UPDATE {table} SET {assignments} FROM {_unnest(table, names)} WHERE {matches}"
        tx.connection.exec_driver_sql(sql, tuple(_columns(rows, len(names))))
        return
    assignments = ", ".join(f"{c} = {c} + ?" if add else f"{c} = ?" for c in sets)
    matches = " AND ".join(f"{k} = ?" for k in keys)
    tx.connection.exec_driver_sql(f"UPDATE {table} SET {assignments} WHERE {matches}", list(rows))


def select_in(
    tx: Txn, sql: str, column: str, values: Sequence[Any], *params: Any, lock: bool = False
) -> list[tuple[Any, ...]]:
    """The rows of `sql` (a SELECT with `?` placeholders for `params` and `{in}` where the
    condition "`column` is one of `values`" goes), fetched at once. PostgreSQL receives the
    values as one array (`= ANY(%s)`) and, with `lock`, locks the rows (`FOR UPDATE`, in the
    order `sql` gives them); SQLite an `IN (?, ...)` list (callers keep it under its limit
    on bound parameters)."""
    if not values:
        return []
    if tx.connection.dialect.name == "postgresql":
        text = sql.replace("?", "%s").format(**{"in": f"{column} = ANY(%s)"})
        if lock:
            text += " FOR UPDATE"
        bound: tuple[Any, ...] = (*params, list(values))
    else:
        marks = ", ".join("?" for _ in values)
        text = sql.format(**{"in": f"{column} IN ({marks})"})
        bound = (*params, *values)
    result = tx.connection.exec_driver_sql(text, bound)
    try:  # the driver's own tuples: SQLAlchemy's Row objects cost more than the query
        return list(result.cursor.fetchall())
    finally:
        result.close()
