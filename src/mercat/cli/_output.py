"""Output helpers shared by the command modules: JSON for scripts, rich tables for people.

Tables and mappings print their titles, headers and cells as plain text: ids and names come
from users' files, and rich would read `[/x]` in an id as markup (and fail on it)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mercat.jsonable import jsonable

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout (nothing else goes to stdout in --json mode)."""
    print(json.dumps(jsonable(data), indent=2, sort_keys=False))


def print_table(
    title: str, rows: Sequence[Mapping[str, Any]], float_format: str = "{:.6g}"
) -> None:
    """Print a list of flat dicts as one rich table."""
    if not rows:
        console.print(f"{escape(title)}: (empty)")
        return
    table = Table(title=escape(title))
    columns = list(rows[0].keys())
    for col in columns:
        table.add_column(escape(str(col)))
    for row in rows:
        table.add_row(
            *(
                float_format.format(row[c]) if isinstance(row[c], float) else escape(str(row[c]))
                for c in columns
            )
        )
    console.print(table)


def print_mapping(title: str, data: Mapping[str, Any], float_format: str = "{:.6g}") -> None:
    """Print one flat dict as a two-column table."""
    table = Table(title=escape(title), show_header=False)
    table.add_column("quantity")
    table.add_column("value")
    for key, value in data.items():
        shown = float_format.format(value) if isinstance(value, float) else escape(str(value))
        table.add_row(escape(str(key)), shown)
    console.print(table)
