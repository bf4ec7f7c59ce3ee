"""Common coin, Property 4: every provider outputs the same value, distributed as Π; a
coalition cannot bias it (a share that does not open its commitment, or comes late, is ⊥;
a fixed share leaves the coin uniform)."""

import numpy as np
import pytest
from scipy import stats

from mercat.auctioneer import common_coin as cc
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.deviations import CoinFixed, CoinLate, CoinMismatch
from mercat.auctioneer.simulation import simulate_rounds
from mercat.auctioneer.workloads import double_auction_bids
from mercat.errors import InvalidParameterError


def coins(rng, m, fixed=0, draws=3000):
    """Coins of m providers, the first `fixed` of which always share the same number."""
    out = []
    for _ in range(draws):
        shares = [bytes([0xAB]) * 32] * fixed + [cc.draw_share(rng) for _ in range(m - fixed)]
        out.append(cc.uniform(cc.combine(shares)))
    return np.array(out)


@pytest.mark.parametrize(("m", "fixed"), [(3, 0), (3, 2), (8, 7)])
def test_the_coin_is_uniform_while_one_share_is(m, fixed):
    u = coins(np.random.default_rng(m + fixed), m, fixed)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert u.min() >= 0 and u.max() < 1


def test_without_an_honest_share_it_is_not_uniform():
    """The check above can fail: a coin made only of fixed shares is one constant."""
    u = coins(np.random.default_rng(0), 3, fixed=3, draws=50)
    assert len(set(u)) == 1


def test_commitments_bind():
    share, salt = bytes(range(32)), bytes(32)
    c = cc.coin_commitment(2, "p1", share, salt)
    assert cc.opens(c, 2, "p1", share, salt)
    assert not cc.opens(c, 2, "p1", share[::-1], salt)
    assert not cc.opens(c, 3, "p1", share, salt)
    assert not cc.opens(c, 2, "p1", share[:31], salt)


def test_combine_is_the_sum_modulo_2_256():
    a, b = (2**256 - 1).to_bytes(32, "little"), (5).to_bytes(32, "little")
    assert cc.combine([a, b]) == 4
    with pytest.raises(InvalidParameterError):
        cc.combine([b"short"])


def test_map_to_distributions():
    rng = np.random.default_rng(1)
    values = [cc.combine([cc.draw_share(rng)]) for _ in range(4000)]
    uni = np.array([cc.draw(cc.Uniform(2.0, 5.0), v) for v in values])
    assert uni.min() >= 2.0 and uni.max() < 5.0
    assert stats.kstest(uni, stats.uniform(2.0, 3.0).cdf).pvalue > 1e-3
    cat = np.array([cc.draw(cc.Categorical((1.0, 0.0, 3.0)), v) for v in values])
    counts = np.bincount(cat, minlength=3)
    assert counts[1] == 0
    assert stats.chisquare(counts[[0, 2]], [1000, 3000]).pvalue > 1e-3
    normal_dist = stats.norm(10, 2)  # scipy's frozen distributions have the ppf Π needs
    normal = np.array([cc.draw(normal_dist, v) for v in values[:600]])
    assert stats.kstest(normal, normal_dist.cdf).pvalue > 1e-3
    assert cc.draw(lambda u: u < 0.5, values[0]) in (True, False)  # a plain callable
    g1, g2 = cc.generator(values[0]), cc.generator(values[0])
    assert g1.random() == g2.random()
    with pytest.raises(InvalidParameterError):
        cc.Uniform(1.0, 1.0)
    with pytest.raises(InvalidParameterError):
        cc.Categorical((0.0, 0.0))
    with pytest.raises(InvalidParameterError):
        cc.draw(42, values[0])  # type: ignore[arg-type]


PARAMS = ProtocolParams(tuple(f"p{i}" for i in range(5)), 2)


def test_every_provider_outputs_the_same_coin_each_round():
    rounds = simulate_rounds(PARAMS, [double_auction_bids(r, 10, 3) for r in range(4)], seed=3)
    per_round = [{out.coin for out in r.outputs.values()} for r in rounds]
    assert all(len(s) == 1 for s in per_round)
    assert len({next(iter(s)) for s in per_round}) == 4  # a fresh coin every round


@pytest.mark.parametrize(("deviation", "ok"), [(CoinMismatch, False), (CoinLate, False)])
def test_a_share_that_does_not_open_or_comes_late_is_bottom(deviation, ok):
    behaviors = {"p2": deviation(PARAMS, "p2", np.random.default_rng(0))}
    [r] = simulate_rounds(PARAMS, [double_auction_bids(1, 10, 3)], behaviors=behaviors)
    honest = [r.outputs[p] for p in PARAMS.providers if p != "p2"]
    assert all(out.ok is ok for out in honest)
    words = "does not open" if deviation is CoinMismatch else "timeout: no reveal from p2"
    assert all(words in out.reason for out in honest)


def test_a_fixed_share_changes_nothing_the_others_can_see():
    behaviors = {p: CoinFixed(PARAMS, p, np.random.default_rng(0)) for p in ("p0", "p1")}
    [r] = simulate_rounds(PARAMS, [double_auction_bids(1, 10, 3)], behaviors=behaviors)
    assert all(out.ok for out in r.outputs.values())
    assert len({out.coin for out in r.outputs.values()}) == 1
