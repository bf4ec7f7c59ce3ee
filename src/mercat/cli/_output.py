"""Output helpers shared by the command modules: JSON for scripts, rich tables for people."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and non-finite floats into plain JSON values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout (nothing else goes to stdout in --json mode)."""
    print(json.dumps(_jsonable(data), indent=2, sort_keys=False))


def print_table(
    title: str, rows: Sequence[Mapping[str, Any]], float_format: str = "{:.6g}"
) -> None:
    """Print a list of flat dicts as one rich table."""
    if not rows:
        console.print(f"{title}: (empty)")
        return
    table = Table(title=title)
    columns = list(rows[0].keys())
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(
            *(
                float_format.format(row[c]) if isinstance(row[c], float) else str(row[c])
                for c in columns
            )
        )
    console.print(table)


def print_mapping(title: str, data: Mapping[str, Any], float_format: str = "{:.6g}") -> None:
    """Print one flat dict as a two-column table."""
    table = Table(title=title, show_header=False)
    table.add_column("quantity")
    table.add_column("value")
    for key, value in data.items():
        shown = float_format.format(value) if isinstance(value, float) else str(value)
        table.add_row(key, shown)
    console.print(table)
