"""The HTML report: one static page that tells, paper by paper, which claims mercat reproduces.

Experiments write their own CSV and PNG files under the report directory and return a
`Section` that refers to them by relative path, with the paper it reproduces and its
`claims` (`mercat.report.claims`). `write_report` renders, in order: a header saying how the
report was made (`RunInfo`), a summary of the verdicts linked to their sections, then one
part per paper, titled with the paper's name, each section opening with its claims table,
then its text, its figures, and its tables (long ones folded under the figures). Nothing
here computes a result.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mercat.files import write_text_atomic
from mercat.report.claims import PAPERS, Claim, claim_from_dict, tally

#: Tables longer than this are folded (`<details>`) below the figures.
FOLD_ROWS = 12


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
    paper: str = ""  # the seed it reproduces, "000" .. "003"; "" for none (a plug-in's own)
    claims: tuple[Claim, ...] = ()  # the paper's numbered claims, each with mercat's number
    # How the section was computed (set by `run_experiment`): a page refreshed one experiment
    # at a time mixes sections of different runs, and each says its own.
    quick: bool | None = None
    rng_seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "claims", tuple(self.claims))
        if self.paper and self.paper not in PAPERS:
            raise ValueError(f"paper must be one of {tuple(PAPERS)} or empty, not {self.paper!r}")


@dataclass(frozen=True)
class RunInfo:
    """How the report was made: printed in its header."""

    command: str  # the command line, as typed
    rng_seed: int  # the root seed every experiment derives its randomness from
    version: str  # mercat's version
    date: str  # when the run started, UTC
    quick: bool  # --quick: smaller sizes than the papers'
    seconds: float  # wall time of the whole command


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _header_cell(name: str) -> str:
    # Column names are identifiers (precision_se_pct): let them break after each underscore
    # so that wide tables such as Table I fit the page instead of running off it.
    return html.escape(name).replace("_", "_<wbr>")


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{_header_cell(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in table.rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _render_table(table: Table) -> str:
    link = f' (<a href="{html.escape(table.csv)}">csv</a>)' if table.csv else ""
    if len(table.rows) > FOLD_ROWS:
        return (
            f'<details class="table"><summary>{html.escape(table.title)}: '
            f"{len(table.rows)} rows{link}</summary>{_table_html(table)}</details>"
        )
    return f"<h4>{html.escape(table.title)}{link}</h4>{_table_html(table)}"


def _verdict_html(verdict: str) -> str:
    css = verdict.replace(" ", "-")
    return f'<span class="verdict v-{css}">{html.escape(verdict)}</span>'


def _render_claims(claims: Sequence[Claim]) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(c.source)}</td><td class='text'>{html.escape(c.statement)}</td>"
        f"<td>{html.escape(c.published)}</td><td>{html.escape(c.reproduced)}</td>"
        f"<td>{_verdict_html(c.verdict)}</td><td class='text'>{html.escape(c.why)}</td>"
        "</tr>"
        for c in claims
    )
    return (
        '<div class="scroll"><table class="claims"><thead><tr><th>where</th><th>claim</th>'
        "<th>paper</th><th>mercat</th><th>verdict</th><th>why</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )


def _render_section(section: Section) -> str:
    parts = [f'<section id="{html.escape(section.key)}"><h3>{html.escape(section.title)}</h3>']
    if section.claims:
        counts = tally(section.claims)
        parts.append(
            "<p class='meta'>claims: "
            + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
            + "</p>"
        )
        parts.append(_render_claims(section.claims))
    parts.append(section.summary)
    for fig in section.figures:
        parts.append(
            f'<figure><img src="{html.escape(fig.path)}" alt="{html.escape(fig.caption)}">'
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
        )
    parts.extend(_render_table(t) for t in section.tables)
    if section.seconds is not None:
        how = [
            *(["quick sizes"] if section.quick else []),
            *([f"RNG seed {section.rng_seed}"] if section.rng_seed is not None else []),
        ]
        parts.append(
            f'<p class="meta">computed in {section.seconds:.1f} s'
            + (f" ({', '.join(how)})" if how else "")
            + "</p>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _paper_heading(paper: str) -> str:
    if not paper:
        return "Other experiments"
    return f"Seed {paper}: {PAPERS[paper]}"


def _by_paper(sections: Sequence[Section]) -> dict[str, list[Section]]:
    """Sections grouped by paper, papers in seed order, sections in registry order."""
    groups: dict[str, list[Section]] = {paper: [] for paper in (*PAPERS, "")}
    for section in sections:
        groups[section.paper if section.paper in PAPERS else ""].append(section)
    return {paper: group for paper, group in groups.items() if group}


def _render_run(run: RunInfo | None, sections: Sequence[Section] = ()) -> str:
    if run is None:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"<p class='meta'>generated {stamp}</p>"
    size = (
        "yes: smaller sizes than the papers' (<code>--quick</code>)"
        if run.quick
        else "no: the papers' sizes"
    )
    items = (
        ("command", f"<code>{html.escape(run.command)}</code>"),
        ("RNG seed", str(run.rng_seed)),
        ("mercat", html.escape(run.version)),
        ("date", html.escape(run.date)),
        ("quick run", size),
        ("total time", f"{run.seconds:.1f} s"),
    )
    page = '<dl class="run">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"
    others = [
        s.key
        for s in sections
        if (s.quick is not None and s.quick != run.quick)
        or (s.rng_seed is not None and s.rng_seed != run.rng_seed)
    ]
    if others:
        page += (
            "<p class='meta'>Sections computed by an earlier command with other settings "
            "(each says its own under it): " + ", ".join(html.escape(k) for k in others) + "</p>"
        )
    return page


def _render_summary(groups: dict[str, list[Section]]) -> str:
    """The verdicts at a glance: counts per paper, and every claim that does not hold."""
    every = [c for group in groups.values() for s in group for c in s.claims]
    if not every:
        return "<p>No section states claims.</p>"
    total = tally(every)
    papers = {c.paper for c in every}
    rows = []
    for paper, group in groups.items():
        counts = tally(c for s in group for c in s.claims)
        links = ", ".join(
            f'<a href="#{html.escape(s.key)}">{html.escape(s.key)}</a>' for s in group
        )
        rows.append(
            f"<tr><td class='text'>{html.escape(_paper_heading(paper))}</td>"
            + "".join(f"<td>{counts[v]}</td>" for v in counts)
            + f"<td class='text'>{links}</td></tr>"
        )
    summary = [
        '<section id="claims-summary"><h2>Claims at a glance</h2>',
        f"<p>{len(every)} claims with a number, from {len(papers)} of the four papers: "
        f"<b>{total['holds']} hold</b>, <b>{total['differs']} differ</b>, "
        f"{total['not measurable']} cannot be decided by this run. A verdict compares the "
        "paper's published number with the one mercat measured in this run, by the rule "
        "its line states.</p>",
        '<div class="scroll"><table class="claims-summary"><thead><tr><th>paper</th>'
        + "".join(f"<th>{v}</th>" for v in total)
        + "<th>sections</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>",
    ]
    for wanted, heading in (
        ("differs", "Claims that differ"),
        ("not measurable", "Claims this run cannot decide"),
    ):
        found = [
            (s, c) for group in groups.values() for s in group for c in s.claims
            if c.verdict == wanted
        ]  # fmt: skip
        if found:
            summary.append(f"<h4>{heading}</h4><ul>")
            summary.extend(
                f'<li><a href="#{html.escape(s.key)}">seed {c.paper}, {html.escape(c.source)}'
                f"</a>: {html.escape(c.statement)} (paper {html.escape(c.published)}, mercat "
                f"{html.escape(c.reproduced)}): {html.escape(c.why)}</li>"
                for s, c in found
            )
            summary.append("</ul>")
    summary.append("</section>")
    return "".join(summary)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#eee} td.text{text-align:left;min-width:12em}
table.claims td{text-align:left}
table.claims td:nth-child(3),table.claims td:nth-child(4){min-width:8em}
figure{margin:1em 0} img{max-width:100%}
figcaption{font-size:.9em;color:#444} .meta{color:#777;font-size:.8em}
details.table{margin:.5em 0 1.5em} details.table summary{cursor:pointer;font-weight:600}
.verdict{font-weight:600;white-space:nowrap} .v-holds{color:#17692b}
.v-differs{color:#a32020} .v-not-measurable{color:#8a6d00}
dl.run{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;font-size:.9em}
dl.run dt{font-weight:600} dl.run dd{margin:0}
section.paper{border-top:2px solid #888;margin-top:2em}
nav a{margin-right:1em}
"""


def write_report(
    out_dir: Path,
    sections: Sequence[Section],
    title: str = "mercat: reproduction report",
    run: RunInfo | None = None,
) -> Path:
    """Write `index.html` and `facts.json` into `out_dir`; return the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = _by_paper(sections)
    nav = " ".join(
        f'<a href="#paper-{paper or "other"}">{"seed " + paper if paper else "other"}</a>'
        for paper in groups
    )
    body = []
    for paper, group in groups.items():
        body.append(
            f'<section class="paper" id="paper-{paper or "other"}">'
            f"<h2>{html.escape(_paper_heading(paper))}</h2>"
        )
        body.extend(_render_section(s) for s in group)
        body.append("</section>")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        + _render_run(run, sections)
        + f"<nav>{nav}</nav>"
        + _render_summary(groups)
        + "\n".join(body)
        + "</body></html>"
    )
    path = out_dir / "index.html"
    write_text_atomic(path, page)
    facts = {
        s.key: {
            "title": s.title,
            "seconds": s.seconds,
            **s.facts,
            "paper": s.paper,
            "claims": [asdict(c) for c in s.claims],
        }
        for s in sections
    }
    if run is not None:
        facts = {"run": asdict(run), **facts}
    write_text_atomic(out_dir / "facts.json", json.dumps(facts, indent=2, default=str))
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
        paper=data.get("paper", ""),
        claims=tuple(claim_from_dict(c) for c in data.get("claims", ())),
        quick=data.get("quick"),
        rng_seed=data.get("rng_seed"),
    )
