"""What a chain backend does: deploy code, send transactions, make calls, hand out accounts.

Backends move raw bytes only (calldata in, return data and logs out); ABI encoding and
decoding live in `mercat.chain.contracts`, so every backend runs the same calls. Two
implementations: `BoaBackend` (titanoboa's in-process EVM, the default: nothing to start)
and `Web3Backend` (web3.py over eth-tester's py-evm in process, or over any EVM JSON-RPC
node such as ganache).

A call the contract reverts raises a `ContractRevertError` subclass (see
`mercat.chain.reverts`) and changes nothing: the in-process EVMs roll the transaction back,
and the web3 backend estimates gas first, so a reverting transaction is never sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: A raw log: emitting address, topics, data.
RawLog = tuple[str, tuple[bytes, ...], bytes]


@dataclass(frozen=True)
class Receipt:
    """The outcome of one accepted transaction.

    `gas_used` is the node's receipt figure (intrinsic 21,000 + calldata + execution, after
    refunds) where the backend has receipts (web3), None where it has not (boa, whose
    figure leaves out the intrinsic and calldata cost and so is not comparable).
    """

    logs: tuple[RawLog, ...]
    output: bytes
    gas_used: int | None


class ChainBackend(Protocol):
    """One EVM to run the contracts on."""

    #: "boa", "eth-tester" or "json-rpc".
    name: str

    def new_account(self) -> str:
        """A fresh address this backend can send transactions from (checksummed)."""
        ...

    def deploy(self, init_code: bytes, sender: str) -> tuple[str, Receipt]:
        """Create a contract; returns its address and the creation receipt."""
        ...

    def transact(self, to: str, data: bytes, sender: str) -> Receipt:
        """Send a state-changing call and wait for it to be mined."""
        ...

    def call(self, to: str, data: bytes) -> bytes:
        """Run a read-only call against the latest state."""
        ...

    def close(self) -> None:
        """Release what the backend holds (nothing for in-process EVMs)."""
        ...
