"""The `vcg` mechanism on markets: the inherited contract, the markets it refuses, the CLI."""

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mercat.clearing.vcg.mechanism import VCGMechanism
from mercat.cli import app
from mercat.errors import InvalidMarketError, InvalidParameterError, NotProvenOptimalError
from mercat.market.generators import double_auction_market, standard_auction_market
from mercat.market.market_io import dumps_market
from mercat.market.model import Conflict, Market, Node, Request
from tests.clearing.contract import MechanismContract


class TestVCGMechanism(MechanismContract):
    mechanism = VCGMechanism
    n_markets = 12
    misreport_samples = 400

    def make_market(self, rng):
        return standard_auction_market(rng, int(rng.integers(1, 7)), int(rng.integers(1, 4)))


def test_payments_go_to_the_serving_providers():
    market = standard_auction_market(3, 12, 3)
    clearing = VCGMechanism().clear(market)
    assert clearing.proven and clearing.diagnostics["payments_exact"]
    assert sum(clearing.rewards.values()) == pytest.approx(sum(clearing.payments.values()))
    for node in market.nodes:
        served = clearing.allocation.requests_on(node.id)
        expected = sum(clearing.payment(t) for t in served)
        assert clearing.reward(node.id) == pytest.approx(expected)


def test_an_unlimited_provider_serves_everyone_for_free():
    market = Market(
        requests=(Request.bidding("u1", 1.0, 0.5), Request.bidding("u2", 0.9, 0.75)),
        nodes=(Node("p1", unit_costs=(0.0,), capacity=(float("inf"),)),),
        resources=("bandwidth",),
    )
    clearing = VCGMechanism().clear(market)
    assert clearing.allocation.served_requests == {"u1", "u2"}
    assert clearing.payments == {"u1": 0.0, "u2": 0.0}


def refusals():
    base = standard_auction_market(0, 3, 2)
    first = base.requests[0]
    return {
        "divisible": double_auction_market(0, 3, 2),
        "conflict": dataclasses.replace(
            base, conflicts=(Conflict(first.id, base.requests[1].id, "market"),)
        ),
        "costly node": dataclasses.replace(
            base, nodes=(dataclasses.replace(base.nodes[0], cost=1.0), *base.nodes[1:])
        ),
        "replicas": dataclasses.replace(
            base, requests=(dataclasses.replace(first, replicas=2), *base.requests[1:])
        ),
    }


@pytest.mark.parametrize("case", sorted(refusals()))
def test_markets_that_are_no_standard_auction_are_refused(case):
    with pytest.raises(InvalidMarketError, match="standard auctions only"):
        VCGMechanism().clear(refusals()[case])


def test_a_request_without_demand_is_served_free_and_changes_nothing_else():
    # The market format allows a demand of 0: such a request fits every provider whatever
    # it carries, so it wins, and its Clarke payment is 0.
    base = standard_auction_market(4, 6, 2)
    free = Request("free", value=2.5, demand=(0.0,))
    worthless = Request("nothing", value=0.0, demand=(0.0,))
    market = dataclasses.replace(base, requests=(free, *base.requests, worthless))
    alone, together = VCGMechanism().clear(base), VCGMechanism().clear(market)
    assert together.allocation.nodes_of("free") == {base.nodes[0].id}
    assert together.payment("free") == 0.0
    assert "nothing" not in together.allocation.served_requests
    assert dict(together.payments) == {"free": 0.0, **alone.payments}
    assert together.bound == pytest.approx(alone.bound + 2.5)
    assert together.proven and together.diagnostics["payment_intervals"]["free"] == [0.0, 0.0]
    only_free = VCGMechanism().clear(dataclasses.replace(base, requests=(free,)))
    assert only_free.allocation.served_requests == {"free"}
    assert (only_free.bound, only_free.gap, only_free.proven) == (2.5, 0.0, True)
    assert only_free.diagnostics["payments_exact"]
    assert only_free.diagnostics["payment_uncertainty"] == 0.0


@pytest.mark.parametrize("options", [{"time_limit": -1.0}, {"target_gap": -0.1}, {"groups": 0}])
def test_bad_options_are_refused(options):
    with pytest.raises(InvalidParameterError):
        VCGMechanism(**options)


def test_require_exact_refuses_bounded_payments(monkeypatch):
    import mercat.clearing.vcg.mechanism as vcg

    real = vcg.payments_from

    def unproven(state, results):
        outcome = real(state, results)
        return dataclasses.replace(outcome, payments_exact=False)

    monkeypatch.setattr(vcg, "payments_from", unproven)
    market = standard_auction_market(1, 6, 2)
    assert not VCGMechanism().clear(market).diagnostics["payments_exact"]
    with pytest.raises(NotProvenOptimalError):
        VCGMechanism(require_exact=True).clear(market)


def test_cli_clears_a_generated_standard_auction(tmp_path):
    path = tmp_path / "auction.json"
    path.write_text(dumps_market(standard_auction_market(4, 25, 4)), encoding="utf-8")
    result = CliRunner().invoke(app, ["clear", str(path), "--mechanism", "vcg", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["certificate"]["proven"] is True
    assert report["diagnostics"]["payments_exact"] is True
    assert report["checks"]["individually_rational"] and report["margin"] == pytest.approx(0.0)
    payments = np.array(list(report["payments"].values()))
    assert np.all(payments >= 0.0)


def test_payments_in_a_process_pool_equal_those_computed_in_process(monkeypatch):
    from concurrent.futures import ProcessPoolExecutor

    from mercat.clearing.vcg import mechanism as vcg

    pools: list[int] = []  # max_workers of every pool the mechanism opens

    class RecordingPool(ProcessPoolExecutor):
        def __init__(self, max_workers=None, **kwargs):
            pools.append(max_workers)
            super().__init__(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(vcg, "ProcessPoolExecutor", RecordingPool)
    market = standard_auction_market(5, 40, 4)
    alone = VCGMechanism(groups=3, workers=0).clear(market)
    assert pools == []  # workers=0: in this process
    pooled = VCGMechanism(groups=3).clear(market)
    assert pools == [3]  # one pool of 3 processes, one per group
    assert pooled == alone and pooled.diagnostics["payments_exact"]
    assert pooled == VCGMechanism().clear(market)


@pytest.mark.parametrize("workers", [-1, 1.5, True])
def test_a_bad_worker_count_is_refused(workers):
    with pytest.raises(InvalidParameterError, match="workers must be an integer >= 0"):
        VCGMechanism(workers=workers)
