"""Input validation, Property 3: different inputs -> ⊥ at both; the same input -> output
it; a coalition can only cause ⊥ (a false digest, a missing one)."""

import numpy as np
import pytest

from mercat.auctioneer import input_validation as iv
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.deviations import LieBids, LieValidate, Withhold
from mercat.auctioneer.round import Behavior
from mercat.auctioneer.simulation import simulate_rounds
from mercat.auctioneer.trials import Combined
from mercat.auctioneer.workloads import double_auction_bids
from mercat.errors import RoundAbortedError

PROVIDERS = ("p0", "p1", "p2")


def test_same_input_passes_and_different_inputs_fail_at_both():
    params = ProtocolParams(PROVIDERS, 1).digest()
    a, b = double_auction_bids(1, 10, 3), double_auction_bids(2, 10, 3)
    da, db = iv.input_digest(a, params), iv.input_digest(b, params)
    iv.check(da, dict.fromkeys(PROVIDERS, da), PROVIDERS)  # (2): all the same -> go on
    held = {"p0": da, "p1": db, "p2": da}
    for own in (da, db):  # (1): p0 (input a) and p1 (input b) both output ⊥
        with pytest.raises(RoundAbortedError, match="another input"):
            iv.check(own, held, PROVIDERS)
    with pytest.raises(RoundAbortedError, match="no digest from p2"):
        iv.check(da, {"p0": da, "p1": da}, PROVIDERS)


def test_the_digest_covers_the_parameters():
    bids = double_auction_bids(1, 10, 3)
    one = ProtocolParams(PROVIDERS, 1, mechanism="double").digest()
    other = ProtocolParams(PROVIDERS, 1, mechanism="vcg").digest()
    assert iv.input_digest(bids, one) != iv.input_digest(bids, other)


def liar_and(deviation, params, member):
    """A provider that lies about its bids (so that the decided vector is validated in its
    own phase) and deviates in input validation."""
    rng = np.random.default_rng(0)
    return Combined(
        LieBids(params, member, rng, plan=5),
        deviation(params, member, rng, kind="validate")
        if deviation is Withhold
        else deviation(params, member, rng),
    )


@pytest.mark.parametrize("deviation", [LieValidate, Withhold])
def test_a_false_or_missing_digest_gives_bottom_only(deviation):
    params = ProtocolParams(tuple(f"p{i}" for i in range(5)), 2)
    bids = double_auction_bids(3, 15, 3)
    behaviors: dict[str, Behavior] = {"p1": liar_and(deviation, params, "p1")}
    [r] = simulate_rounds(params, [bids], behaviors=behaviors)
    honest = [r.outputs[p] for p in params.providers if p != "p1"]
    assert all(not out.ok for out in honest)
    words = "another input" if deviation is LieValidate else "no validate from p1"
    assert all(words in out.reason for out in honest)


def test_lying_alone_passes_validation_with_the_honest_input():
    params = ProtocolParams(tuple(f"p{i}" for i in range(5)), 2)
    bids = double_auction_bids(3, 15, 3)
    behaviors: dict[str, Behavior] = {
        p: LieBids(params, p, np.random.default_rng(0), plan=5) for p in ("p1", "p4")
    }
    [r] = simulate_rounds(params, [bids], behaviors=behaviors)
    for p in ("p0", "p2", "p3"):
        assert r.outputs[p].ok and r.outputs[p].agreed == bids
