"""The task board outlives its node app's lifespan: an app shut down and started again (its
lifespan closes the board, as it closes the ledger) finds the board's file as it left it."""

from __future__ import annotations

from mercat.node.board import BoardTask, BoundAsset, TaskBoard, Verdict


def test_a_closed_board_opens_again_with_what_it_held(tmp_path):
    board = TaskBoard(tmp_path / "board.db")
    board.set_round(1, "executing")
    board.close()
    board.close()  # twice is harmless
    assert board.last_round() == 1
    board.set_round(2, "opening")
    assert board.last_round() == 2
    board.close()


def test_a_board_in_memory_starts_empty_again():
    board = TaskBoard()
    board.set_round(3, "executing")
    board.close()
    assert board.last_round() == 0
    board.close()


def _summed(board: TaskBoard) -> tuple[int, dict[str, int]]:
    """The totals the slow way: every round record read and added up."""
    from mercat.node.board import FLOWS

    records = board.rounds(limit=1_000_000)
    return len(records), {key: sum(int(r.get(key) or 0) for r in records) for key in FLOWS}


def test_round_totals_follow_rounds_updated_after_they_closed(tmp_path):
    """The round loop adds the flows of tasks the backlog settles to rounds already closed
    (`_update_counts`); the kept totals move with them, and survive the board's closing."""
    from types import SimpleNamespace

    from mercat.node.round_loop import RoundLoop
    from mercat.runtime.money import TaskSettlement

    board = TaskBoard(tmp_path / "board.db")
    assert board.round_totals() == _summed(board) == (0, dict.fromkeys(_summed(board)[1], 0))
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
    assert TaskBoard(tmp_path / "board.db").round_totals() == (count, flows)


def test_a_board_written_before_the_totals_were_kept_sums_its_rounds_once(tmp_path):
    import sqlite3

    board = TaskBoard(tmp_path / "board.db")
    for r in range(1, 6):
        board.set_round(r, "closed", charged=r, rewards=2 * r)
    board.close()
    with sqlite3.connect(tmp_path / "board.db") as db:  # the board as an older node left it
        db.execute("DROP TABLE round_totals")
    board = TaskBoard(tmp_path / "board.db")
    assert board.round_totals() == _summed(board)
    assert board.round_totals()[1]["charged"] == 15
    board.set_round(6, "closed", charged=6)
    assert board.round_totals() == _summed(board)
    board.close()


def test_the_statistics_of_a_page_of_assets_are_those_of_all_assets_for_it():
    board = TaskBoard()
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
    everything = board.asset_stats()
    page = [*assets[::2], "not-an-asset"]
    assert board.asset_stats(page) == {a: s for a, s in everything.items() if a in page}
    assert board.asset_stats([]) == {}
    # every (task, asset) once: a task binding one asset twice counts it once
    bound = sum(len({a.asset for a in t.assets}) for t in tasks[::2])
    assert sum(s["settled"] for s in everything.values()) == bound
