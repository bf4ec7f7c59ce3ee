"""The explicit registry of clearing mechanisms: `mercat clear --mechanism NAME` reads it.

To add a mechanism: import its class here and append it to `MECHANISMS`, document it under
its own heading (`## name`) in docs/mechanisms.md, and give its test class the contract
(tests/clearing/contract.py). tests/clearing/test_registry.py checks that every member is
registered once, documented, uniquely named and has a docstring.
"""

from __future__ import annotations

from mercat.auctioneer.mechanism import DistributedAuction
from mercat.clearing.base import Mechanism
from mercat.clearing.collective import CollectiveSelection
from mercat.clearing.double_auction import DoubleAuction
from mercat.clearing.optimal import OptimalMechanism
from mercat.clearing.posted_price.mechanism import PostedPrice
from mercat.clearing.vcg.mechanism import VCGMechanism
from mercat.registry import ClassRegistry

MECHANISMS: tuple[type[Mechanism], ...] = (
    OptimalMechanism,
    DoubleAuction,
    VCGMechanism,
    PostedPrice,
    CollectiveSelection,
    DistributedAuction,
)


REGISTRY = ClassRegistry("mechanism", MECHANISMS)
mechanisms = REGISTRY.by_name
names = REGISTRY.names
get = REGISTRY.get
create = REGISTRY.create
