"""What the range check on every posting costs (`mercat.runtime.limits.check_postings`).

Every change of a book, on the SQL ledger and the in-memory book, goes through
`check_postings`: the postings sum to zero, no book but `world` goes negative, and every book
stays an exact integer below 2^62. The reference is the check it replaced (sum and
non-negativity only), timed side by side in the same process on the same postings: those of
one settled task on four assets (hold, payouts to four owners, the margin, four stakes, the
pool), the shape the in-memory book checks thousands of times per simulated round.

    python benchmarks/bench_postings.py [--repeats 200000]

Prints one JSON object. Times are per call, the best of 5 runs (the machine is shared:
compare the two numbers of one run, not runs with each other).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Mapping

from mercat.errors import InsufficientFundsError, LedgerIntegrityError
from mercat.runtime.accounts import WORLD
from mercat.runtime.limits import check_postings


def sign_and_funds_only(balance: Callable[[str], int], moves: Mapping[str, int]) -> None:
    """The check before balances had a range (the reference)."""
    if sum(moves.values()) != 0:
        raise LedgerIntegrityError(f"unbalanced postings {dict(moves)!r}")
    for book, amount in moves.items():
        if amount < 0 and book != WORLD and balance(book) + amount < 0:
            raise InsufficientFundsError(f"{book} holds {balance(book)}, cannot pay {-amount}")


def settlement_postings() -> tuple[dict[str, int], dict[str, int]]:
    """Balances and the postings of one paid task on four assets (reward 10 each)."""
    balances = {"hold:1:t": 400, "pool": 10_000, "avail:operator": 5_000}
    moves = {"hold:1:t": -400, "avail:operator": 40, "pool": -40}
    for i in range(4):
        balances[f"avail:owner{i}"] = 1_000
        balances[f"stake:gpu{i}"] = 990
        moves[f"avail:owner{i}"] = 90
        moves[f"stake:gpu{i}"] = 10
    return balances, moves


def per_call(check: Callable[..., None], balances: dict[str, int], moves: dict[str, int],
             repeats: int) -> float:  # fmt: skip
    balance = balances.__getitem__
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            check(balance, moves)
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200_000)
    args = parser.parse_args()
    balances, moves = settlement_postings()
    reference = per_call(sign_and_funds_only, balances, moves, args.repeats)
    checked = per_call(check_postings, balances, moves, args.repeats)
    print(
        json.dumps(
            {
                "postings_per_call": len(moves),
                "repeats": args.repeats,
                "reference_us": round(reference * 1e6, 3),
                "check_postings_us": round(checked * 1e6, 3),
                "ratio": round(checked / reference, 2),
                "python": platform.python_version(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
