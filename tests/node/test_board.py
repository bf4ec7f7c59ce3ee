"""The task board on each of its backends: SQLite (a file, or memory) and PostgreSQL.

What could differ between them is tested on both: the order of pages and of a view's parts
(PostgreSQL's collation is not byte order), the totals kept beside the rounds, the trimming
of events, writers in two threads, a board closed and opened again, and the refusals that
write nothing. A board file written by the node before the board ran on SQLAlchemy (raw
`sqlite3`, the schema below) opens and works as it is.

The board outlives its node app's lifespan: an app shut down and started again (its
lifespan closes the board, as it closes the ledger) finds the board as it left it."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import threading

import pytest
from sqlalchemy import create_engine, inspect, text

from mercat.errors import AlreadyExistsError, InvalidParameterError, LedgerUnavailableError
from mercat.identity import Keypair
from mercat.node.board import FLOWS, BoardTask, BoundAsset, TaskBoard, Verdict
from mercat.node.claims import OutcomeClaim, SignedClaim
from mercat.node.sealing import grant_for
from mercat.oracle.report import OracleReport, SignedReport

LEDGER = "ab" * 16
# Ids a locale collation orders otherwise than bytes do: case, punctuation that a locale
# skips at first, a letter outside ASCII (task and asset ids on the board are the ledger's;
# claims and reports take only [A-Za-z0-9_.-]).
IDS = ["ab", "a-b", "aB", "A1", "a.c", "b", "a_b", "ac", "Z", "0x", "A"]
WIDE_IDS = [*IDS, "é", "e", "f", "éa"]


@pytest.fixture(params=["sqlite", "postgresql"])
def board_url(request, tmp_path) -> str:
    """Each test using this runs on a SQLite file and on a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/board.db"
    return request.getfixturevalue("pg_url")


def task(round_: int, name: str, *servers: tuple[str, str], request: str = "r") -> BoardTask:
    assets = tuple(BoundAsset(asset, owner, "server", 5) for asset, owner in servers)
    return BoardTask(round_, name, request, None, "w", ("bafyin",), 1_000, 10, assets)


def claim(key: Keypair, round_: int, task_: str, asset: str, success: bool = False):
    output = "bafyout" if success else None
    return SignedClaim.sign(OutcomeClaim(LEDGER, round_, task_, asset, success, output), key)


def report(key: Keypair, round_: int, task_: str) -> SignedReport:
    return SignedReport.sign(OracleReport(round_, task_, True, True, 80, None, LEDGER), key)


def everything(board: TaskBoard) -> dict:
    """What the board answers to every question (for comparing two states)."""
    return {
        "tasks": board.tasks(limit=10_000),
        "oldest": board.tasks(limit=10_000, oldest=True),
        "open_rounds": board.open_rounds(),
        "open_tasks": {r: board.open_tasks_of(r) for r in board.open_rounds()},
        "claims": {r: board.claims(r) for r in range(1, 4)},
        "reports": {(r, s): [(t, [x.to_wire() for x in v]) for t, v in board.reports(r, s).items()]
                    for r in range(1, 4) for s in ("pending", "settled")},
        "grants": {r: board.grants(r, "t1") for r in range(1, 4)},
        "report_counts": board.report_counts(),
        "rounds": board.rounds(limit=10_000),
        "totals": board.round_totals(),
        "last_round": board.last_round(),
        "unfinished": board.unfinished_rounds(),
        "asset_stats": board.asset_stats(),
        "task_counts": board.task_counts(),
        "events": board.events(limit=10_000),
        "last_event": board.last_event(),
    }  # fmt: skip


def a_market(board: TaskBoard) -> None:
    """A few rounds of everything the node writes."""
    alice, bob, oracle = Keypair.generate(), Keypair.generate(), Keypair.generate()
    board.set_round(1, "opening")
    board.record_tasks(
        [task(1, "t1", ("gpu-1", alice.public), ("gpu-2", alice.public), request="q1"),
         task(1, "t2", ("gpu-2", alice.public))],
        opened_ms=5,
    )  # fmt: skip
    board.set_round(1, "executing", tasks=2)
    board.add_claim(claim(alice, 1, "t1", "gpu-1", success=True), 7)
    board.add_claim(claim(alice, 1, "t1", "gpu-2"), 8)
    board.add_report(report(oracle, 1, "t1"), "pending", 9)
    view = board.task(1, "t1")
    assert view is not None
    board.add_grant(grant_for(bob, LEDGER, view, "gpu-1", frozenset({"inputs"})), 10)
    board.note_tasks(1, {"t2": "no claim"})
    board.settle_tasks(1, {"t1": Verdict(True, True, True, 70, "bafyout")})
    board.set_round(1, "closed", charged=10, payouts=8, margin=2)
    board.set_round(2, "opening")
    board.record_tasks([task(2, "t1", ("gpu-1", alice.public))], opened_ms=11)
    board.add_events([{"kind": "round_started", "round": 1}, {"kind": "stage", "round": 1}])
    board.add_events([{"kind": "claim_received", "round": 1, "task": "t1"}])


# --- opened by path, URL or nothing ---------------------------------------------------------


def test_a_closed_board_opens_again_with_what_it_held(board_url):
    board = TaskBoard(board_url)
    a_market(board)
    before = everything(board)
    board.close()
    board.close()  # twice is harmless
    assert everything(board) == before  # the same object opens it again
    board.set_round(3, "opening")
    assert board.last_round() == 3
    board.close()
    again = TaskBoard(board_url)  # a new node on the same database
    after = everything(again)
    assert after["rounds"][1:] == before["rounds"] and after["last_round"] == 3
    assert {k: v for k, v in after.items() if k not in ("rounds", "last_round", "totals",
                                                        "unfinished")} == {
        k: v for k, v in before.items() if k not in ("rounds", "last_round", "totals",
                                                     "unfinished")}  # fmt: skip
    assert after["totals"][0] == before["totals"][0] + 1
    again.close()


def test_a_board_by_path_and_by_sqlite_url_is_the_same_file(tmp_path):
    by_path = TaskBoard(tmp_path / "board.db")
    by_path.set_round(4, "executing")
    by_path.close()
    assert by_path.path == tmp_path / "board.db"
    by_url = TaskBoard(f"sqlite:///{tmp_path}/board.db")
    assert by_url.last_round() == 4 and by_url.path == tmp_path / "board.db"
    by_url.close()
    odd = tmp_path / "a board?with#odd%20name.db"  # a path is a path, not a URL to parse
    TaskBoard(odd).close()
    assert odd.exists()


def test_a_board_in_memory_starts_empty_again_and_serves_every_thread():
    board = TaskBoard()
    assert board.path is None
    board.set_round(3, "executing")
    seen = []
    reader = threading.Thread(target=lambda: seen.append(board.last_round()))
    reader.start()
    reader.join()
    assert seen == [3]  # one database, whichever thread asks
    board.close()
    assert board.last_round() == 0
    board.close()


@pytest.mark.parametrize(
    "where",
    ["mysql://u@host/board", "postgresql://u:secret@host/board", "sqlite+pysqlcipher:///x.db",
     "://nothing"],
)  # fmt: skip
def test_a_url_that_names_no_usable_database_is_one_clear_error(where, tmp_path):
    with pytest.raises(InvalidParameterError) as refused:
        TaskBoard(where)
    message = str(refused.value)
    assert "\n" not in message and "task board" in message and "secret" not in message


def test_a_board_that_cannot_be_opened_says_so_in_one_line_and_leaves_no_file(tmp_path):
    with pytest.raises(LedgerUnavailableError, match="cannot open the task board") as refused:
        TaskBoard(tmp_path / "no-such-folder" / "board.db")
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "no-such-folder").exists()
    (tmp_path / "notes.db").write_text("not a database, but someone's notes\n" * 100)
    with pytest.raises(LedgerUnavailableError, match="cannot open the task board"):
        TaskBoard(tmp_path / "notes.db")
    assert (tmp_path / "notes.db").read_text().startswith("not a database")


def test_a_database_holding_a_ledger_is_refused_and_left_as_it_was(board_url):
    from mercat.ledger import IntegerRule, Ledger, LedgerConfig

    config = LedgerConfig(operator=Keypair.generate().public, rule=IntegerRule(1, 1, True))
    Ledger.init(board_url, config, durable=False).close()
    engine = create_engine(board_url)
    tables = set(inspect(engine).get_table_names())
    with pytest.raises(InvalidParameterError, match=r"holds a table .* that is not a task board's"):
        TaskBoard(board_url)
    assert set(inspect(engine).get_table_names()) == tables
    engine.dispose()


def test_a_node_keeps_its_board_where_its_url_says(board_url, tmp_path):
    """`create_app(board=URL)`: the node's endpoints read the board there, and the next
    node started on it finds what the last one left."""
    from fastapi.testclient import TestClient

    from mercat.ledger import IntegerRule, Ledger, LedgerConfig
    from mercat.node.app import create_app

    ledger_url = f"sqlite:///{tmp_path}/ledger.db"
    config = LedgerConfig(operator=Keypair.generate().public, rule=IntegerRule(1, 1, True))
    Ledger.init(ledger_url, config, durable=False).close()
    app = create_app(ledger_url, None, board=board_url)
    with TestClient(app) as client:
        app.state.board.set_round(1, "closed", charged=4)
        app.state.board.add_events([{"kind": "round_started", "round": 1}])
        assert client.get("/market/summary").json()["flows"]["charged"] == 4
    app = create_app(ledger_url, None, board=board_url)  # the node started again
    with TestClient(app) as client:
        events = client.get("/market/events/recent").json()
        assert [e["kind"] for e in events] == ["round_started"]
        assert client.get("/market/rounds").json()[0]["round"] == 1


# --- what could differ between backends -----------------------------------------------------


def test_pages_and_parts_follow_byte_order_on_every_backend(collated_url):
    board = TaskBoard(collated_url)
    keys = {name: Keypair.generate() for name in IDS}
    owner = Keypair.generate()
    for round_ in (1, 2):
        board.record_tasks(
            [task(round_, name, *((a, owner.public) for a in IDS)) for name in WIDE_IDS], 0
        )
    for name in IDS:  # every server claims, every oracle reports, on task "b" of round 1
        board.add_claim(claim(owner, 1, "b", name), 1)
        board.add_report(report(keys[name], 1, "b"), "pending", 1)
        board.add_report(report(keys[name], 1, "a-b"), "pending", 1)
    view = board.task(1, "b")
    assert view is not None
    assert [c["asset"] for c in view["claims"]] == sorted(IDS)
    assert view["reported_by"] == sorted(keys[name].public for name in IDS)
    assert [a["asset"] for a in view["assets"]] == IDS  # by position, as bound
    assert list(board.claims(1)["b"]) == sorted(IDS)
    assert list(board.reports(1)) == sorted(["b", "a-b"])
    assert [t.task for t in board.open_tasks_of(2)] == sorted(WIDE_IDS)

    newest = [(2, name) for name in sorted(WIDE_IDS)] + [(1, name) for name in sorted(WIDE_IDS)]
    for oldest, expected in ((False, newest), (True, sorted(newest))):
        assert [(v["round"], v["task"]) for v in board.tasks(oldest=oldest)] == expected
        pages, after = [], None
        while page := board.tasks(limit=4, oldest=oldest, after=after):
            pages.append([(v["round"], v["task"]) for v in page])
            after = (page[-1]["round"], page[-1]["task"])
        assert [key for page in pages for key in page] == expected
        assert all(len(page) == 4 for page in pages[:-1])
    # a page of a view's parts, more tasks than one IN list
    assert [v["task"] for v in board.tasks(round_=1, assignee="a-b")] == sorted(WIDE_IDS)
    board.settle_tasks(1, {name: Verdict(True, True, True, 5, None) for name in WIDE_IDS})
    assert list(board.asset_stats()) == sorted(IDS)
    assert list(board.asset_stats(["a_b", "A", "nothing"])) == ["A", "a_b"]
    board.close()


def test_grants_of_a_task_come_by_server_in_byte_order(collated_url):
    board = TaskBoard(collated_url)
    bob, owner = Keypair.generate(), Keypair.generate()
    servers = ["a_b", "a-b", "A", "aB"]
    board.record_tasks([task(1, "t1", *((s, owner.public) for s in servers))], 0)
    view = board.task(1, "t1")
    for server in servers:
        board.add_grant(grant_for(bob, LEDGER, view, server, frozenset({"output"})), 3)
    assert [g["asset"] for g in board.grants(1, "t1")] == sorted(servers)
    assert [g["asset"] for g in board.grants(1, "t1", "a-b")] == ["a-b"]
    assert board.grants(1, "t1", "zz") == [] and board.grants(2, "t1") == []
    assert board.task(1, "t1")["granted"] == sorted(servers)
    board.close()


def _summed(board: TaskBoard) -> tuple[int, dict[str, int]]:
    """The totals the slow way: every round record read and added up."""
    records = board.rounds(limit=1_000_000)
    return len(records), {key: sum(int(r.get(key) or 0) for r in records) for key in FLOWS}


def test_the_totals_row_follows_many_rounds_written_and_rewritten(board_url):
    board = TaskBoard(board_url)
    draw = random.Random(7)
    for round_ in range(1, 301):
        board.set_round(round_, "opening")
        flows = {key: draw.randrange(0, 10**12) for key in draw.sample(FLOWS, 3)}
        board.set_round(round_, draw.choice(["closed", "empty", "attesting"]), **flows)
        if round_ % 7 == 0:  # the backlog settles an older round's tasks
            older = draw.randrange(1, round_ + 1)
            board.set_round(older, "closed", **{draw.choice(FLOWS): draw.randrange(10**15)})
    assert board.round_totals() == _summed(board)
    assert board.round_totals()[0] == 300
    assert board.last_round() == 300
    assert board.unfinished_rounds() == [r["round"] for r in reversed(board.rounds(1000))
                                         if r["phase"] == "attesting"]  # fmt: skip
    assert [r["round"] for r in board.rounds(limit=3, before=100)] == [99, 98, 97]
    board.close()
    assert TaskBoard(board_url).round_totals() == _summed(board)


def test_round_totals_follow_rounds_updated_after_they_closed(board_url):
    """The round loop adds the flows of tasks the backlog settles to rounds already closed
    (`_update_counts`); the kept totals move with them, and survive the board's closing."""
    from types import SimpleNamespace

    from mercat.node.round_loop import RoundLoop
    from mercat.runtime.money import TaskSettlement

    board = TaskBoard(board_url)
    assert board.round_totals() == _summed(board) == (0, dict.fromkeys(FLOWS, 0))
    board.set_round(1, "opening")
    board.set_round(1, "closed", charged=10, payouts=7, margin=3, refunded=0, paid=1)
    board.set_round(2, "opening")
    board.set_round(2, "empty")
    board.set_round(3, "opening")
    board.set_round(3, "closed", charged=5, payouts=5, margin=0, refunded=2, rewards=1)
    assert board.round_totals() == _summed(board)
    late = [
        TaskSettlement(1, "t9", "r9", True, 40, {"k": 30}, 10, (), 0),
        TaskSettlement(1, "t8", "r8", False, 25, {}, 0, (), 25),
    ]
    RoundLoop._update_counts(SimpleNamespace(board=board), 1, late)  # type: ignore[arg-type]
    board.set_round(3, "closed", penalties=4)  # a field set again, not added to
    board.set_round(3, "closed", penalties=3)
    count, flows = board.round_totals()
    assert (count, flows) == _summed(board)
    assert count == 3 and flows["charged"] == 55 and flows["refunded"] == 27
    assert flows["penalties"] == 3
    board.close()
    assert TaskBoard(board_url).round_totals() == (count, flows)


def test_a_board_written_before_the_totals_were_kept_sums_its_rounds_once(board_url):
    board = TaskBoard(board_url)
    for r in range(1, 6):
        board.set_round(r, "closed", charged=r, rewards=2 * r)
    board.close()
    engine = create_engine(board_url)
    with engine.begin() as connection:  # the board as an older node left it
        connection.execute(text("DROP TABLE round_totals"))
    engine.dispose()
    board = TaskBoard(board_url)
    assert board.round_totals() == _summed(board)
    assert board.round_totals()[1]["charged"] == 15
    board.set_round(6, "closed", charged=6)
    assert board.round_totals() == _summed(board)
    board.close()


def test_events_are_trimmed_to_the_newest_and_their_ids_never_come_back(board_url, monkeypatch):
    monkeypatch.setattr("mercat.node.board.MAX_EVENTS", 300)
    board = TaskBoard(board_url)
    for k in range(1, 1006):  # one at a time, as the endpoints log them, past id 1000
        board.add_events([{"kind": "claim_received", "n": k}])
    assert board.last_event() == 1005
    ids = [e["id"] for e in board.events(limit=10_000)]
    assert ids == list(range(1000 - 300 + 1, 1006))  # trimmed when id 1000 was written
    draw, written = random.Random(3), 1005
    while written < 2500:  # then in batches, as rounds flush them
        batch = draw.randrange(1, 40)
        board.add_events([{"kind": "stage", "n": written + k} for k in range(1, batch + 1)])
        written += batch
    events = board.events(limit=10_000)
    ids = [e["id"] for e in events]
    assert ids == list(range(ids[0], written + 1)) and [e["n"] for e in events] == ids
    assert 300 <= len(ids) < 300 + 1000 and ids[0] > 1001  # trimmed again past 2000
    assert board.events(after=written - 2, limit=1) == [events[-2]]
    board.close()
    board = TaskBoard(board_url)
    board.add_events([{"kind": "after_restart"}])
    assert board.last_event() == written + 1  # ids are never given twice
    board.close()


def test_writers_in_two_threads_lose_nothing_and_wake_the_waiters(board_url):
    board = TaskBoard(board_url)
    owner = Keypair.generate()
    tasks = [f"t{k}" for k in range(60)]
    board.record_tasks([task(1, name, ("s1", owner.public), ("s2", owner.public))
                        for name in tasks], 0)  # fmt: skip
    version = board.version
    signed = {asset: [claim(owner, 1, name, asset) for name in tasks] for asset in ("s1", "s2")}
    errors: list[BaseException] = []
    views: list[int] = []

    def write(asset: str, first_round: int) -> None:
        try:
            for k, one in enumerate(signed[asset]):
                board.add_claim(one, k)
                board.add_events([{"kind": "claim_received", "asset": asset, "k": k}])
                board.set_round(first_round + k, "closed", charged=1)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    def read(stop: threading.Event) -> None:
        while True:  # one pass at least, however the threads are scheduled
            for view in board.tasks(round_=1, limit=1000):
                views.append(len(view["claims"]))
            if stop.is_set():
                break

    stop = threading.Event()
    reader = threading.Thread(target=read, args=(stop,))
    writers = [threading.Thread(target=write, args=(a, r)) for a, r in (("s1", 100), ("s2", 200))]
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reader.join()
    assert errors == []
    assert {t: sorted(a) for t, a in board.claims(1).items()} == {t: ["s1", "s2"] for t in tasks}
    ids = [e["id"] for e in board.events(limit=1000)]
    assert ids == list(range(1, 121))
    assert board.round_totals() == _summed(board) == (120, {**dict.fromkeys(FLOWS, 0),
                                                            "charged": 120})  # fmt: skip
    assert board.version == version + 3 * 120  # every write woke the waiters
    assert views and set(views) <= {0, 1, 2}
    board.close()


def test_two_boards_on_one_database_write_side_by_side(board_url):
    """Two nodes' worth of writers on the same database (each its own engine): on SQLite
    they queue for the file's write lock, on PostgreSQL for the totals' row."""
    first, second = TaskBoard(board_url), TaskBoard(board_url)
    owner = Keypair.generate()
    first.record_tasks([task(1, f"t{k}", ("s1", owner.public), ("s2", owner.public))
                        for k in range(40)], 0)  # fmt: skip
    errors: list[BaseException] = []

    def write(board: TaskBoard, asset: str, first_round: int) -> None:
        try:
            for k in range(40):
                board.add_claim(claim(owner, 1, f"t{k}", asset), k)
                board.set_round(first_round + k, "closed", payouts=2)
                board.add_events([{"kind": "x"}, {"kind": "y"}])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(b, a, r))
               for b, a, r in ((first, "s1", 100), (second, "s2", 200))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for board in (first, second):
        assert sum(len(a) for a in board.claims(1).values()) == 80
        assert board.round_totals() == (80, {**dict.fromkeys(FLOWS, 0), "payouts": 160})
        assert [e["id"] for e in board.events(limit=1000)] == list(range(1, 161))
        board.close()


def test_a_second_claim_report_or_grant_is_refused_and_changes_nothing(board_url):
    board = TaskBoard(board_url)
    a_market(board)
    alice = Keypair.generate()
    board.record_tasks([task(3, "t1", ("gpu-1", alice.public))], 0)
    board.add_claim(claim(alice, 3, "t1", "gpu-1"), 1)
    oracle = Keypair.generate()
    board.add_report(report(oracle, 3, "t1"), "pending", 1)
    view = board.task(3, "t1")
    bob = Keypair.generate()
    board.add_grant(grant_for(bob, LEDGER, view, "gpu-1", frozenset({"inputs"})), 1)
    before, version = everything(board), board.version
    with pytest.raises(AlreadyExistsError, match="already has a claim"):
        board.add_claim(claim(alice, 3, "t1", "gpu-1", success=True), 2)
    with pytest.raises(AlreadyExistsError, match="already reported"):
        board.add_report(report(oracle, 3, "t1"), "late", 2)
    with pytest.raises(AlreadyExistsError, match="has its keys"):
        board.add_grant(grant_for(bob, LEDGER, view, "gpu-1", frozenset({"output"})), 2)
    assert everything(board) == before and board.version == version
    view = board.task(3, "t1")
    board.record_tasks([task(3, "t1", ("gpu-1", alice.public))], 99)  # there already: kept
    assert board.task(3, "t1") == view and view["opened_ms"] == 0
    board.close()


def test_the_statistics_of_a_page_of_assets_are_those_of_all_assets_for_it(board_url):
    board = TaskBoard(board_url)
    assets = [f"asset-{k}" for k in range(1900)]  # more than one IN list (IN_LIST)
    tasks = [
        BoardTask(1, f"t{k}", "r", None, "w", (), 0, 10,
                  (BoundAsset(assets[k % len(assets)], "o", "server", 1),
                   BoundAsset(assets[(7 * k) % len(assets)], "o", "server", 1)))
        for k in range(3000)
    ]  # fmt: skip
    board.record_tasks(tasks, opened_ms=0)
    board.settle_tasks(
        1, {f"t{k}": Verdict(k % 3 > 0, k % 5 > 0, k % 3 > 0 and k % 5 > 0, 5, None)
            for k in range(0, 3000, 2)},
    )  # fmt: skip
    everything_ = board.asset_stats()
    page = [*assets[::2], "not-an-asset"]
    assert board.asset_stats(page) == {a: s for a, s in everything_.items() if a in page}
    assert board.asset_stats([]) == {}
    # every (task, asset) once: a task binding one asset twice counts it once
    bound = sum(len({a.asset for a in t.assets}) for t in tasks[::2])
    assert sum(s["settled"] for s in everything_.values()) == bound
    counts = board.task_counts()
    assert counts["open"] == 1500 and counts["settled"] == 1500
    assert counts["paid"] == sum(1 for k in range(0, 3000, 2) if k % 3 and k % 5)
    assert len(board.tasks(limit=5000)) == 3000  # a page of more tasks than one IN list
    board.close()


# --- a board file written before the board ran on SQLAlchemy --------------------------------

# The schema of the raw-sqlite3 board (mercat.node.board before it ran on SQLAlchemy), as
# it created it; boards with sealed requests then got `sealed` by ALTER TABLE.
RAW_SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY, phase TEXT NOT NULL, started_ms INTEGER, finished_ms INTEGER,
    record TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS round_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1), rounds INTEGER NOT NULL,
    charged INTEGER NOT NULL, payouts INTEGER NOT NULL, margin INTEGER NOT NULL,
    refunded INTEGER NOT NULL, rewards INTEGER NOT NULL, penalties INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    round INTEGER NOT NULL, task TEXT NOT NULL, request TEXT NOT NULL, requester TEXT,
    workload TEXT NOT NULL, inputs TEXT NOT NULL, deadline_ms INTEGER NOT NULL,
    charge INTEGER NOT NULL, opened_ms INTEGER NOT NULL, status TEXT NOT NULL,
    success INTEGER, sla_met INTEGER, paid INTEGER, latency_ms INTEGER, output TEXT,
    settled_ms INTEGER, note TEXT, PRIMARY KEY (round, task)
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE INDEX IF NOT EXISTS tasks_requester ON tasks (requester);
CREATE INDEX IF NOT EXISTS tasks_request ON tasks (request);
CREATE TABLE IF NOT EXISTS task_assets (
    round INTEGER NOT NULL, task TEXT NOT NULL, position INTEGER NOT NULL, asset TEXT NOT NULL,
    owner TEXT NOT NULL, kind TEXT NOT NULL, payout INTEGER NOT NULL,
    PRIMARY KEY (round, task, asset)
);
CREATE INDEX IF NOT EXISTS task_assets_asset ON task_assets (asset);
CREATE INDEX IF NOT EXISTS task_assets_owner ON task_assets (owner);
CREATE TABLE IF NOT EXISTS claims (
    round INTEGER NOT NULL, task TEXT NOT NULL, asset TEXT NOT NULL, owner TEXT NOT NULL,
    success INTEGER NOT NULL, output TEXT, run_ms INTEGER NOT NULL, error TEXT NOT NULL,
    signature TEXT NOT NULL, received_ms INTEGER NOT NULL, PRIMARY KEY (round, task, asset)
);
CREATE TABLE IF NOT EXISTS reports (
    round INTEGER NOT NULL, task TEXT NOT NULL, oracle TEXT NOT NULL, wire TEXT NOT NULL,
    status TEXT NOT NULL, received_ms INTEGER NOT NULL, PRIMARY KEY (round, task, oracle)
);
CREATE TABLE IF NOT EXISTS key_grants (
    round INTEGER NOT NULL, task TEXT NOT NULL, asset TEXT NOT NULL, wire TEXT NOT NULL,
    received_ms INTEGER NOT NULL, PRIMARY KEY (round, task, asset)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,
    round INTEGER, body TEXT NOT NULL
);
"""


@pytest.mark.parametrize("sealed_column", [True, False], ids=["sealed", "before-sealed"])
def test_a_board_file_written_by_the_raw_sqlite_board_opens_and_works(tmp_path, sealed_column):
    alice, oracle, bob = Keypair.generate(), Keypair.generate(), Keypair.generate()
    signed = claim(alice, 1, "t1", "gpu-1", success=True)
    wire = report(oracle, 1, "t1").to_wire()
    # as the node wrote it, statement by statement (closing: sqlite3's `with` only commits)
    with contextlib.closing(sqlite3.connect(tmp_path / "board.db")) as db, db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(RAW_SCHEMA)
        if sealed_column:
            db.execute("ALTER TABLE tasks ADD COLUMN sealed TEXT NOT NULL DEFAULT ''")
        db.execute(
            "INSERT INTO rounds (round, phase, started_ms, record) VALUES (1, 'closed', 5, ?)",
            (json.dumps({"charged": 10, "payouts": 8, "tasks": 2}),),
        )
        db.execute("UPDATE rounds SET finished_ms = 9")
        db.execute("INSERT INTO round_totals VALUES (1, 1, 10, 8, 0, 0, 0, 0)")
        for name, status in (("t1", "settled"), ("t2", "open")):
            db.execute(
                "INSERT INTO tasks (round, task, request, requester, workload, inputs, "
                "deadline_ms, charge, opened_ms, status) "
                "VALUES (1, ?, 'q', ?, 'w', ?, 900, 10, 5, ?)",
                (name, bob.public, json.dumps(["bafyin"]), status),
            )
            db.executemany(
                "INSERT INTO task_assets VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (1, name, 0, "gpu-1", alice.public, "server", 4),
                    (1, name, 1, "model-1", bob.public, "model", 2),
                ],
            )
        db.execute(
            "UPDATE tasks SET status='settled', success=?, sla_met=?, paid=?, "
            "latency_ms=?, output=?, settled_ms=? WHERE round=1 AND task='t1'",
            (True, False, True, 70, "bafyout", 8),
        )
        db.execute("UPDATE tasks SET note=? WHERE round=1 AND task='t2'", ("no claim",))
        c = signed.claim
        db.execute(
            "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                c.round,
                c.task,
                c.asset,
                signed.owner,
                c.success,
                c.output,
                c.run_ms,
                c.error,
                signed.signature.hex(),
                7,
            ),
        )
        db.execute(
            "INSERT INTO reports VALUES (1, 't1', ?, ?, 'settled', 8)",
            (oracle.public, json.dumps(wire)),
        )
        db.execute(
            "INSERT INTO key_grants VALUES (1, 't1', 'gpu-1', ?, 6)", ('{"asset": "gpu-1"}',)
        )
        db.executemany(
            "INSERT INTO events (at_ms, kind, round, body) VALUES (?, ?, ?, ?)",
            [
                (5, "round_started", 1, json.dumps({"kind": "round_started", "round": 1})),
                (6, "stage", 1, json.dumps({"kind": "stage", "round": 1})),
            ],
        )
    board = TaskBoard(tmp_path / "board.db")
    done = board.task(1, "t1")
    assert done is not None
    assert done["verdict"] == {
        "success": True,
        "sla_met": False,
        "paid": True,
        "latency_ms": 70,
        "output": "bafyout",
    }
    assert done["assets"] == [
        {"asset": "gpu-1", "owner": alice.public, "kind": "server", "payout": 4},
        {"asset": "model-1", "owner": bob.public, "kind": "model", "payout": 2},
    ]
    assert done["claims"] == [
        {
            "asset": "gpu-1",
            "owner": alice.public,
            "success": True,
            "output": "bafyout",
            "run_ms": 0,
            "error": "",
            "received_ms": 7,
        }
    ]
    assert done["claims"][0]["success"] is True  # a boolean, not SQLite's 1, in the JSON
    assert done["reported_by"] == [oracle.public] and done["granted"] == ["gpu-1"]
    assert done["inputs"] == ["bafyin"] and done["sealed"] == []
    assert board.task(1, "t2")["note"] == "no claim"
    assert board.claims(1) == {"t1": {"gpu-1": (True, "bafyout", 7)}}
    assert [r.to_wire() for r in board.reports(1, "settled")["t1"]] == [wire]
    assert board.grants(1, "t1") == [{"asset": "gpu-1"}]
    assert board.open_rounds() == [1]
    assert [t.task for t in board.open_tasks_of(1)] == ["t2"]
    assert board.rounds() == [
        {
            "round": 1,
            "phase": "closed",
            "started_ms": 5,
            "finished_ms": 9,
            "charged": 10,
            "payouts": 8,
            "tasks": 2,
        }
    ]
    assert board.round_totals() == (1, {**dict.fromkeys(FLOWS, 0), "charged": 10, "payouts": 8})
    assert board.task_counts() == {"open": 1, "settled": 1, "paid": 1, "sla_met": 0}
    assert board.asset_stats() == {
        "gpu-1": {"settled": 1, "failed": 0, "late": 1},
        "model-1": {"settled": 1, "failed": 0, "late": 1},
    }
    assert [e["kind"] for e in board.events()] == ["round_started", "stage"]
    # and it goes on
    with pytest.raises(AlreadyExistsError):
        board.add_claim(signed, 9)
    board.add_events([{"kind": "claim_received"}])
    assert board.last_event() == 3
    board.set_round(2, "closed", charged=5)
    assert board.round_totals()[1]["charged"] == 15
    sealed = BoardTask(2, "t3", "q", None, "w", (), 0, 1, (), sealed=("inputs",))
    board.record_tasks([sealed], 1)
    assert board.task(2, "t3")["sealed"] == ["inputs"]
    board.close()
