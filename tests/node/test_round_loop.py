"""The round loop's recovery after a crash, without processes: the board rebuilt from the
ledger, a round whose tasks never reached the ledger rolled back, a round with open tasks
resumed and settled exactly once, whatever number of restarts."""

from __future__ import annotations

import threading

import pytest

from mercat.errors import LedgerUnavailableError
from mercat.identity import Keypair
from mercat.ledger import Ledger, Signer
from mercat.ledger import messages as m
from mercat.node.board import TaskBoard, now_ms
from mercat.node.claims import OutcomeClaim, SignedClaim
from mercat.node.live import NodeBook, board_tasks
from mercat.node.round_loop import LoopSettings, RoundLoop
from mercat.node.sla import Timing
from mercat.oracle import OracleReport, SignedReport
from mercat.runtime.attest import Attestation
from mercat.runtime.execute import Outcome

from .market_fixtures import small_market

SETTINGS = LoopSettings(timing=Timing(grace_ms=200), attest_seconds=20.0, round_seconds=0.0)


def _settle_entries(ledger: Ledger) -> int:
    return sum(1 for e in ledger.journal(limit=1000) if e.op in ("settle", "settle_tasks"))


def _answer(board: TaskBoard, market, output: str, oracles) -> None:
    """What agents and oracles would send, once the task is on the board."""
    while not board.has_task(1, "t1"):
        board.wait_for_change(board.version, 0.2)
    at = now_ms()
    for asset in ("gpu-1", "gpu-2"):
        claim = OutcomeClaim(market.ledger_id, 1, "t1", asset, True, output, 10)
        board.add_claim(SignedClaim.sign(claim, market.alice), at)
    for oracle in oracles:
        report = OracleReport(1, "t1", True, True, 15, output, market.ledger_id)
        board.add_report(SignedReport.sign(report, oracle), "pending", at)


def test_a_round_that_died_after_opening_its_tasks_is_resumed_and_settled_once(tmp_path):
    market = small_market(tmp_path)
    ledger = Ledger(market.url)
    board = TaskBoard(tmp_path / "board.db")
    board.set_round(1, "opening")  # the node died after OpenTasks, before the board heard
    helper = threading.Thread(
        target=_answer, args=(board, market, "bafkreiout", market.oracles[:2])
    )
    helper.start()
    loop = RoundLoop(ledger, market.operator, board, SETTINGS)
    loop.recover()
    helper.join(10)
    assert [t.status for t in ledger.tasks(1)] == ["settled"]
    assert board.rounds()[0]["phase"] == "closed" and board.rounds()[0]["resumed"] is True
    assert board.task(1, "t1")["verdict"]["paid"] is True
    assert _settle_entries(ledger) == 1
    assert loop.next_round == 2
    # A second restart finds nothing to do: the task is not settled again.
    again = RoundLoop(ledger, market.operator, board, SETTINGS)
    again.recover()
    assert _settle_entries(ledger) == 1 and again.next_round == 2
    ledger.verify()
    ledger.close()


def test_a_round_that_died_before_its_tasks_reached_the_ledger_is_rolled_back(tmp_path):
    market = small_market(tmp_path, open_task=False)
    ledger = Ledger(market.url)
    operator = Signer(market.operator, ledger.id)
    ledger.submit(operator.sign(m.AdvanceRound(round=1)))  # round 1 began, then the node died
    board = TaskBoard(tmp_path / "board.db")
    board.set_round(1, "opening")
    loop = RoundLoop(ledger, market.operator, board, SETTINGS)
    loop.recover()
    assert board.rounds()[0]["phase"] == "rolled_back"
    assert loop.next_round == 2  # the next round gets the next number
    assert ledger.tasks() == [] and ledger.request_records("open")  # the request still waits
    ledger.close()


def test_a_task_without_its_quorum_waits_in_the_backlog_then_settles(tmp_path):
    market = small_market(tmp_path)
    ledger = Ledger(market.url)
    board = TaskBoard(tmp_path / "board.db")
    board.set_round(1, "executing")
    board.record_tasks([market.task], now_ms())
    loop = RoundLoop(ledger, market.operator, board, LoopSettings(timing=Timing(grace_ms=200)))
    loop.next_round = 2
    assert loop.settle_backlog() == 0  # no reports yet
    output = "bafkreiout"
    _answer(board, market, output, market.oracles[:1])  # one report: no quorum of 2
    assert loop.settle_backlog() == 0
    liar = SignedReport.sign(OracleReport(1, "t1", False, False, 9, None, market.ledger_id),
                             market.oracles[1])  # fmt: skip
    board.add_report(liar, "pending", now_ms())
    assert loop.settle_backlog() == 0  # one against one
    honest = SignedReport.sign(OracleReport(1, "t1", True, True, 12, output, market.ledger_id),
                               market.oracles[2])  # fmt: skip
    board.add_report(honest, "pending", now_ms())
    assert loop.settle_backlog() == 1  # two of three agree: the liar is outvoted
    statuses = {r.oracle: s for r, s in ledger.oracle_reports(1, ["t1"])}
    assert statuses[market.oracles[1].public] == "disagree"
    assert board.task(1, "t1")["verdict"]["paid"] is True
    assert loop.settle_backlog() == 0 and _settle_entries(ledger) == 1
    ledger.close()


def test_a_report_relayed_to_the_ledger_between_tally_and_settlement_is_left_out(tmp_path):
    market = small_market(tmp_path)
    ledger = Ledger(market.url)
    output = "bafkreiout"
    reports = tuple(
        SignedReport.sign(OracleReport(1, "t1", True, True, 15, output, market.ledger_id), k)
        for k in market.oracles[:2]
    )
    # The node tallied both reports and will send them inline; meanwhile someone relayed
    # the first to the ledger directly (anyone may): the batch would name it twice.
    ledger.submit(Signer(market.bob, ledger.id).sign(m.Report(report=reports[0])))
    book = NodeBook(ledger, market.operator)
    settled = book.settle(1, [Attestation("t1", True, True, 15, output, reports)])
    assert [s.paid for s in settled] == [True]
    assert [t.status for t in ledger.tasks(1)] == ["settled"]
    ledger.close()


def _backlog_loop(tmp_path, market):
    ledger = Ledger(market.url)
    board = TaskBoard(tmp_path / "board.db")
    board.set_round(1, "executing")
    board.record_tasks([market.task], now_ms())
    loop = RoundLoop(ledger, market.operator, board, SETTINGS)
    loop.next_round = 2
    return ledger, board, loop


def _report(market, oracle, success: bool) -> SignedReport:
    output = "bafkreiout" if success else None
    return SignedReport.sign(
        OracleReport(1, "t1", success, success, 12, output, market.ledger_id), oracle
    )


def test_two_verdicts_each_with_a_quorum_leave_the_task_open_and_the_loop_running(tmp_path):
    # With 2q <= n oracles two verdicts can each reach q: the ledger refuses to choose, and
    # the node's tally must not raise out of its round loop for it (the backlog is looked at
    # before every round: a raise there would stop every later round).
    market = small_market(tmp_path)
    ledger, board, loop = _backlog_loop(tmp_path, market)
    fourth = Keypair.generate()
    ledger.submit(Signer(market.operator, ledger.id).sign(m.AddOracle(oracle=fourth.public)))
    for oracle, success in zip([*market.oracles, fourth], (True, True, False, False), strict=True):
        board.add_report(_report(market, oracle, success), "pending", now_ms())
    assert loop.settle_backlog() == 0
    assert [t.status for t in ledger.tasks(1)] == ["open"]
    ledger.close()


def test_a_report_from_outside_the_oracle_set_is_left_out_of_the_tally(tmp_path):
    market = small_market(tmp_path)
    ledger, board, loop = _backlog_loop(tmp_path, market)
    # e.g. an oracle added after the wait read the set: its report counts from the next look
    board.add_report(_report(market, Keypair.generate(), False), "pending", now_ms())
    for oracle in market.oracles[:2]:
        board.add_report(_report(market, oracle, True), "pending", now_ms())
    assert loop.settle_backlog() == 1
    assert board.task(1, "t1")["verdict"]["paid"] is True
    ledger.close()


def test_a_round_that_fails_after_opening_its_tasks_leaves_them_to_the_backlog(tmp_path):
    # The round's number is spent once its tasks are on the ledger: were it run again, the
    # same task ids would be refused and the backlog (rounds before the next one) would
    # never look at the tasks it opened.
    market = small_market(tmp_path, open_task=False)
    ledger = Ledger(market.url)
    board = TaskBoard(tmp_path / "board.db")
    loop = RoundLoop(ledger, market.operator, board, SETTINGS)
    loop.recover()

    class Unreachable:
        def attest(self, round_, outcomes, context, rng):
            raise LedgerUnavailableError("the database went away")

    class NoWait:
        def execute(self, round_, tasks, context, rng):
            board.record_tasks(board_tasks(round_, tasks, context, lambda a: "server",
                                           lambda a: market.alice.public), now_ms())  # fmt: skip
            return [Outcome(t, True, 10) for t in tasks]

    loop.plan.executor, loop.plan.attestor = NoWait(), Unreachable()
    with pytest.raises(LedgerUnavailableError):
        loop.run_one(loop.next_round)
    opened = [t.task for t in ledger.tasks(1)]
    assert opened and [t.status for t in ledger.tasks(1)] == ["open"] * len(opened)
    assert loop.next_round == 2
    assert board.rounds()[0]["phase"] == "executing"
    for task in opened:
        for oracle in market.oracles[:2]:
            report = OracleReport(1, task, True, True, 10, "bafkreiout", market.ledger_id)
            board.add_report(SignedReport.sign(report, oracle), "pending", now_ms())
    assert loop.settle_backlog() == len(opened)
    assert [t.status for t in ledger.tasks(1)] == ["settled"] * len(opened)
    assert board.rounds()[0]["phase"] == "closed"  # as a round that ran through
    ledger.close()


def test_a_failed_round_whose_last_task_the_backlog_settles_reads_closed(tmp_path):
    # The round failed after opening its task (its phase: executing); once the backlog has
    # settled every task of it, it is over, and reads as a round that ran through does.
    market = small_market(tmp_path)
    ledger, board, loop = _backlog_loop(tmp_path, market)
    board.add_report(_report(market, market.oracles[0], True), "pending", now_ms())
    assert loop.settle_backlog() == 0  # one report of a quorum of two: still executing
    assert board.rounds()[0]["phase"] == "executing"
    board.add_report(_report(market, market.oracles[1], True), "pending", now_ms())
    assert loop.settle_backlog() == 1
    record = board.rounds()[0]
    assert record["phase"] == "closed" and record["finished_ms"] is not None
    assert record["round"] == 1 and board.unfinished_rounds() == []
    ledger.close()


def test_a_round_whose_tasks_all_settled_before_a_restart_reads_closed_after_it(tmp_path):
    # The node died between settling a round's last task and closing the round (or a board
    # kept it executing after the backlog settled it): recovery closes it.
    market = small_market(tmp_path)
    ledger, board, loop = _backlog_loop(tmp_path, market)
    for oracle in market.oracles[:2]:
        board.add_report(_report(market, oracle, True), "pending", now_ms())
    assert loop.settle_backlog() == 1
    board.set_round(1, "executing")
    again = RoundLoop(ledger, market.operator, board, SETTINGS)
    again.recover()
    assert board.rounds()[0]["phase"] == "closed" and _settle_entries(ledger) == 1
    ledger.close()
