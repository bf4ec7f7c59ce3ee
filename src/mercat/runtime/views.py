"""Sub-markets within one round: what `RoundPlan.view` can show a second clearing.

A round may clear several sub-markets one after the other (say, premium requests on the
reliable servers first, then every other request on whatever is left). Each is a `run_round`
call with the same round number and its own `view`; the book checks every task against the
owners' terms and the capacity the round's earlier tasks already took, so a later clearing
must see only what is left. `capacity_left` narrows each server's offered capacity to that
remainder (and leaves out servers with nothing left), so its clearing never plans work the
book would refuse.

Capacity left is rounded down to whole resource units: a task's `fraction` can take part of
a unit (Σ demand·fraction is kept in parts per billion), and a clearing works in whole
offered units.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from mercat.runtime.records import Usage
from mercat.runtime.snapshot import AssetView, BookState
from mercat.runtime.terms import PPB, Offer, astuple_shallow


def capacity_left(state: BookState, used: Mapping[str, Usage]) -> BookState:
    """`state` with each server's capacity reduced by what `used` (this round's usage by
    asset, as the book records it) already takes; a resource with nothing left is no longer
    offered, and a server with nothing left at all is dropped.
    Servers the round has not used keep their view (so the snapshot's cache still applies)."""
    if not used:
        return state
    assets = []
    for view in state.assets:
        usage = used.get(view.asset)
        if usage is None or not view.offer.is_server:
            assets.append(view)
            continue
        offer = view.offer
        left = tuple(
            (resource, rest)
            for resource, amount in offer.capacity
            if (rest := amount - -(-usage.units.get(resource, 0) // PPB)) > 0
        )
        if not left:
            continue
        assets.append(AssetView(view.asset, view.owner, view.stake, _with_capacity(offer, left)))
    return BookState(state.round, state.unit, tuple(assets), state.requests)


def _with_capacity(offer: Offer, capacity: tuple[tuple[str, int], ...]) -> Offer:
    """`offer` with a smaller capacity. Built without re-validating: the capacity only
    shrinks and stays positive, so the offer stays valid (a validating copy costs as much
    as clearing a hundred-server round)."""
    narrowed = copy.copy(offer)
    object.__setattr__(narrowed, "capacity", capacity)
    object.__setattr__(narrowed, "_hash", hash(astuple_shallow(narrowed)))
    return narrowed
