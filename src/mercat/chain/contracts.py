"""The Vyper contracts shipped with mercat: compilation and the ABI codec.

The sources live in `mercat/chain/contracts/*.vy` (package data). `compile_contract` runs
the `vyper` package on one of them and returns a `ContractArtifact`: ABI and init code.
Every backend deploys the same artifact, so boa, eth-tester and a JSON-RPC node all run
byte-identical code.

EVM version: Vyper 0.4.3 targets `prague` by default; ganache 7.9.2 knows forks up to
`shanghai`. Shanghai code runs unchanged on every later fork, and the contracts need
nothing newer (no transient storage, no MCOPY), so `shanghai` is the default everywhere.

The codec (`encode_call`, `decode_result`, `decode_log`) works on raw bytes with eth-abi,
so the backends only move bytes and need no ABI handling of their own.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak
from eth_utils import to_checksum_address as _checksum

from mercat.errors import ChainUnavailableError, UnknownNameError

#: The contracts in `mercat/chain/contracts/`.
CONTRACT_NAMES: tuple[str, ...] = ("Token", "Market", "Quorum")

#: The fork every contract is compiled for (see the module docstring).
DEFAULT_EVM_VERSION = "shanghai"


def contract_source(name: str) -> str:
    """The Vyper source of a shipped contract."""
    if name not in CONTRACT_NAMES:
        raise UnknownNameError("contract", name, CONTRACT_NAMES)
    return resources.files("mercat.chain").joinpath("contracts").joinpath(f"{name}.vy").read_text()


@functools.lru_cache(maxsize=4096)
def to_checksum_address(address: str | bytes) -> str:
    """EIP-55 form of an address (cached: the same few addresses recur in every log)."""
    return _checksum(address)


def _type_string(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of a parameter, tuples spelled out: `(address,uint256)[]`."""
    kind = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_type_string(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _to_python(kind: str, value: Any) -> Any:
    """Checksummed addresses, lists for arrays, tuples for structs; ints stay ints."""
    if kind == "address":
        return to_checksum_address(value)
    if kind.endswith("]"):
        item = kind[: kind.rindex("[")]
        return [_to_python(item, v) for v in value]
    if kind.startswith("("):
        parts = _split_tuple(kind)
        return tuple(_to_python(k, v) for k, v in zip(parts, value, strict=True))
    return value


def _split_tuple(kind: str) -> list[str]:
    """`(a,(b,c),d[])` -> ['a', '(b,c)', 'd[]']."""
    parts, depth, start = [], 0, 1
    for i, ch in enumerate(kind[1:-1], start=1):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(kind[start:i])
            start = i + 1
    parts.append(kind[start:-1])
    return parts


@dataclass(frozen=True)
class EventAbi:
    name: str
    topic: bytes
    names: tuple[str, ...]
    types: tuple[str, ...]
    indexed: tuple[bool, ...]


@dataclass(frozen=True)
class FunctionAbi:
    name: str
    selector: bytes
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    mutating: bool


@dataclass(frozen=True)
class Event:
    """A decoded log: the emitting contract, the event's name and its arguments."""

    address: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class ContractArtifact:
    """A compiled contract: its ABI, init code, the code it leaves on chain (what EIP-170
    limits to 24,576 bytes) and the fork it was compiled for."""

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    runtime_bytecode: bytes
    evm_version: str
    functions: dict[str, FunctionAbi] = field(repr=False)
    events: dict[bytes, EventAbi] = field(repr=False)

    def init_code(self, args: Sequence[Any] = ()) -> bytes:
        """Init code with the constructor arguments appended, ready to deploy."""
        ctor = next((e for e in self.abi if e["type"] == "constructor"), None)
        types = [_type_string(p) for p in ctor["inputs"]] if ctor else []
        if len(types) != len(args):
            raise TypeError(
                f"{self.name} constructor takes {len(types)} arguments, got {len(args)}"
            )
        return self.bytecode + encode(types, list(args))

    def function(self, name: str) -> FunctionAbi:
        if name not in self.functions:
            raise UnknownNameError(f"{self.name} function", name, sorted(self.functions))
        return self.functions[name]

    def encode_call(self, name: str, args: Sequence[Any] = ()) -> bytes:
        fn = self.function(name)
        if len(fn.input_types) != len(args):
            raise TypeError(
                f"{self.name}.{name} takes {len(fn.input_types)} arguments, got {len(args)}"
            )
        return fn.selector + encode(list(fn.input_types), list(args))

    def decode_result(self, name: str, data: bytes) -> Any:
        """A call's return value: None, the single value, or a tuple of several."""
        fn = self.function(name)
        if not fn.output_types:
            return None
        values = decode(list(fn.output_types), data)
        values = tuple(_to_python(k, v) for k, v in zip(fn.output_types, values, strict=True))
        return values[0] if len(values) == 1 else values

    def decode_log(self, address: str, topics: Sequence[bytes], data: bytes) -> Event | None:
        """Decode one raw log if this contract declares its event (None otherwise)."""
        if not topics or topics[0] not in self.events:
            return None
        ev = self.events[topics[0]]
        indexed_types = [t for t, ix in zip(ev.types, ev.indexed, strict=True) if ix]
        plain_types = [t for t, ix in zip(ev.types, ev.indexed, strict=True) if not ix]
        indexed = [
            decode([t], topic)[0] for t, topic in zip(indexed_types, topics[1:], strict=True)
        ]
        plain = list(decode(plain_types, data))
        args = {}
        for name, kind, is_indexed in zip(ev.names, ev.types, ev.indexed, strict=True):
            value = indexed.pop(0) if is_indexed else plain.pop(0)
            args[name] = _to_python(kind, value)
        return Event(to_checksum_address(address), ev.name, args)


def _build_artifact(
    name: str, abi: list[dict[str, Any]], bytecode: bytes, runtime: bytes, evm: str
) -> ContractArtifact:
    functions, events = {}, {}
    for entry in abi:
        if entry["type"] == "function":
            inputs = tuple(_type_string(p) for p in entry["inputs"])
            signature = f"{entry['name']}({','.join(inputs)})"
            functions[entry["name"]] = FunctionAbi(
                name=entry["name"],
                selector=keccak(text=signature)[:4],
                input_types=inputs,
                output_types=tuple(_type_string(p) for p in entry["outputs"]),
                mutating=entry["stateMutability"] not in ("view", "pure"),
            )
        elif entry["type"] == "event":
            types = tuple(_type_string(p) for p in entry["inputs"])
            topic = keccak(text=f"{entry['name']}({','.join(types)})")
            events[topic] = EventAbi(
                name=entry["name"],
                topic=topic,
                names=tuple(p["name"] for p in entry["inputs"]),
                types=types,
                indexed=tuple(bool(p["indexed"]) for p in entry["inputs"]),
            )
    return ContractArtifact(name, tuple(abi), bytecode, runtime, evm, functions, events)


@functools.cache
def compile_contract(name: str, evm_version: str = DEFAULT_EVM_VERSION) -> ContractArtifact:
    """Compile a shipped contract with the `vyper` package (cached per process)."""
    source = contract_source(name)
    try:
        import vyper
        from vyper.compiler.settings import Settings
    except ImportError as exc:  # the `chain` extra is not installed
        raise ChainUnavailableError(
            "the vyper compiler is missing; install mercat with the `chain` extra"
        ) from exc
    out = vyper.compile_code(
        source,
        contract_path=f"{name}.vy",
        output_formats=["abi", "bytecode", "bytecode_runtime"],
        settings=Settings(evm_version=evm_version),
    )
    code = {
        key: bytes.fromhex(out[key].removeprefix("0x")) for key in ("bytecode", "bytecode_runtime")
    }
    return _build_artifact(
        name, out["abi"], code["bytecode"], code["bytecode_runtime"], evm_version
    )


def decode_logs(
    artifacts: Mapping[str, ContractArtifact],
    raw_logs: Sequence[tuple[str, Sequence[bytes], bytes]],
) -> list[Event]:
    """Decode raw logs `(address, topics, data)` with the artifact deployed at each address
    (`artifacts` maps checksummed address to artifact); logs of unknown contracts are
    dropped."""
    events = []
    for address, topics, data in raw_logs:
        artifact = artifacts.get(to_checksum_address(address))
        if artifact is not None:
            event = artifact.decode_log(address, topics, data)
            if event is not None:
                events.append(event)
    return events
