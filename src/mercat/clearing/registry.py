"""The explicit registry of clearing mechanisms: `mercat clear --mechanism NAME` reads it.

To add a mechanism: import its class here and append it to `MECHANISMS`, document it under
its own heading (`## name`) in docs/mechanisms.md, and give its test class the contract
(tests/clearing/contract.py). tests/clearing/test_registry.py checks that every member is
registered once, documented, uniquely named and has a docstring.
"""

from __future__ import annotations

from typing import Any

from mercat.clearing.base import Mechanism
from mercat.clearing.double_auction import DoubleAuction
from mercat.clearing.optimal import OptimalMechanism
from mercat.clearing.posted_price import PostedPrice
from mercat.clearing.vcg import VCGMechanism
from mercat.errors import UnknownNameError

MECHANISMS: tuple[type[Mechanism], ...] = (
    OptimalMechanism,
    DoubleAuction,
    VCGMechanism,
    PostedPrice,
)


def mechanisms() -> dict[str, type[Mechanism]]:
    """Every registered mechanism class by name, in registration order."""
    return {m.name: m for m in MECHANISMS}


def names() -> list[str]:
    return [m.name for m in MECHANISMS]


def get(name: str) -> type[Mechanism]:
    """The mechanism class called `name`; `UnknownNameError` lists the known ones."""
    for m in MECHANISMS:
        if m.name == name:
            return m
    raise UnknownNameError("mechanism", name, names())


def create(name: str, **options: Any) -> Mechanism:
    """An instance of the mechanism called `name`, built with its options."""
    return get(name)(**options)
