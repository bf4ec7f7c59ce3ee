"""Deviation injection: for m in {3, 5, 8} and every k with m > 2k, coalitions of up to k
providers lie, equivocate, withhold, report wrong task results, try to bias the coin, forge
messages, or attack when rounds take bids. At the providers outside the coalition the
outcome is always exactly the honest one or ⊥; the trials are counted."""

import numpy as np
import pytest

from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.deviations import CATALOGUE, by_name
from mercat.auctioneer.round import HONEST, Behavior
from mercat.auctioneer.simulation import simulate_rounds
from mercat.auctioneer.trials import CONFIGS, Tally, run_bidder_trials, run_coalition_trials
from mercat.auctioneer.workloads import double_auction_bids

# What each deviation must lead to at the honest providers, whatever m, k and coalition:
ALWAYS_BOTTOM = {
    "equivocate-report",
    "equivocate-reveal",
    "swap-full-report",
    "equivocate-commit",
    "coin-mismatch",
    "coin-late",
    "false-abort",
}
# Harmless: the honest outcome. The two attacks on when a round takes bids among them: an
# empty batch from the coalition's own client opens nothing, and a flood of future rounds
# leaves the real round through (`open-round-early` may end in ⊥: the deviator's own round
# closed before the clients bid).
ALWAYS_HONEST = {"coin-fixed", "slow-on-time", "forge", "empty-batch-opens", "flood-rounds"}


def totals(tallies) -> Tally:
    total = Tally()
    for tally in tallies.values():
        total.merge(tally)
    return total


def check(tallies):
    for (mechanism, m, k, deviation), tally in tallies.items():
        assert tally.manipulated == 0, (mechanism, m, k, deviation, tally)
        if deviation in ALWAYS_BOTTOM:
            assert tally.bottom == tally.trials, (mechanism, m, k, deviation, tally)
        if deviation in ALWAYS_HONEST:
            assert tally.honest == tally.trials, (mechanism, m, k, deviation, tally)


def test_the_catalogue_names_are_unique_and_known():
    names = [cls.name for cls in CATALOGUE]
    assert len(names) == len(set(names))
    assert set(ALWAYS_BOTTOM | ALWAYS_HONEST) <= set(names)
    assert by_name("crash").name == "crash"


def test_double_auction_coalitions_never_manipulate():
    tallies = run_coalition_trials(2, mechanisms=("double",), seed=1)
    assert {(m, k) for _, m, k, _ in tallies} == set(CONFIGS)
    check(tallies)
    total = totals(tallies)
    assert total.trials == 2 * len(CONFIGS) * (len(CATALOGUE) + 1)
    assert total.honest > 0 and total.bottom > 0  # both ways out actually happen


def test_coalitions_never_manipulate_a_double_auction_whose_ties_the_coin_breaks():
    # A is randomized here: the honest outcome is A(b, R) with the round's coin R, on
    # prices rounded to quarters so that the coin decides who trades. Every coin attack
    # (mismatch, late reveal, a fixed share) must give ⊥ or exactly A(b, R).
    tallies = run_coalition_trials(2, mechanisms=("double-coin",), seed=4)
    check(tallies)
    total = totals(tallies)
    assert total.trials == 2 * len(CONFIGS) * (len(CATALOGUE) + 1)
    assert total.honest > 0 and total.bottom > 0
    counts = run_bidder_trials(2, mechanism="double-coin", with_coalition=True, seed=8)
    assert sum(c["violations"] for c in counts.values()) == 0


@pytest.mark.slow
def test_vcg_coalitions_never_manipulate():
    tallies = run_coalition_trials(1, mechanisms=("vcg",), seed=2)
    check(tallies)
    total = totals(tallies)
    assert total.trials == len(CONFIGS) * (len(CATALOGUE) + 1)
    assert total.honest > 0 and total.bottom > 0


@pytest.mark.parametrize("rule", ["value", "bitwise"])
def test_bidders_that_equivocate_alongside_lying_providers(rule):
    """Definition 1 with both kinds of misbehaviour: consistent bidders keep their bids,
    the others get one they sent (value rule) or ⊥, every honest output is A on that."""
    counts = run_bidder_trials(3, rule=rule, with_coalition=True, seed=7)
    assert sum(c["violations"] for c in counts.values()) == 0


def test_a_silent_provider_ends_the_round_in_bottom_in_bounded_time_then_rounds_resume():
    params = ProtocolParams(tuple(f"p{i}" for i in range(5)), 2, phase_timeout=4.0)
    markets = [double_auction_bids(r, 20, 3) for r in range(3)]

    def between(r, nodes):  # p3 says nothing in round 1 only (it still hears everything)
        nodes["p3"].behavior = _Silent() if r == 1 else HONEST

    rounds = simulate_rounds(params, markets, between=between)
    assert all(out.ok for out in rounds[0].outputs.values())
    honest = [rounds[1].outputs[p] for p in params.providers if p != "p3"]
    assert all(not out.ok and "p3" in out.reason for out in honest)
    assert max(out.seconds for out in honest) <= 2 * params.phase_timeout + 0.1
    assert all(out.ok for out in rounds[2].outputs.values())  # the next round works again


class _Silent(Behavior):
    """Sends nothing (a crashed provider, seen from outside)."""

    def outgoing(self, message, to):
        return None


def test_deviators_are_reproducible_from_the_seed():
    a = run_coalition_trials(1, mechanisms=("double",), configs=((5, 2),), seed=3)
    b = run_coalition_trials(1, mechanisms=("double",), configs=((5, 2),), seed=3)
    assert {k: v.as_dict() for k, v in a.items()} == {k: v.as_dict() for k, v in b.items()}
    assert np.isfinite(len(a))
