"""web3.py as a chain backend: over eth-tester (py-evm, in process) or any JSON-RPC node.

Transactions are sent from the node's own unlocked accounts (`eth_sendTransaction`):
eth-tester and a development node such as ganache hold the keys of their funded accounts.
`new_account` hands them out in order; the first one is kept as the deployer.

Before sending, the backend runs the transaction as an `eth_call` on the latest state. One
that would revert fails there with the contract's reason, so it is reported as a
`ContractRevertError` and never mined: no nonce, no fee, no state change. It is then sent
with a fixed gas limit (`gas_limit`) rather than an estimate: py-evm estimates by binary
search, a dozen executions per transaction, which made eth-tester ten times slower; the
gas a transaction uses does not depend on its limit. Gas figures come from the receipts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address

from mercat.chain.backend import Receipt
from mercat.chain.reverts import revert_error
from mercat.errors import ChainUnavailableError, ContractRevertError

#: Gas limit of every transaction: above the largest here (opening or settling a full batch
#: of 64 tasks; deploying the market takes about 5 M) and below every block gas limit of the
#: nodes used (eth-tester 30 M, ganache 30 M).
DEFAULT_GAS_LIMIT = 25_000_000


def _web3():
    try:
        import web3
    except ImportError as exc:
        raise ChainUnavailableError(
            "web3 is missing; install mercat with the `chain` extra"
        ) from exc
    return web3


class Web3Backend:
    """Contracts on an EVM reached through web3.py."""

    def __init__(
        self, w3: Any, name: str, accounts: Sequence[str], gas_limit: int = DEFAULT_GAS_LIMIT
    ) -> None:
        self.w3 = w3
        self.name = name
        self.gas_limit = gas_limit
        self._accounts = [to_checksum_address(a) for a in accounts]
        self._next = 0
        if not self._accounts:
            raise ChainUnavailableError(f"the {name} node has no unlocked account to send from")

    @classmethod
    def eth_tester(cls, accounts: int = 20) -> Web3Backend:
        """A fresh py-evm chain in this process, with `accounts` funded accounts."""
        web3 = _web3()
        try:
            from eth_tester import EthereumTester, PyEVMBackend
        except ImportError as exc:
            raise ChainUnavailableError(
                "eth-tester is missing; install mercat with the `chain` extra"
            ) from exc
        genesis = PyEVMBackend.generate_genesis_state(num_accounts=accounts)
        tester = EthereumTester(PyEVMBackend(genesis_state=genesis))
        w3 = web3.Web3(web3.EthereumTesterProvider(tester))
        return cls(w3, "eth-tester", w3.eth.accounts)

    @classmethod
    def http(cls, url: str, timeout: float = 30.0) -> Web3Backend:
        """A JSON-RPC node at `url` (its unlocked accounts send the transactions)."""
        web3 = _web3()
        w3 = web3.Web3(web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
        try:
            accounts = w3.eth.accounts
        except Exception as exc:  # connection refused, not JSON-RPC, ...
            raise ChainUnavailableError(f"no JSON-RPC node answers at {url}: {exc}") from exc
        return cls(w3, "json-rpc", accounts)

    def new_account(self) -> str:
        if self._next >= len(self._accounts):
            raise ChainUnavailableError(
                f"all {len(self._accounts)} unlocked accounts of the {self.name} node are in use"
            )
        account = self._accounts[self._next]
        self._next += 1
        return account

    def _send(self, tx: dict[str, Any]) -> Any:
        tx = {**tx, "gas": self.gas_limit}
        try:
            self.w3.eth.call(tx)  # a dry run: a revert stops here, before anything is sent
        except Exception as exc:
            raise _as_revert(exc) from None
        tx_hash = self.w3.eth.send_transaction(tx)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            # Passed the dry run yet failed when mined (state moved in between): replay it
            # as a call to learn the reason. Contract state is unchanged either way.
            try:
                self.w3.eth.call(tx)
            except Exception as exc:
                raise _as_revert(exc) from None
            raise ContractRevertError("reverted when mined", f"transaction {tx_hash.hex()}")
        return receipt

    @staticmethod
    def _receipt(receipt: Any) -> Receipt:
        logs = tuple(
            (
                to_checksum_address(log["address"]),
                tuple(bytes(t) for t in log["topics"]),
                bytes(log["data"]),
            )
            for log in receipt["logs"]
        )
        return Receipt(logs, b"", int(receipt["gasUsed"]))

    def deploy(self, init_code: bytes, sender: str) -> tuple[str, Receipt]:
        receipt = self._send({"from": sender, "data": init_code})
        return to_checksum_address(receipt["contractAddress"]), self._receipt(receipt)

    def transact(self, to: str, data: bytes, sender: str) -> Receipt:
        return self._receipt(self._send({"from": sender, "to": to, "data": data}))

    def call(self, to: str, data: bytes) -> bytes:
        try:
            return bytes(self.w3.eth.call({"to": to, "data": data}))
        except Exception as exc:
            raise _as_revert(exc) from None

    def close(self) -> None:
        return None  # web3 pools its HTTP sessions itself; the node is stopped by its owner


def _as_revert(exc: Exception) -> Exception:
    """A node's refusal as mercat's error: the contract's reason when the message has one,
    ChainUnavailableError when the node could not be reached."""
    message = str(exc)
    if isinstance(exc, ConnectionError | OSError) or "Connection" in type(exc).__name__:
        return ChainUnavailableError(f"the node did not answer: {message}")
    return revert_error(message)
