"""One scenario, three EVMs: titanoboa in process, web3.py over eth-tester (py-evm) in
process, and web3.py over a real ganache JSON-RPC node that the suite installs from npm
and starts on 127.0.0.1 (see conftest.py). All three must end in the same state, log the
same settlements, refuse the same operations, and agree with the Python reference; the
two web3 backends must charge the same gas (same fork, same code)."""

from __future__ import annotations

import os

import pytest

from mercat.chain.boa_backend import BoaBackend
from mercat.chain.ganache import GanacheNode, node_tools_missing
from mercat.chain.market import ChainMarket, integer_rule
from mercat.chain.reference import reference_run
from mercat.chain.scenario import ScenarioConfig, random_scenario, run_on_chain
from mercat.chain.web3_backend import Web3Backend
from mercat.errors import ChainUnavailableError
from tests.chain.conftest import GANACHE_DIR

RULE = integer_rule("coll-sr", 990, "0.01", 99)
CONFIG = ScenarioConfig(
    providers=2, requesters=1, assets_per_provider=3, tasks=25, failure_rate=0.3
)
OPS = random_scenario(RULE, seed=11, config=CONFIG)


def _run(backend):
    market = ChainMarket.deploy(backend, RULE, unstake_delay_rounds=2, oracles=0)
    run = run_on_chain(market, OPS)
    assert market.conservation_gap() == 0
    return run


@pytest.fixture(scope="module")
def boa_run():
    return _run(BoaBackend())


@pytest.fixture(scope="module")
def tester_run():
    return _run(Web3Backend.eth_tester())


def test_scenario_exercises_every_kind_of_operation():
    kinds = {type(op).__name__ for op in OPS}
    assert {"Fund", "FundPool", "Register", "Escrow", "Settle", "AdvanceRound"} <= kinds
    assert any(op.expect for op in OPS)


def test_boa_matches_the_reference(boa_run):
    state, settlements = reference_run(RULE, OPS, min_stake=100, unstake_delay_rounds=2)
    assert boa_run.state == state and boa_run.settlements == settlements
    assert boa_run.settle_gas == []  # boa has no receipts: no gas figure is reported from it


@pytest.mark.slow
def test_eth_tester_runs_the_same_scenario(boa_run, tester_run):
    run = tester_run
    assert run.state == boa_run.state
    assert run.settlements == boa_run.settlements
    assert run.raised == boa_run.raised
    assert len(run.settle_gas) == len(boa_run.settlements)
    assert all(21_000 < gas < 300_000 for gas in run.settle_gas)


@pytest.mark.slow
def test_ganache_node_runs_the_same_scenario(boa_run, tester_run, ganache):
    backend = Web3Backend.http(ganache.url)
    assert backend.w3.eth.chain_id > 0  # a real node answered over HTTP
    run = _run(backend)
    assert run.state == boa_run.state
    assert run.settlements == boa_run.settlements
    assert run.raised == boa_run.raised
    assert run.settle_gas == tester_run.settle_gas  # same code, same fork rules: same gas


@pytest.mark.slow
def test_ganache_is_stopped_by_its_pid(tmp_path):
    if node_tools_missing():
        pytest.skip(f"ganache needs node and npm: {node_tools_missing()}")
    node = GanacheNode(GANACHE_DIR, accounts=2, log_path=tmp_path / "ganache.log")
    node.start()
    pid = node.process.pid
    os.kill(pid, 0)  # alive
    node.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ChainUnavailableError):
        Web3Backend.http(node.url, timeout=2)
