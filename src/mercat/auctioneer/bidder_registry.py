"""The peers file's `[bidders]` table derived from a ledger's accounts.

The table binds each bidder label to the one client key that may bid under it (see
docs/auctioneer.md, "Bidder identities"). On a market that keeps its accounts in a ledger
(`mercat.ledger`), who may bid as what is already written there:

- a request's id is a buyer label, bound to the request's owner (the key that escrowed for
  it): only the owner can buy for its request;
- an active asset's id is a seller label, bound to the asset's owner (the key that staked
  it): only the owner can offer its asset's capacity. Removed assets are left out, so an
  asset the collective rule took off the market cannot sell here either.

Ledger ids (1-64 of [A-Za-z0-9_.-]) are valid bidder labels as they are. An id that names
both a request and an asset of different owners is ambiguous and refused; the same owner
for both is one entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from mercat.auctioneer.config import PeersFile
from mercat.errors import AuctioneerConfigError


def bidders_from_accounts(
    requests: Iterable[tuple[str, str]], assets: Iterable[tuple[str, str, str]]
) -> tuple[tuple[str, str], ...]:
    """(label, client key) pairs, sorted by label, from (request id, owner) and
    (asset id, owner, status) rows; only active assets take part."""
    table: dict[str, str] = dict(requests)
    for asset, owner, status in assets:
        if status != "active":
            continue
        held = table.get(asset)
        if held is not None and held != owner:
            raise AuctioneerConfigError(
                f"ledger id {asset!r} is a request of {held[:16]}… and an asset of "
                f"{owner[:16]}…: one bidder label cannot belong to two keys"
            )
        table[asset] = owner
    return tuple(sorted(table.items()))


def bidders_from_ledger(url: str) -> tuple[tuple[str, str], ...]:
    """The `[bidders]` table of the ledger at `url` (read only): its requests that are not
    closed (a served or withdrawn request bids no more) and its active assets."""
    from mercat.ledger import Ledger

    with Ledger(url) as ledger:
        requests = [(r.request, r.owner) for r in ledger.request_records() if r.status != "closed"]
        return bidders_from_accounts(requests, ((a.id, a.owner, a.status) for a in ledger.assets()))


def with_bidders(peers: PeersFile, bidders: tuple[tuple[str, str], ...]) -> PeersFile:
    """The peers file with its `[bidders]` table replaced (an empty table: anyone may bid
    under any label, which a ledger with no requests or assets would silently mean, so it is
    refused)."""
    if not bidders:
        raise AuctioneerConfigError(
            "the ledger has no requests and no active assets: a [bidders] table from it "
            "would be empty, which means no registry at all"
        )
    return replace(peers, bidders=tuple(bidders))
