"""The HTML report: one static page of sections, each with text, tables and figures.

Experiments write their own CSV and PNG files under the report directory and return a
`Section` that refers to them by relative path; `write_report` renders the sections in
order into `index.html`. Nothing here computes anything.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    path: str  # relative to the report directory
    caption: str


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    csv: str | None = None  # relative path of the same data as CSV, if written

    def __post_init__(self) -> None:
        # Experiments build rows as lists; the table keeps immutable tuples.
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "rows", tuple(tuple(row) for row in self.rows))


@dataclass(frozen=True)
class Section:
    key: str  # the experiment name, e.g. "table1"
    title: str
    summary: str  # HTML paragraph(s): what was run, how close it came, why it differs
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)  # machine-readable headline numbers
    seconds: float | None = None


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _render_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in table.rows
    )
    link = f' (<a href="{html.escape(table.csv)}">csv</a>)' if table.csv else ""
    return (
        f"<h3>{html.escape(table.title)}{link}</h3>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _render_section(section: Section) -> str:
    parts = [f'<section id="{html.escape(section.key)}"><h2>{html.escape(section.title)}</h2>']
    parts.append(section.summary)
    parts.extend(_render_table(t) for t in section.tables)
    for fig in section.figures:
        parts.append(
            f'<figure><img src="{html.escape(fig.path)}" alt="{html.escape(fig.caption)}">'
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
        )
    if section.seconds is not None:
        parts.append(f'<p class="meta">computed in {section.seconds:.1f} s</p>')
    parts.append("</section>")
    return "\n".join(parts)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:right}
th{background:#eee} figure{margin:1em 0} img{max-width:100%}
figcaption{font-size:.9em;color:#444} .meta{color:#777;font-size:.8em}
nav a{margin-right:1em}
"""


def write_report(
    out_dir: Path, sections: Sequence[Section], title: str = "mercat: reproduction report"
) -> Path:
    """Write `index.html` and `facts.json` into `out_dir`; return the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = " ".join(f'<a href="#{html.escape(s.key)}">{html.escape(s.key)}</a>' for s in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class='meta'>generated {stamp}</p><nav>{nav}</nav>"
        + "\n".join(_render_section(s) for s in sections)
        + "</body></html>"
    )
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    facts = {s.key: {"title": s.title, "seconds": s.seconds, **s.facts} for s in sections}
    (out_dir / "facts.json").write_text(json.dumps(facts, indent=2, default=str), encoding="utf-8")
    return path


def section_to_dict(section: Section) -> dict[str, Any]:
    """A JSON-friendly view of a section (for `--json`)."""
    return asdict(section)


def section_from_dict(data: dict[str, Any]) -> Section:
    """Inverse of `section_to_dict`."""
    return Section(
        key=data["key"],
        title=data["title"],
        summary=data["summary"],
        tables=tuple(
            Table(t["title"], tuple(t["columns"]), tuple(tuple(r) for r in t["rows"]), t.get("csv"))
            for t in data.get("tables", ())
        ),
        figures=tuple(Figure(f["path"], f["caption"]) for f in data.get("figures", ())),
        facts=dict(data.get("facts", {})),
        seconds=data.get("seconds"),
    )
