"""Seed 002's oracles in the simulation: n oracles observe each task, q of them must agree.

Seed 002 has oracles "independently receive notifications of resource performance and SLA
compliance and post the outcomes" to the contracts. mercat's model of them, an attestor for
the round pipeline (`mercat.runtime.attest.Attestor`):

- each of the n oracles reports what happened to a task: failed, ran but missed its SLA
  (late), or ran within it (on time); it reports the truth with probability 1 - `error`,
  else one of the two other outcomes, uniformly;
- the verdict is the outcome at least q oracles agree on (2q > n, so at most one can
  reach q): the rule of `mercat.oracle.quorum.tally`. The book pays a task only on an
  on-time verdict. A task without a quorum is not paid: the requester's charge goes back
  to its escrow and the collective rule counts it as a failure, as it does a late task
  (the rule is blind to who caused what, seed 000).

Two ways to reach the verdict, which give the same verdicts from the same draws (a test
holds them equal, task by task):

- `signed=False` (the default, for a month of rounds): the votes are counts in a numpy
  array and the tally is a comparison with q: no signatures, about a microsecond a task;
- `signed=True`: every oracle signs its report (Ed25519, `mercat.oracle.SignedReport`) and
  the verdict is `mercat.oracle.quorum.tally` over the verified signatures, the code the
  SQL ledger runs when it settles: about 0.1 ms per report. The attestor, not the book,
  tallies here: a task without a quorum settles unpaid, where a book that holds the oracle
  set would refuse it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from mercat import validation as check
from mercat.errors import InvalidParameterError, QuorumNotReachedError
from mercat.identity import Keypair
from mercat.oracle.quorum import QuorumRule, tally
from mercat.oracle.report import OracleReport, SignedReport
from mercat.runtime.attest import Attestation, sla_met
from mercat.runtime.execute import Outcome
from mercat.runtime.snapshot import RoundMarket

FAILED, LATE, ON_TIME, NO_QUORUM = 0, 1, 2, -1
OUTCOMES = 3  # what an oracle can report: failed, ran but missed the SLA, ran within it
_AS_REPORT = {FAILED: (False, False), LATE: (True, False), ON_TIME: (True, True)}
_FROM_REPORT = {v: k for k, v in _AS_REPORT.items()}


def oracle_votes(
    truth: np.ndarray, oracles: int, error: float, rng: np.random.Generator
) -> np.ndarray:
    """Each oracle's report on each task: the true outcome with probability 1 - error, else
    one of the two others, uniformly. Shape (tasks, oracles)."""
    wrong = rng.random((truth.size, oracles)) < error
    shift = rng.integers(1, OUTCOMES, size=(truth.size, oracles))
    return np.where(wrong, (truth[:, None] + shift) % OUTCOMES, truth[:, None])


def verdicts(votes: np.ndarray, quorum: int) -> np.ndarray:
    """The outcome at least `quorum` oracles agree on, per task, or NO_QUORUM: the rule of
    `mercat.oracle.quorum.tally` (with 2q > n no two outcomes can both reach q)."""
    counts = np.stack([(votes == k).sum(axis=1) for k in range(OUTCOMES)], axis=1)
    best = counts.argmax(axis=1)
    return np.where(counts.max(axis=1) >= quorum, best, NO_QUORUM)


def oracle_keys(n: int) -> tuple[Keypair, ...]:
    """n fixed oracle keys (derived from their index: a simulation's, never a market's)."""
    return tuple(
        Keypair(hashlib.sha256(f"mercat cloudchain oracle {i}".encode()).digest()) for i in range(n)
    )


class SimulatedOracles:
    """n oracles with error rate `error` and a q-of-n quorum (module docstring). Counts what
    it saw: `attested` tasks, `no_quorum` among them, `overturned` (verdict differs from
    what happened)."""

    def __init__(self, oracles: int, quorum: int, error: float, *, signed: bool = False) -> None:
        self.oracles = check.integer("oracles", oracles, 1)
        self.quorum = check.integer("quorum", quorum, 1)
        if not oracles < 2 * quorum <= 2 * oracles:
            raise InvalidParameterError(
                f"quorum must be a majority of the {oracles} oracles (2q > n) and at most n"
            )
        self.error = check.probability("oracle error", error)
        self.signed = signed
        self.keys = oracle_keys(oracles) if signed else ()
        self.publics = frozenset(k.public for k in self.keys)
        self.attested = self.no_quorum = self.overturned = 0

    def attest(
        self,
        round_: int,
        outcomes: Sequence[Outcome],
        context: RoundMarket,
        rng: np.random.Generator,
    ) -> list[Attestation]:
        if not outcomes:
            return []
        met = [sla_met(o, context) for o in outcomes]
        truth = np.array(
            [ON_TIME if o.success and m else LATE if o.success else FAILED
             for o, m in zip(outcomes, met, strict=True)]
        )  # fmt: skip
        votes = oracle_votes(truth, self.oracles, self.error, rng)
        if self.signed:
            verdict, reports = self._signed_verdicts(round_, outcomes, votes)
        else:
            verdict, reports = verdicts(votes, self.quorum), [()] * len(outcomes)
        self.attested += len(outcomes)
        self.no_quorum += int((verdict == NO_QUORUM).sum())
        self.overturned += int((verdict != truth).sum())
        return [
            Attestation(
                o.task.task,
                v in (LATE, ON_TIME),
                v == ON_TIME,
                o.latency_ms,
                o.digest,
                r,
            )
            for o, v, r in zip(outcomes, verdict.tolist(), reports, strict=True)
        ]

    def _signed_verdicts(
        self, round_: int, outcomes: Sequence[Outcome], votes: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[SignedReport, ...]]]:
        """Each oracle signs its vote; the verdict is the tally of the verified reports."""
        rule = QuorumRule(self.quorum)
        verdict = np.empty(len(outcomes), dtype=np.int64)
        reports = []
        for i, (outcome, row) in enumerate(zip(outcomes, votes.tolist(), strict=True)):
            signed = tuple(
                SignedReport.sign(
                    OracleReport(round_, outcome.task.task, *_AS_REPORT[v], outcome.latency_ms),
                    key,
                )
                for v, key in zip(row, self.keys, strict=True)
            )
            try:
                agreed = tally(signed, self.publics, rule)
                verdict[i] = _FROM_REPORT[(agreed.success, agreed.sla_met)]
            except QuorumNotReachedError:
                verdict[i] = NO_QUORUM
            reports.append(signed)
        return verdict, reports
