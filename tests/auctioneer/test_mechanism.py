"""The distributed auctioneer as a clearing mechanism: the contract, equality with the
trusted auctioneer, and whole rounds of the pipeline cleared by it."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from mercat.auctioneer.mechanism import DistributedAuction
from mercat.clearing.double_auction import DoubleAuction
from mercat.clearing.vcg.mechanism import VCGMechanism
from mercat.errors import InvalidMarketError, InvalidParameterError
from mercat.incentives.integer_rule import IntegerRule
from mercat.market.generators import standard_auction_market
from mercat.runtime.memory import MemoryBook
from mercat.scenarios.marketplace import MarketSetup, build
from tests.clearing.contract import MechanismContract
from tests.clearing.test_double_auction import crossing_market


class TestDistributedDoubleAuction(MechanismContract):
    mechanism = DistributedAuction
    n_markets = 6
    misreport_samples = 0

    def make_market(self, rng):
        return crossing_market(rng)


class TestDistributedVCG(MechanismContract):
    mechanism = DistributedAuction
    options: ClassVar[dict[str, Any]] = {"auction": "vcg"}
    n_markets = 4
    misreport_samples = 0

    def make_market(self, rng):
        return standard_auction_market(int(rng.integers(1 << 30)), 6, 2)


@pytest.mark.parametrize("seed", range(4))
def test_the_providers_output_what_a_trusted_auctioneer_would(seed):
    market = crossing_market(np.random.default_rng(seed))
    distributed = DistributedAuction().clear(market, seed=seed)
    trusted = DoubleAuction().clear(market)
    assert distributed.allocation == trusted.allocation
    assert dict(distributed.payments) == pytest.approx(dict(trusted.payments))
    assert dict(distributed.rewards) == pytest.approx(dict(trusted.rewards))
    vcg_market = standard_auction_market(seed, 6, 2)
    assert (
        DistributedAuction(auction="vcg").clear(vcg_market, seed=seed).allocation
        == VCGMechanism().clear(vcg_market).allocation
    )


def test_rounds_of_the_pipeline_clear_with_the_distributed_auctioneer():
    rule = IntegerRule(penalty=10**6, reward=10**4, removal=True)
    book = MemoryBook(rule, unit=10**6, quorum=2)
    setup = MarketSetup(providers=2, requesters=4)
    market = build(book, DistributedAuction(), setup, np.random.default_rng(1), "coll-stake")
    reports = market.run(3)
    assert sum(len(r.tasks) for r in reports) > 0
    book.verify()


def test_markets_and_options_it_cannot_clear_are_refused():
    with pytest.raises(InvalidParameterError, match="auction"):
        DistributedAuction(auction="english")
    market = standard_auction_market(1, 4, 2)
    with pytest.raises(InvalidMarketError, match="divisible"):
        DistributedAuction().clear(market)
