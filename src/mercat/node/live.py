"""Stages 4-6 of a round in a live market: agents execute, oracles attest, the node settles.

The round pipeline (`mercat.runtime.round.run_round`) takes an executor and an attestor;
a simulation plugs in sampled execution and direct attestation, the node plugs in these:

- `AgentExecution` puts the round's tasks on the task board, where provider agents find
  them (`GET /market/tasks?assignee=...`), and waits until every server of every task has
  sent its signed outcome claim or the task's cutoff has passed (`mercat.node.sla`); the
  `Outcome`s it returns are what the claims add up to;
- `OracleAttestation` waits until the oracles' signed reports on each task (sent to the
  node, or relayed to the ledger directly) reach the ledger's quorum, or until
  `wait_seconds` pass; a task without a quorum by then stays open on the ledger (its
  escrow held) and is settled by a later round once its quorum is in (the backlog);
- `NodeBook` is the SQL ledger's book (`mercat.ledger.book.LedgerBook`, the operator
  signing) whose settlement carries the oracles' reports inline in `SettleTasks`, leaving
  out those the ledger already holds: the ledger re-checks every signature and tallies the
  quorum itself, so the node's tally is a forecast, never the authority.

Every wait is bounded and wakes on the board's changes (a claim or report arriving) or the
loop's stop event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from mercat.errors import ConflictingQuorumError, DuplicateReportError, QuorumNotReachedError
from mercat.ledger.book import LedgerBook
from mercat.ledger.ledger import Ledger
from mercat.node.board import BoardTask, BoundAsset, TaskBoard, now_ms
from mercat.node.sla import Timing, judge
from mercat.oracle.quorum import QuorumRule, Verdict, tally
from mercat.oracle.report import SignedReport
from mercat.runtime.attest import Attestation
from mercat.runtime.execute import Outcome
from mercat.runtime.money import TaskSettlement
from mercat.runtime.snapshot import RoundMarket
from mercat.runtime.terms import TaskTerms

WAKE_SECONDS = 0.5  # the longest a wait sleeps without looking again


def board_tasks(
    round_: int,
    tasks: Sequence[TaskTerms],
    context: RoundMarket,
    kind_of: Callable[[str], str],
    owner_of: Callable[[str], str],
) -> list[BoardTask]:
    """The round's tasks as the board keeps them (request terms beside each)."""
    out = []
    for t in tasks:
        record = context.requests[t.request]
        terms = record.terms
        out.append(
            BoardTask(
                round_, t.task, t.request, record.owner, terms.workload, tuple(terms.inputs),
                terms.deadline_ms, t.charge,
                tuple(BoundAsset(a, owner_of(a), kind_of(a), p)
                      for a, p in zip(t.assets, t.payouts, strict=True)),
                tuple(sorted(terms.sealed)),
            )
        )  # fmt: skip
    return out


class AgentExecution:
    """An executor whose tasks provider agents run (module docstring)."""

    def __init__(self, board: TaskBoard, timing: Timing, stop: threading.Event) -> None:
        self.board = board
        self.timing = timing
        self.stop = stop
        self.seconds = 0.0  # how long the last round waited for its claims

    def execute(
        self,
        round_: int,
        tasks: Sequence[TaskTerms],
        context: RoundMarket,
        rng: np.random.Generator,
    ) -> list[Outcome]:
        def kind_of(asset: str) -> str:
            return context.views[asset].offer.kind

        def owner_of(asset: str) -> str:
            return context.views[asset].owner

        self.board.record_tasks(board_tasks(round_, tasks, context, kind_of, owner_of), now_ms())
        self.board.set_round(round_, "executing", tasks=len(tasks))
        return self.wait(round_, tasks)

    def wait(self, round_: int, tasks: Sequence[TaskTerms]) -> list[Outcome]:
        """Outcomes of the round's tasks once each is complete or past its cutoff."""
        started = time.perf_counter()
        on_board = {t.task: t for t in self.board.open_tasks_of(round_)}
        opened = self.board.opened_ms(round_, [t.task for t in tasks])
        judged: dict[str, Outcome] = {}
        notes: dict[str, str] = {}
        while True:
            version = self.board.version
            claims = self.board.claims(round_)
            now = now_ms()
            for t in tasks:
                if t.task in judged:
                    continue
                entry = on_board.get(t.task)
                if entry is None:  # settled meanwhile (a backlog pass): nothing to wait for
                    judged[t.task] = Outcome(t, False, 0)
                    continue
                verdict = judge(entry.servers, claims.get(t.task, {}), opened[t.task],
                                entry.deadline_ms, self.timing, now)  # fmt: skip
                if verdict is not None:
                    judged[t.task] = Outcome(t, verdict.success, verdict.latency_ms,
                                             verdict.output)  # fmt: skip
                    if verdict.reason:
                        notes[t.task] = verdict.reason
            if len(judged) == len(tasks) or self.stop.is_set():
                break
            self.board.wait_for_change(version, WAKE_SECONDS)
        self.seconds = time.perf_counter() - started
        self.board.note_tasks(round_, notes)
        # Interrupted by a stop: what is missing is reported as not done yet (the oracles,
        # not this list, decide every task).
        return [judged.get(t.task) or Outcome(t, False, now_ms() - opened[t.task]) for t in tasks]


class OracleAttestation:
    """An attestor that waits for the oracles' quorum (module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        board: TaskBoard,
        stop: threading.Event,
        wait_seconds: float = 30.0,
    ) -> None:
        self.ledger = ledger
        self.board = board
        self.stop = stop
        self.wait_seconds = wait_seconds
        self.rule = QuorumRule(ledger.config.quorum)
        self.seconds = 0.0
        self.last: list[Attestation] = []  # what the last wait returned

    def oracle_set(self) -> set[str]:
        return {key for key, role, _ in self.ledger.accounts() if role == "oracle"}

    def attest(
        self,
        round_: int,
        outcomes: Sequence[Outcome],
        context: RoundMarket,
        rng: np.random.Generator,
    ) -> list[Attestation]:
        self.board.set_round(round_, "attesting")
        return self.wait(round_, [o.task.task for o in outcomes], self.wait_seconds)

    def wait(self, round_: int, tasks: Sequence[str], seconds: float) -> list[Attestation]:
        """Attestations of the tasks whose quorum is in within `seconds` (0: look once)."""
        started = time.perf_counter()
        oracles = self.oracle_set()
        until = time.monotonic() + seconds
        while True:
            version = self.board.version
            found = self.tally(round_, tasks, oracles)
            if len(found) == len(tasks) or self.stop.is_set() or time.monotonic() >= until:
                break
            self.board.wait_for_change(version, min(WAKE_SECONDS, until - time.monotonic()))
        self.seconds = time.perf_counter() - started
        self.last = [
            Attestation(task, v.success, v.sla_met, v.latency_ms, v.digest, inline)
            for task, (v, inline) in found.items()
        ]
        return list(self.last)

    def tally(
        self, round_: int, tasks: Sequence[str], oracles: set[str]
    ) -> dict[str, tuple[Verdict, tuple[SignedReport, ...]]]:
        """task -> (the quorum's verdict, the reports to send inline) for tasks with one.
        A task without a verdict now is left for a later look, never raised: this runs
        before every round, so an error here would stop the market. Reports from outside
        `oracles` (an oracle added since the set was read) wait for the next look; two
        verdicts that each reach the quorum (possible where 2q <= n) settle nothing, as the
        ledger would refuse them."""
        sent = self.board.reports(round_)
        held: dict[str, list[SignedReport]] = {}
        for signed, _ in self.ledger.oracle_reports(round_, tasks, status="pending"):
            held.setdefault(signed.report.task, []).append(signed)
        out = {}
        for task in tasks:
            on_ledger = [r for r in held.get(task, []) if r.oracle in oracles]
            known = {r.oracle for r in on_ledger}
            inline = tuple(
                r for r in sent.get(task, []) if r.oracle not in known and r.oracle in oracles
            )
            everything = [*on_ledger, *inline]
            try:
                verdict = tally(everything, oracles, self.rule, verify_signatures=False)
            except (QuorumNotReachedError, ConflictingQuorumError):
                continue
            out[task] = (verdict, inline)
        return out


class NodeBook(LedgerBook):
    """The ledger's book, settling with the oracles' reports inline (module docstring).

    A report relayed to the ledger directly between the node's tally and its settlement
    would make the batch name an oracle twice (`DuplicateReportError`, refused whole); the
    node then leaves out what the ledger holds by now and sends the batch again."""

    RETRIES = 3

    def settle(self, round_: int, attestations: Sequence[Attestation]) -> list[TaskSettlement]:
        batch = list(attestations)
        for attempt in range(self.RETRIES + 1):
            try:
                return super().settle(round_, batch)
            except DuplicateReportError:
                if attempt == self.RETRIES:
                    raise
                held: dict[str, set[str]] = {}
                tasks = [a.task for a in batch]
                for signed, _ in self.ledger.oracle_reports(round_, tasks, status="pending"):
                    held.setdefault(signed.report.task, set()).add(signed.oracle)
                batch = [
                    Attestation(a.task, a.success, a.sla_met, a.latency_ms, a.digest,
                                tuple(r for r in a.reports
                                      if r.oracle not in held.get(a.task, set())))
                    for a in batch
                ]  # fmt: skip
        raise AssertionError("unreachable")  # pragma: no cover
