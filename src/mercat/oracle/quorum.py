"""The quorum rule: a task settles only when q oracles of the set agree on its outcome.

Oracles agree when their reports carry the same verdict (success, SLA met, result digest);
latency is measured by each oracle and is not part of the verdict; the settled latency is
the lower median of the agreeing oracles' latencies (an integer, and one that a minority of
agreeing oracles cannot drag arbitrarily far).

With n oracles in the set and 2q > n, two different verdicts cannot both reach q; with
2q ≤ n they can, and the tally refuses to choose (ConflictingQuorumError) rather than
pick one by an arbitrary order. Oracles whose report differs from the settled verdict are
returned as `disagreeing`, so the ledger can record them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from mercat.errors import (
    ConflictingQuorumError,
    DuplicateReportError,
    InvalidParameterError,
    MalformedMessageError,
    QuorumNotReachedError,
    UnknownOracleError,
)
from mercat.oracle.report import SignedReport


@dataclass(frozen=True)
class QuorumRule:
    """q of the oracle set must agree."""

    q: int

    def __post_init__(self) -> None:
        if not isinstance(self.q, int) or isinstance(self.q, bool) or self.q < 1:
            raise InvalidParameterError(f"quorum q must be an integer >= 1, got {self.q!r}")


@dataclass(frozen=True)
class Verdict:
    """The outcome a quorum agreed on, and who agreed or not."""

    round: int
    task: str
    success: bool
    sla_met: bool
    digest: str | None
    latency_ms: int
    agreeing: tuple[str, ...]
    disagreeing: tuple[str, ...]


def tally(
    reports: Sequence[SignedReport],
    oracles: Collection[str],
    rule: QuorumRule,
    *,
    verify_signatures: bool = True,
) -> Verdict:
    """The verdict of `reports` on one task under `rule`.

    Raises UnknownOracleError for a report signed outside `oracles`, BadSignatureError
    for a forged one, DuplicateReportError when an oracle reports twice,
    MalformedMessageError when reports name different tasks, QuorumNotReachedError when no
    verdict has q votes and ConflictingQuorumError when two have.
    """
    if not reports:
        raise QuorumNotReachedError(f"no reports; {rule.q} needed")
    key = (reports[0].report.round, reports[0].report.task)
    seen: set[str] = set()
    groups: dict[tuple[bool, bool, str | None], list[SignedReport]] = {}
    for signed in reports:
        if (signed.report.round, signed.report.task) != key:
            raise MalformedMessageError(f"reports name different tasks: {key} and "
                                        f"{(signed.report.round, signed.report.task)}")  # fmt: skip
        if signed.oracle not in oracles:
            raise UnknownOracleError(f"{signed.oracle[:16]}… is not in the oracle set")
        if signed.oracle in seen:
            raise DuplicateReportError(f"oracle {signed.oracle[:16]}… reported task {key} twice")
        seen.add(signed.oracle)
        if verify_signatures:
            signed.verify()
        groups.setdefault(signed.report.verdict, []).append(signed)

    winners = [verdict for verdict, group in groups.items() if len(group) >= rule.q]
    if not winners:
        best = max(len(group) for group in groups.values())
        raise QuorumNotReachedError(
            f"task {key}: at most {best} of {len(reports)} reports agree; {rule.q} needed"
        )
    if len(winners) > 1:
        raise ConflictingQuorumError(f"task {key}: {len(winners)} verdicts each reached {rule.q}")
    success, sla_met, digest = winners[0]
    agreeing = groups[winners[0]]
    latencies = sorted(r.report.latency_ms for r in agreeing)
    return Verdict(
        round=key[0],
        task=key[1],
        success=success,
        sla_met=sla_met,
        digest=digest,
        latency_ms=latencies[(len(latencies) - 1) // 2],
        agreeing=tuple(r.oracle for r in agreeing),
        disagreeing=tuple(r.oracle for r in reports if r.report.verdict != winners[0]),
    )
