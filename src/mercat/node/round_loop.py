"""The node runs the market: a round loop beside the HTTP API, signing as the operator.

Every `round_seconds` at most (sooner rounds wait; a round that runs longer delays the
next), while the ledger holds an open request, the loop runs one round of the round
pipeline (`mercat.runtime.round.run_round`) on the ledger:

1. it records the round on the task board (`opening`) and signs `AdvanceRound(r)`, so the
   ledger's round (what requesters set their requests' expiry by) is the round in progress;
2. the pipeline expires requests past their round, snapshots the ledger, admits servers by
   stake where the ledger's rule weighs by stake (Coll-Rep, Coll-SR: `StakeAdmission` with
   the rule's stake cap as S0), clears with the chosen mechanism, assigns integer tasks
   and opens them (`OpenTasks`, signed by the operator key the node was started with);
3. agents execute and oracles attest (`mercat.node.live`), and the node settles what the
   oracles' quorum attested (`SettleTasks` with their reports);
4. the round's numbers (clearing prices, token flows, removals, where the time went) go to
   the board, its events to the event log.

A task whose quorum is not in when the round's attestation wait ends stays open on the
ledger; each later round first settles those whose quorum has come in since (the backlog).
Idle time (no open request) opens no round: rounds are numbered only when they run.

**Crash safety.** The ledger is the truth and settles each task at most once (a settled
task is never settled again, whatever message asks). A node killed at any point (SIGKILL)
and restarted recovers in `recover` before it opens a round:
- tasks open on the ledger that the board lacks (the node died between `OpenTasks` and
  writing the board) are put on the board, opened now, so agents get their full deadline;
- a round the board shows unfinished whose tasks never reached the ledger (the node died
  before `OpenTasks` committed) is **rolled back**: nothing of it took effect but the
  expiry refunds, which stand;
- a round with tasks open on the ledger is **resumed**: the loop waits for their claims and
  reports as it would have, and settles them;
- the next round is numbered after the highest the ledger or the board has seen.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mercat.clearing import registry
from mercat.clearing.report import configure
from mercat.errors import InvalidParameterError
from mercat.identity import Keypair
from mercat.ledger import messages as m
from mercat.ledger.ledger import Ledger
from mercat.node.board import (
    FINAL_PHASES,
    BoardLog,
    BoardTask,
    BoundAsset,
    TaskBoard,
    Verdict,
    now_ms,
)
from mercat.node.live import AgentExecution, NodeBook, OracleAttestation
from mercat.node.sla import Timing
from mercat.runtime import events as ev
from mercat.runtime.admission import StakeAdmission
from mercat.runtime.attest import Attestation
from mercat.runtime.money import TaskSettlement
from mercat.runtime.records import MarginHolder, TaskRecord
from mercat.runtime.round import RoundPlan, RoundReport, run_round
from mercat.runtime.snapshot import BookState
from mercat.runtime.terms import TaskTerms

log = logging.getLogger("mercat.node.round_loop")


@dataclass(frozen=True)
class LoopSettings:
    """How the node runs its market (`mercat serve --operator-key ...` sets these)."""

    mechanism: str = "optimal"
    options: dict[str, Any] = field(default_factory=dict)
    round_seconds: float = 5.0  # the least time from one round's start to the next's
    until_round: int | None = None  # open no round after this one (settling goes on)
    timing: Timing = field(default_factory=Timing)
    attest_seconds: float = 30.0  # how long a round waits for its tasks' quorums
    admission: bool = True  # stake-weighted admission where the rule weighs by stake
    seed: int = 0  # round r draws from numpy's default_rng([seed, r])
    idle_seconds: float = 0.5  # how often an idle loop looks for requests
    # Clear with seed 003's auctioneer run by separate provider processes named by this
    # peers file (mercat.auctioneer.remote), the node their sealing client with this key;
    # `mechanism` and `options` are then unused.
    auctioneer_peers: str | None = None
    auctioneer_key: Keypair | None = field(default=None, repr=False)


class _TimedBook:
    """The book, with the time each stage spends in it (for "where the time goes")."""

    def __init__(self, book: NodeBook) -> None:
        self.book = book
        self.unit = book.unit
        self.seconds: dict[str, float] = {}

    def _timed(self, stage: str, call: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def expire(self, round_: int) -> list[str]:
        return self._timed("expire", self.book.expire, round_)  # type: ignore[no-any-return]

    def state(self, round_: int) -> BookState:
        return self._timed("snapshot", self.book.state, round_)  # type: ignore[no-any-return]

    def open_tasks(
        self, round_: int, tasks: list[TaskTerms], margin_to: MarginHolder
    ) -> list[TaskRecord]:
        return self._timed("open", self.book.open_tasks, round_, tasks, margin_to)  # type: ignore[no-any-return]

    def settle(self, round_: int, attestations: list[Attestation]) -> list[TaskSettlement]:
        return self._timed("settle", self.book.settle, round_, attestations)  # type: ignore[no-any-return]

    def pool(self) -> int:
        return self.book.pool()


class RoundLoop:
    """The market's round loop in a thread of the node (module docstring)."""

    def __init__(
        self, ledger: Ledger, operator: Keypair, board: TaskBoard, settings: LoopSettings
    ) -> None:
        self.ledger = ledger
        self.board = board
        self.settings = settings
        self.book = NodeBook(ledger, operator)
        self.stop_event = threading.Event()
        if settings.auctioneer_peers is not None:
            from mercat.auctioneer.remote import AuctioneerProcesses

            if settings.auctioneer_key is None:
                raise InvalidParameterError("the auctioneer's peers file needs its client key")
            mechanism: Any = AuctioneerProcesses(settings.auctioneer_peers,
                                                 settings.auctioneer_key)  # fmt: skip
        else:
            mechanism = configure(registry.get(settings.mechanism), dict(settings.options))
        self.mechanism = mechanism
        cap = ledger.config.rule.stake_cap
        admission = None
        if settings.admission and cap and mechanism.name != "collective":
            admission = StakeAdmission(cap)
        self.executor = AgentExecution(board, settings.timing, self.stop_event)
        self.attestor = OracleAttestation(ledger, board, self.stop_event, settings.attest_seconds)
        self.events = BoardLog(board)
        self.plan = RoundPlan(
            mechanism, self.executor, self.attestor, admission=admission, log=self.events
        )
        self.next_round = 1
        self.state = "starting"
        self.error: str | None = None
        self.failures = 0  # times in a row the next round failed (a retry may succeed)
        self._thread: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="round-loop", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 15.0) -> None:
        """Stop after the stage in progress (waits end at once; a settlement finishes)."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
        closing = getattr(self.mechanism, "close", None)
        if callable(closing) and (self._thread is None or not self._thread.is_alive()):
            closing()  # the auctioneer's client: its sockets and event loop

    def status(self) -> dict[str, Any]:
        s = self.settings
        return {
            "state": self.state, "next_round": self.next_round, "until_round": s.until_round,
            "mechanism": s.mechanism if s.auctioneer_peers is None else "distributed-auction",
            "auctioneer": "processes" if s.auctioneer_peers is not None else None,
            "round_seconds": s.round_seconds,
            "grace_ms": s.timing.grace_ms, "no_deadline_ms": s.timing.no_deadline_ms,
            "attest_seconds": s.attest_seconds,
            "admission": self.plan.admission is not None, "error": self.error,
            "failures": self.failures,
        }  # fmt: skip

    def _sleep(self, seconds: float) -> None:
        self.stop_event.wait(max(0.0, seconds))

    def _run(self) -> None:
        try:
            self.recover()
        except Exception as exc:  # the node keeps serving; the loop says why it stopped
            log.exception("recovery failed")
            self.state, self.error = "failed", f"recovery failed: {exc}"
            return
        while not self.stop_event.is_set():
            current = self.next_round  # run_one moves it on when a round fails past OpenTasks
            try:
                self.settle_backlog()
                until = self.settings.until_round
                if until is not None and self.next_round > until:
                    self.state = "done" if not self.board.open_rounds() else "settling"
                    self._sleep(self.settings.idle_seconds)
                    continue
                if not self.ledger.request_records(status="open"):
                    self.state = "idle"
                    self._sleep(self.settings.idle_seconds)
                    continue
                started = time.monotonic()
                self.run_one(self.next_round)
                self.next_round += 1
                self.failures = 0
                self._sleep(self.settings.round_seconds - (time.monotonic() - started))
            except Exception as exc:  # a round that fails must not end the market
                log.exception("round %s failed", current)
                self.error = f"round {current}: {type(exc).__name__}: {exc}"
                self.failures += 1
                self._sleep(1.0)
        self.state = "stopped"

    # --- one round -------------------------------------------------------------------------

    def run_one(self, round_: int) -> RoundReport:
        self.state = f"round {round_}"
        self.board.set_round(round_, "opening")
        self.board.add_events([{"kind": "round_started", "round": round_}])
        self.book.submit("operator", m.AdvanceRound(round=round_))
        timed = _TimedBook(self.book)
        started = time.perf_counter()
        try:
            report = run_round(
                timed, round_, self.plan, np.random.default_rng([self.settings.seed, round_])
            )  # type: ignore[arg-type]
        except Exception as exc:
            opened = [t for t in self.ledger.tasks(round_) if t.status == "open"]
            phase = "executing" if opened else "rolled_back"
            self.board.set_round(round_, phase, error=f"{type(exc).__name__}: {exc}")
            if opened:  # the number is spent (its task ids are taken): the backlog settles them
                self.next_round = max(self.next_round, round_ + 1)
            raise
        total = time.perf_counter() - started
        verdicts = self._verdicts(report.settlements)
        self.board.settle_tasks(round_, verdicts)
        self._note_overruled(round_, report.outcomes, verdicts)
        timings = dict(timed.seconds)
        if report.tasks:
            timings["execute"] = self.executor.seconds
            timings["attest"] = self.attestor.seconds
        timings["clear"] = max(0.0, total - sum(timings.values()))
        timings["total"] = total
        phase = "closed" if report.tasks else "empty"
        self.board.set_round(
            round_, phase, **round_record(report, self.book.unit, self.book.pool()),
            timings={k: round(v, 4) for k, v in timings.items()},
        )  # fmt: skip
        return report

    def _verdicts(self, settlements: Any) -> dict[str, Verdict]:
        """Board verdicts of settled tasks, from the attestations they settled on."""
        attested = {a.task: a for a in self._last_attestations()}
        out = {}
        for s in settlements:
            a = attested.get(s.task)
            if a is None:
                continue
            out[s.task] = Verdict(a.success, a.sla_met, s.paid, a.latency_ms, a.digest)
        return out

    def _note_overruled(self, round_: int, outcomes: Any, verdicts: dict[str, Verdict]) -> None:
        """Tasks whose claims added up to a success the oracles did not attest: a check of
        theirs failed (an output missing or of the wrong kind, a re-execution that differs,
        a privacy budget exceeded), or a lying majority."""
        notes = {
            o.task.task: "the claims agreed, the oracles' quorum attested a failure"
            for o in outcomes
            if o.success and o.task.task in verdicts and not verdicts[o.task.task].success
        }
        if notes:
            self.board.note_tasks(round_, notes)

    def _last_attestations(self) -> list[Attestation]:
        return list(self.attestor.last)

    # --- backlog and recovery --------------------------------------------------------------

    def settle_backlog(self, wait_seconds: float = 0.0) -> int:
        """Settle open tasks of earlier rounds whose quorum is in; returns how many."""
        done = 0
        for round_ in self.board.open_rounds():
            if round_ >= self.next_round or self.stop_event.is_set():
                continue
            names = [t.task for t in self.board.open_tasks_of(round_)]
            self._reconcile(round_, names)
            names = [t.task for t in self.board.open_tasks_of(round_)]
            attestations = self.attestor.wait(round_, names, wait_seconds)
            if attestations:
                settlements = self.book.settle(round_, attestations)
                by_task = {a.task: a for a in attestations}
                verdicts = {
                    s.task: Verdict(by_task[s.task].success, by_task[s.task].sla_met, s.paid,
                                    by_task[s.task].latency_ms, by_task[s.task].digest)
                    for s in settlements
                }  # fmt: skip
                self.board.settle_tasks(round_, verdicts)
                self._emit_settled(round_, settlements)
                self._update_counts(round_, settlements)
                done += len(settlements)
            self._close_if_settled(round_)
        return done

    def _close_if_settled(self, round_: int) -> None:
        """A round that failed after opening its tasks was left `executing`; once the
        backlog (or the ledger, `_reconcile`) has settled its last task it is over, and
        reads `closed` as a round that ran through does (its record keeps the error)."""
        if round_ in self.board.open_rounds():
            return
        record = next((r for r in self.board.rounds(1, before=round_ + 1) if r["round"] == round_),
                      None)  # fmt: skip
        if record is not None and record["phase"] not in FINAL_PHASES:
            self.board.set_round(round_, "closed")

    def _reconcile(self, round_: int, names: list[str]) -> None:
        """Tasks the board has open that the ledger settled some other way (anyone may
        settle a task whose quorum is in): the board takes the ledger's verdict."""
        settled = {t.task: t for t in self.ledger.tasks(round_, "settled") if t.task in set(names)}
        if not settled:
            return
        self.board.settle_tasks(
            round_,
            {name: Verdict(bool(t.success), bool(t.sla_met), bool(t.success and t.sla_met),
                           int(t.latency_ms or 0), None)
             for name, t in settled.items()},
        )  # fmt: skip

    def _emit_settled(self, round_: int, settlements: list[TaskSettlement]) -> None:
        events: list[ev.Event] = []
        for s in settlements:
            change = sum(e.stake_after - e.stake_before for e in s.effects)
            events.append(ev.TaskSettled(round_, s.task, s.request, s.paid, s.charge, s.margin,
                                         s.refunded, change))  # fmt: skip
            events += [ev.AssetRemoved(round_, s.task, e.asset, e.owner, e.stake_after)
                       for e in s.effects if e.removed]  # fmt: skip
        for event in events:
            self.events.emit(event)
        self.events.flush()

    def _update_counts(self, round_: int, settlements: list[TaskSettlement]) -> None:
        record = next((r for r in self.board.rounds(1, before=round_ + 1) if r["round"] == round_),
                      None)  # fmt: skip
        if record is None:
            return
        paid = sum(1 for s in settlements if s.paid)
        flows = flows_of(settlements)
        update = {
            "paid": record.get("paid", 0) + paid,
            "failed": record.get("failed", 0) + len(settlements) - paid,
            "unsettled": max(0, record.get("unsettled", 0) - len(settlements)),
            "removed": [*record.get("removed", []), *flows.pop("removed")],
        }
        for key, value in flows.items():
            update[key] = record.get(key, 0) + value
        self.board.set_round(round_, record["phase"], **update)

    def recover(self) -> None:
        """Make the board agree with the ledger after a restart (module docstring)."""
        self.state = "recovering"
        open_on_ledger = self.ledger.tasks(status="open")
        missing = [t for t in open_on_ledger if not self.board.has_task(t.round, t.task)]
        if missing:
            offers = self.ledger.offers()
            owners = {a.id: a.owner for a in self.ledger.assets()}
            requests = {r.request: r for r in self.ledger.request_records()}
            rows = []
            for t in missing:
                record = requests[t.request]
                terms = record.terms
                rows.append(
                    BoardTask(
                        t.round, t.task, t.request, record.owner,
                        terms.workload if terms else "", tuple(terms.inputs) if terms else (),
                        terms.deadline_ms if terms else 0, t.charge,
                        tuple(BoundAsset(a, owners.get(a, ""),
                                         offers[a].kind if a in offers else "server", p)
                              for a, p in zip(t.assets, t.payouts, strict=True)),
                        tuple(sorted(terms.sealed)) if terms else (),
                    )
                )  # fmt: skip
            self.board.record_tasks(rows, now_ms())
            for round_ in {t.round for t in missing}:
                if round_ not in self.board.unfinished_rounds():
                    self.board.set_round(round_, "executing", recovered=True)
        with_tasks = {t.round for t in open_on_ledger} | set(self.board.open_rounds())
        for round_ in self.board.unfinished_rounds():
            if round_ in with_tasks:
                continue  # resumed below
            if not self.ledger.tasks(round_):
                self.board.set_round(round_, "rolled_back")
                self.board.add_events([{"kind": "round_rolled_back", "round": round_}])
            else:  # its every task has settled: the node died before it closed the round
                self.board.set_round(round_, "closed")
        self.next_round = max(self.ledger.round(), self.board.last_round()) + 1
        for round_ in sorted(with_tasks):
            self.resume(round_)

    def resume(self, round_: int) -> None:
        """Wait for a recovered round's open tasks as the round would have, settle what the
        oracles attest, close the round (what has no quorum stays in the backlog)."""
        self.state = f"resuming round {round_}"
        self.board.add_events([{"kind": "round_resumed", "round": round_}])
        open_tasks = self.board.open_tasks_of(round_)
        terms = [TaskTerms(t.task, t.request, tuple(a.asset for a in t.assets),
                           tuple(a.payout for a in t.assets), t.charge)
                 for t in open_tasks]  # fmt: skip
        self.executor.wait(round_, terms)
        self.board.set_round(round_, "attesting")
        attestations = self.attestor.wait(
            round_, [t.task for t in terms], self.settings.attest_seconds
        )
        settlements = self.book.settle(round_, attestations) if attestations else []
        by_task = {a.task: a for a in attestations}
        self.board.settle_tasks(
            round_,
            {s.task: Verdict(by_task[s.task].success, by_task[s.task].sla_met, s.paid,
                             by_task[s.task].latency_ms, by_task[s.task].digest)
             for s in settlements},
        )  # fmt: skip
        self._emit_settled(round_, settlements)
        self.board.set_round(round_, "closed", resumed=True)
        self._update_counts(round_, settlements)


def flows_of(settlements: list[TaskSettlement]) -> dict[str, Any]:
    """Token flows of settled tasks, in base units."""
    paid = [s for s in settlements if s.paid]
    changes = [e.stake_after - e.stake_before for s in settlements for e in s.effects]
    return {
        "charged": sum(s.charge for s in paid),
        "payouts": sum(sum(s.payouts.values()) for s in paid),
        "margin": sum(s.margin for s in paid),
        "refunded": sum(s.refunded for s in settlements),
        "rewards": sum(c for c in changes if c > 0),
        "penalties": -sum(c for c in changes if c < 0),
        "removed": [e.asset for s in settlements for e in s.effects if e.removed],
    }


def round_record(report: RoundReport, unit: int, pool: int) -> dict[str, Any]:
    """A round's numbers for the board (amounts in base units; prices in tokens per unit
    of demand, as the clearing set them)."""
    prices: dict[str, float] = {}
    clearing = report.clearing
    if clearing is not None:
        for request_id in sorted(clearing.allocation.served_requests):
            request = report.market.request(request_id)
            units = sum(request.demand) or 1.0
            prices[request_id] = round(clearing.payment(request_id) / units, 6)
    settled = len(report.settlements)
    return {
        "requests": report.requests, "servers": report.servers, "tasks": len(report.tasks),
        "paid": report.paid, "failed": report.failed,
        "unsettled": len(report.tasks) - settled,
        "welfare": round(report.welfare, 6),
        "mechanism": clearing.mechanism if clearing is not None else None,
        "proven": clearing.proven if clearing is not None else None,
        "prices": prices,
        "mean_price": round(sum(prices.values()) / len(prices), 6) if prices else None,
        "expired": list(report.expired), "pool": pool, "unit": unit,
        **flows_of(list(report.settlements)),
    }  # fmt: skip
