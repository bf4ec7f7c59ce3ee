"""The shipped contracts compile, ship as package data, and every revert reason they can
give maps to its own error class."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from mercat.chain.contracts import CONTRACT_NAMES, compile_contract, contract_source
from mercat.chain.reverts import REVERT_REASONS, reason_from_revert_data, revert_error
from mercat.errors import (
    ChainInsufficientFundsError,
    ContractRevertError,
    InsufficientFundsError,
    UnknownNameError,
)

_REASON = re.compile(r'"((?:market|token|quorum): [^"]+)"')


def _reasons_in_sources() -> set[str]:
    return {m for name in CONTRACT_NAMES for m in _REASON.findall(contract_source(name))}


def test_contracts_ship_as_package_data():
    folder = resources.files("mercat.chain").joinpath("contracts")
    assert {f"{n}.vy" for n in CONTRACT_NAMES} <= {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_compiles_for_shanghai_with_an_abi(name):
    artifact = compile_contract(name)
    assert artifact.evm_version == "shanghai"
    assert len(artifact.bytecode) > 500
    assert artifact.functions and all(len(f.selector) == 4 for f in artifact.functions.values())


def test_market_abi_has_the_operations():
    fns = set(compile_contract("Market").functions)
    assert {
        "deposit", "withdraw", "transfer", "fund_pool", "register_asset", "post_offer",
        "add_stake", "unstake", "release", "replace_asset", "post_request", "withdraw_request",
        "open_tasks", "settle_tasks", "task_commitment", "task_held", "advance_round",
        "set_authority",
    } <= fns  # fmt: skip
    assert {"report", "settle_tasks", "verdict"} <= set(compile_contract("Quorum").functions)


def test_the_market_fits_the_contract_size_limit():
    """EIP-170: a contract's runtime code is at most 24,576 bytes; nodes refuse more."""
    artifact = compile_contract("Market")
    assert len(artifact.runtime_bytecode) <= 24_576


def test_every_revert_reason_has_an_error_class_and_no_entry_is_stale():
    in_sources = _reasons_in_sources()
    assert in_sources == set(REVERT_REASONS)


def test_revert_error_finds_the_reason_inside_a_node_message():
    ganache = "VM Exception while processing transaction: revert market: insufficient balance"
    err = revert_error(ganache)
    assert type(err) is ChainInsufficientFundsError and err.reason == "market: insufficient balance"
    assert isinstance(err, InsufficientFundsError)  # caught like the ledger's refusal
    unknown = revert_error("execution reverted: something else")
    assert type(unknown) is ContractRevertError


def test_revert_data_decoding():
    data = bytes.fromhex("08c379a0") + (32).to_bytes(32, "big") + (5).to_bytes(32, "big")
    data += b"hello".ljust(32, b"\0")
    assert reason_from_revert_data(data) == "hello"
    assert reason_from_revert_data(b"\x00\x01") is None


def test_unknown_contract_name():
    with pytest.raises(UnknownNameError, match="Escrow"):
        contract_source("Escrow")
