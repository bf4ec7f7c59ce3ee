"""The seeds' claims next to mercat's numbers: what the report's claims tables are made of.

A `Claim` is one statement of a source paper that carries a number (a table cell, a figure's
stated value, a bound in the text), the paper's number as published, the number mercat
measured in this run, and a verdict:

- `holds`: mercat's number agrees with the paper's within the rule given in `why`;
- `differs`: it does not; `why` says by how much and, where known, the reason;
- `not measurable`: this run cannot decide (the paper gives no number, the platform it names
  is absent, or the measurement's reference was too small to divide by).

The paper's published values are constants of the experiment modules, each cited by table
or figure; mercat's values come from the run. Nothing here computes a result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

Verdict = Literal["holds", "differs", "not measurable"]
VERDICTS: tuple[Verdict, ...] = ("holds", "differs", "not measurable")

#: The four source papers, by seed number: what the report names them.
PAPERS = {
    "000": '"Collective Incentives": reliability in decentralized compute marketplaces '
    "without individual blame, calibrated by ruin theory",
    "001": '"Markets for Decentralized Computation": posted prices with competing market-makers',
    "002": '"CloudChain: Decentralized Marketplace for AI Compute Resources"',
    "003": '"Distributed auctioneer": auctions without a trusted auctioneer',
}


@dataclass(frozen=True)
class Claim:
    paper: str  # the seed's number, "000" .. "003"
    source: str  # where the paper makes it: "Table I, config 3", "Fig. 4", "§6.2"
    statement: str  # what the paper claims, in a few words
    published: str  # the paper's number, as the paper states it
    reproduced: str  # mercat's number in this run
    verdict: Verdict
    why: str  # one line: the rule applied, or the reason for a difference

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {self.verdict!r}")
        if self.paper not in PAPERS:
            raise ValueError(f"paper must be one of {tuple(PAPERS)}, not {self.paper!r}")


def verdict(holds: bool | None) -> Verdict:
    """`holds` / `differs` from a test computed on the run; None: not measurable."""
    if holds is None:
        return "not measurable"
    return "holds" if holds else "differs"


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None where the reference is zero, negative or not a
    number (a time below the clock's resolution divides into nonsense)."""
    if not (math.isfinite(denominator) and denominator > 0 and math.isfinite(numerator)):
        return None
    return numerator / denominator


def fmt_ratio(value: float | None, digits: int = 2) -> str:
    """A ratio for text: "1.73×", or "not measurable" where `ratio` gave None."""
    return "not measurable" if value is None else f"{value:.{digits}f}×"


def tally(claims: Iterable[Claim]) -> dict[Verdict, int]:
    """How many claims have each verdict (every verdict present, zero or not)."""
    counts: dict[Verdict, int] = dict.fromkeys(VERDICTS, 0)
    for claim in claims:
        counts[claim.verdict] += 1
    return counts


def claim_to_dict(claim: Claim) -> dict[str, Any]:
    return asdict(claim)


def claim_from_dict(data: Mapping[str, Any]) -> Claim:
    return Claim(
        paper=str(data["paper"]),
        source=str(data["source"]),
        statement=str(data["statement"]),
        published=str(data["published"]),
        reproduced=str(data["reproduced"]),
        verdict=data["verdict"],
        why=str(data.get("why", "")),
    )
