"""Stage 5 of a round: oracles attest what happened to each task.

An `Attestation` carries the verdict a book settles on: the task succeeded or not, and met
its SLA (its latency within the request's `deadline_ms`) or not. A book pays a task only
when both hold. Two attestors:

- `DirectAttestation` takes each outcome as the verdict, with no signatures: a simulation
  that trusts its own execution (the in-memory book settles on it as it is);
- `OracleQuorum` has n oracles sign reports (`mercat.oracle.SignedReport`) and lets the
  book decide by its q-of-n quorum (`mercat.oracle.quorum.tally`). Oracles can be made to
  lie (report the opposite of what they saw) or stay silent, to test that an honest
  majority carries the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from mercat.identity import Keypair
from mercat.oracle.report import OracleReport, SignedReport
from mercat.runtime.execute import Outcome
from mercat.runtime.snapshot import RoundMarket

Behaviour = Literal["honest", "liar", "silent"]


@dataclass(frozen=True, slots=True)
class Attestation:
    task: str
    success: bool
    sla_met: bool
    latency_ms: int
    digest: str | None = None
    reports: tuple[SignedReport, ...] = ()

    @property
    def paid(self) -> bool:
        """Whether the verdict pays the task: success with the SLA met."""
        return self.success and self.sla_met


def sla_met(outcome: Outcome, context: RoundMarket) -> bool:
    deadline = context.requests[outcome.task.request].terms.deadline_ms
    return not deadline or outcome.latency_ms <= deadline


class Attestor(Protocol):
    def attest(
        self,
        round_: int,
        outcomes: Sequence[Outcome],
        context: RoundMarket,
        rng: np.random.Generator,
    ) -> list[Attestation]: ...


class DirectAttestation:
    """The outcome is the verdict (module docstring)."""

    def attest(
        self,
        round_: int,
        outcomes: Sequence[Outcome],
        context: RoundMarket,
        rng: np.random.Generator,
    ) -> list[Attestation]:
        return [
            Attestation(o.task.task, o.success, sla_met(o, context), o.latency_ms, o.digest)
            for o in outcomes
        ]


class OracleQuorum:
    """n oracles that each sign a report per task (module docstring). `behaviours` maps an
    oracle's public key to "honest" (default), "liar" or "silent"; `ledger` is the id of the
    ledger the reports are for (a ledger refuses reports signed for another)."""

    def __init__(
        self,
        keys: Sequence[Keypair],
        behaviours: Mapping[str, Behaviour] | None = None,
        ledger: str = "",
    ) -> None:
        self.keys = tuple(keys)
        self.behaviours = dict(behaviours or {})
        self.ledger = ledger

    @property
    def publics(self) -> tuple[str, ...]:
        return tuple(k.public for k in self.keys)

    def attest(
        self,
        round_: int,
        outcomes: Sequence[Outcome],
        context: RoundMarket,
        rng: np.random.Generator,
    ) -> list[Attestation]:
        out = []
        for o in outcomes:
            met = sla_met(o, context)
            reports = []
            for key in self.keys:
                behaviour = self.behaviours.get(key.public, "honest")
                if behaviour == "silent":
                    continue
                success = o.success if behaviour == "honest" else not o.success
                report = OracleReport(
                    round_, o.task.task, success, met, o.latency_ms, o.digest, self.ledger
                )
                reports.append(SignedReport.sign(report, key))
            out.append(
                Attestation(o.task.task, o.success, met, o.latency_ms, o.digest, tuple(reports))
            )
        return out
