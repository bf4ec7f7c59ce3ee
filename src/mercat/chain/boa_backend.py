"""titanoboa's in-process EVM (py-evm underneath) as a chain backend.

Each `BoaBackend` owns its own `boa.Env`, so two backends (or two tests) never share state
and nothing global in boa is touched. Any address can send: boa does not charge for gas.
"""

from __future__ import annotations

from eth_utils import to_checksum_address

from mercat.chain.backend import Receipt
from mercat.chain.reverts import reason_from_revert_data, revert_error
from mercat.errors import ChainUnavailableError


def _new_env():
    try:
        import boa
    except ImportError as exc:
        raise ChainUnavailableError(
            "titanoboa is missing; install mercat with the `chain` extra"
        ) from exc
    return boa.Env()


class BoaBackend:
    """Contracts on an embedded EVM, in this process."""

    name = "boa"

    def __init__(self) -> None:
        self._env = _new_env()

    def new_account(self) -> str:
        return to_checksum_address(str(self._env.generate_address()))

    def _check(self, computation) -> None:
        if computation.is_error:
            data = bytes(computation.output or b"")
            reason = reason_from_revert_data(data)
            raise revert_error(reason if reason is not None else repr(computation.error))

    @staticmethod
    def _logs(computation) -> tuple:
        logs = []
        for address, topics, data in computation.get_log_entries():
            logs.append(
                (
                    to_checksum_address(address),
                    tuple(t.to_bytes(32, "big") for t in topics),
                    bytes(data),
                )
            )
        return tuple(logs)

    def deploy(self, init_code: bytes, sender: str) -> tuple[str, Receipt]:
        try:
            address, computation = self._env.deploy(sender=sender, bytecode=init_code)
        except Exception as exc:  # boa raises on a reverting constructor
            computation = getattr(exc, "computation", None)
            if computation is not None:
                self._check(computation)
            reason = _reason_in(exc)
            raise revert_error(reason) from None
        self._check(computation)
        return to_checksum_address(str(address)), Receipt(self._logs(computation), b"", None)

    def transact(self, to: str, data: bytes, sender: str) -> Receipt:
        computation = self._env.execute_code(to_address=to, sender=sender, data=data)
        self._check(computation)
        return Receipt(self._logs(computation), bytes(computation.output), None)

    def call(self, to: str, data: bytes) -> bytes:
        computation = self._env.execute_code(to_address=to, data=data, is_modifying=False)
        self._check(computation)
        return bytes(computation.output)

    def close(self) -> None:
        return None


def _reason_in(exc: Exception) -> str:
    """Best effort: the revert reason boa put into an exception's text."""
    text = str(exc)
    stack = getattr(exc, "stack_trace", None)
    frame = getattr(stack, "last_frame", None)
    vm_error = getattr(frame, "vm_error", None)
    if vm_error is not None and vm_error.args and isinstance(vm_error.args[0], bytes):
        reason = reason_from_revert_data(vm_error.args[0])
        if reason is not None:
            return reason
    return text
