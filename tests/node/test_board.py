"""The task board outlives its node app's lifespan: an app shut down and started again (its
lifespan closes the board, as it closes the ledger) finds the board's file as it left it."""

from __future__ import annotations

from mercat.node.board import TaskBoard


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
