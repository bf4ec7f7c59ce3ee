"""The distributed auctioneer (seed 003): providers that together replace a trusted auctioneer.

The names most callers need; the modules hold the details (docs/auctioneer.md):

- `ProtocolParams`, `load_peers`: who runs the protocol, k, the mechanism, the timeouts;
- `Schedule`: when each round takes bids (the default opening rule, `opening.py`);
- `Bid`, `BidVector`: what bidders send; `Outcome`: what every provider outputs (or ⊥);
- `simulate_rounds`: m providers in one process (in-process transport, virtual clock);
- `LocalCluster`, `run_local`: providers as OS processes over ZeroMQ on this machine;
- `ProviderNode`, `BidderClient`: the two ends, for other deployments.
"""

import logging

from mercat.auctioneer.bids import Bid, BidVector
from mercat.auctioneer.client import BidderClient
from mercat.auctioneer.config import PeersFile, ProtocolParams, load_peers
from mercat.auctioneer.local import LocalCluster, run_local
from mercat.auctioneer.node import ProviderNode
from mercat.auctioneer.opening import Schedule
from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.simulation import simulate_rounds

# A library logs, the application decides where to: without a handler of its own, Python
# would print every dropped message of a simulation on stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Bid",
    "BidVector",
    "BidderClient",
    "LocalCluster",
    "Outcome",
    "PeersFile",
    "ProtocolParams",
    "ProviderNode",
    "Schedule",
    "load_peers",
    "run_local",
    "simulate_rounds",
]
