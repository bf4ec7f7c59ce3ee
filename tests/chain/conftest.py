"""Fixtures of the chain tests: a rule exact in base units, markets on boa, and a ganache
node that the suite installs (npm, into .cache/ganache) and starts itself, once per test
process, stopped by its PID at the end. Ganache tests are skipped, with the reason, only
where node or npm is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mercat.chain.boa_backend import BoaBackend
from mercat.chain.ganache import GanacheNode, node_tools_missing
from mercat.chain.market import ChainMarket, integer_rule

REPO = Path(__file__).resolve().parents[2]
GANACHE_DIR = REPO / ".cache" / "ganache"

# Seed 000's Fig. 4 setting in base units: P = 99, target 1 % so R = 1, S0 = 10·P·... = 990.
UNIT = 10_000
PENALTY, REWARD, S0 = 99 * UNIT, 1 * UNIT, 990 * UNIT


@pytest.fixture
def rule():
    return integer_rule("coll-stake", S0, "0.01", PENALTY)


@pytest.fixture
def market(rule):
    return ChainMarket.deploy(BoaBackend(), rule, unstake_delay_rounds=2)


@pytest.fixture(scope="session")
def ganache():
    why = node_tools_missing()
    if why:
        pytest.skip(f"ganache needs node and npm: {why}")
    node = GanacheNode(
        GANACHE_DIR, accounts=30, log_path=GANACHE_DIR / f"ganache-{os.getpid()}.log"
    )
    node.start()
    try:
        yield node
    finally:
        node.stop()
