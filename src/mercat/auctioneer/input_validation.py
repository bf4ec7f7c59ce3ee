"""Input validation (seed 003, Property 3): the allocator runs only if every provider has the
same input.

(1) Two providers that follow the protocol with different inputs both output ⊥; (2) with
the same input b, all output b; (3) k-resiliency for solution preference (m > k).

The seed's implementation: every provider broadcasts its input and outputs ⊥ when two
differ. We broadcast a SHA-256 digest of the input (the agreed bid vector with the protocol
parameters) instead of the vector itself: equal digests mean equal inputs (up to a hash
collision), and the message stays 32 bytes whatever the number of bids. A provider outputs
its input only after it holds a digest from every provider and all equal its own; one that
is missing at the deadline is ⊥ as well (a silent provider must not let the others go on
with inputs nobody checked).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from mercat.auctioneer.bids import BidVector
from mercat.errors import RoundAbortedError


def input_digest(bids: BidVector, params_digest: bytes) -> bytes:
    """What a provider broadcasts: H(parameters, agreed bid vector)."""
    h = hashlib.sha256(b"mercat/allocator-input/1")
    h.update(params_digest)
    h.update(bids.digest())
    return h.digest()


def check(own: bytes, received: Mapping[str, bytes], providers: Sequence[str]) -> None:
    """Return if every provider sent `own`; raise RoundAbortedError (⊥) otherwise."""
    missing = [p for p in providers if p not in received]
    if missing:
        raise RoundAbortedError(f"input validation: no digest from {', '.join(missing)}")
    different = [p for p in providers if received[p] != own]
    if different:
        raise RoundAbortedError(f"input validation: {', '.join(different)} hold another input")
