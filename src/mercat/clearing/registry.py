"""The registry of clearing mechanisms: `mercat clear --mechanism NAME` reads it.

`MECHANISMS` lists mercat's own, explicitly. To add one to mercat: import its class here and
append it to `MECHANISMS`, document it under its own heading (`## name`) in
docs/mechanisms.md, and give its test class the contract (`mercat.testing.contract`).
tests/clearing/test_registry.py checks that every member is registered once, documented,
uniquely named and has a docstring.

A mechanism outside mercat is a plug-in (docs/workbench.md): an entry point in the group
`mercat.mechanisms`, a `register(MyMechanism)` call, or `--mechanism mypkg.mod:MyMechanism`.
"""

from __future__ import annotations

from mercat.auctioneer.mechanism import DistributedAuction
from mercat.clearing.base import Mechanism
from mercat.clearing.collective import CollectiveSelection
from mercat.clearing.double_auction import DoubleAuction
from mercat.clearing.optimal import OptimalMechanism
from mercat.clearing.posted_price.mechanism import PostedPrice
from mercat.clearing.vcg.mechanism import VCGMechanism
from mercat.plugins import GROUPS
from mercat.registry import ClassRegistry

MECHANISMS: tuple[type[Mechanism], ...] = (
    OptimalMechanism,
    DoubleAuction,
    VCGMechanism,
    PostedPrice,
    CollectiveSelection,
    DistributedAuction,
)


REGISTRY = ClassRegistry("mechanism", MECHANISMS, group=GROUPS["mechanism"], base=Mechanism)
mechanisms = REGISTRY.by_name
names = REGISTRY.names
get = REGISTRY.get
resolve = REGISTRY.resolve
create = REGISTRY.create
register = REGISTRY.register
unregister = REGISTRY.unregister
