"""The names of a book's balances (double entry: every token is in exactly one of them).

- `world`: the counterpart of deposits and withdrawals (minus the supply in circulation);
- `pool`: the collective reward pool (rewards out, penalties in; auction margins in);
- `avail:<account>`: an account's spendable balance;
- `unbond:<account>`: stake an account unstaked, waiting out the delay;
- `stake:<asset>`: an asset's stake;
- `escrow:<request>`: what a request escrowed and has not spent;
- `hold:<round>:<task>`: a task's price (and subsidy), held between opening and settlement.

The SQL ledger, the in-memory book and the reports all use these names, so two books can be
compared balance by balance.
"""

from __future__ import annotations

WORLD = "world"
POOL = "pool"


def avail(account: str) -> str:
    return f"avail:{account}"


def unbond(account: str) -> str:
    return f"unbond:{account}"


def stake_book(asset: str) -> str:
    return f"stake:{asset}"


def escrow_book(request: str) -> str:
    return f"escrow:{request}"


def hold_book(round_: int, task: str) -> str:
    return f"hold:{round_}:{task}"
