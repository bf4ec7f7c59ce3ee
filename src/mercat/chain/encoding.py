"""How mercat's names, offers, request terms and tasks become the market contract's arguments.

- An id (asset, request, task, CID) is the uint256 of keccak256 of its name's bytes, and a
  resource or capability name is its keccak256 (bytes32): the contract compares and keys by
  them and never needs the strings; the names travel in the facade and the events carry
  the hashes.
- An offer or a request's terms goes on chain as the fields the contract checks, plus
  `digest`, keccak256 of the owner's canonical JSON (`mercat.identity.canonical_bytes` of
  `to_wire()`, the same bytes the SQL ledger stores and signs): whatever the contract does
  not check (a request's inputs, workload and deadline) is bound by it, so anyone holding
  the JSON can check it against the chain.
- A task's terms are the contract's `Task` struct; the contract stores their keccak256 when
  the task opens and settles a task only on the same terms.
"""

from __future__ import annotations

from typing import Any

from eth_utils import keccak

from mercat.identity import canonical_bytes
from mercat.runtime.terms import ASSET_KINDS, Offer, RequestTerms, TaskTerms

#: Asset kinds as the contract numbers them (0: not offered yet).
KIND_CODES: dict[str, int] = {kind: i + 1 for i, kind in enumerate(ASSET_KINDS)}
MARGIN_CODES: dict[str, int] = {"operator": 0, "pool": 1}


def name_hash(name: str) -> bytes:
    """keccak256 of a name's UTF-8 bytes: how the contract knows a resource or capability."""
    return keccak(text=name)


def chain_id(name: str) -> int:
    """The contract's id of an asset, request, task or CID: keccak256 of its name, as uint256."""
    return int.from_bytes(keccak(text=name), "big")


def digest(wire: dict[str, Any]) -> bytes:
    """keccak256 of the canonical JSON of an owner's terms (`to_wire()`)."""
    return keccak(canonical_bytes(wire))


def _amounts(pairs: tuple[tuple[str, int], ...]) -> list[tuple[bytes, int]]:
    return sorted((name_hash(name), amount) for name, amount in pairs)


def _labels(names: frozenset[str]) -> list[bytes]:
    return sorted(name_hash(name) for name in names)


def offer_struct(offer: Offer) -> tuple[Any, ...]:
    """The contract's `Offer` for an owner's offer."""
    return (
        KIND_CODES[offer.kind],
        offer.cost,
        _amounts(offer.capacity),
        _amounts(offer.unit_costs),
        _labels(offer.capabilities),
        0 if offer.cid is None else chain_id(offer.cid),
        digest(offer.to_wire()),
    )


def terms_struct(terms: RequestTerms) -> tuple[Any, ...]:
    """The contract's `Terms` for a request's terms."""
    return (
        chain_id(terms.request),
        terms.max_price,
        _amounts(terms.demand),
        terms.replicas,
        _labels(terms.capabilities),
        sorted(chain_id(reference) for reference in terms.assets),
        terms.expires,
        digest(terms.to_wire()),
    )


def task_struct(task: TaskTerms) -> tuple[Any, ...]:
    """The contract's `Task` for a task's terms (assets in the task's order)."""
    return (
        chain_id(task.task),
        chain_id(task.request),
        [chain_id(asset) for asset in task.assets],
        list(task.payouts),
        task.charge,
        task.fraction,
    )


def result_digest(result: str | None) -> bytes:
    """A task result's digest as the quorum compares it (32 zero bytes: none)."""
    return bytes(32) if result is None else keccak(text=result)
