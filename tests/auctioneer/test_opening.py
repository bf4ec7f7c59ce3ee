"""When rounds take bids (seed 003's deadline; `mercat.auctioneer.opening`): no coalition of
k providers and no client can open a round, start its bid window early, or fill the table of
rounds so that the real round is refused; a client whose bids missed a round is told so,
never "ok". Every attack runs under both opening rules: the schedule and sealing clients."""

import asyncio

import numpy as np
import pytest

from mercat.auctioneer.bids import Bid, BidVector
from mercat.auctioneer.client import Answers as ClientAnswers
from mercat.auctioneer.client import BidderClient, verdict
from mercat.auctioneer.config import Peer, PeersFile, ProtocolParams
from mercat.auctioneer.deviations import EmptyBatchOpens, FloodRounds, OpenRoundEarly
from mercat.auctioneer.instances import instance_for
from mercat.auctioneer.messages import BidBatch, Commit, Missed, Result, encode
from mercat.auctioneer.node import ProviderNode
from mercat.auctioneer.opening import PendingCommitments, Schedule
from mercat.auctioneer.simulation import simulate_rounds
from mercat.auctioneer.transport import InProcessHub
from mercat.auctioneer.trials import bids_delay
from mercat.auctioneer.virtual_clock import VirtualClockLoop
from mercat.auctioneer.workloads import double_auction_bids
from mercat.identity import Keypair

OPENINGS = ("schedule", "sealed")
PROVIDERS = ("p0", "p1", "p2")


def params_for(opening: str, **changes) -> ProtocolParams:
    return ProtocolParams(
        PROVIDERS,
        1,
        opening=opening,
        bid_window=1.0,
        phase_timeout=2.0,
        round_seconds=4.0,
        task_timeout=10.0,
        **changes,
    )


# --- the rules ----------------------------------------------------------------------------


def test_the_schedule_fixes_every_window_and_bounds_the_rounds_that_exist():
    s = Schedule(start=100.0, period=4.0, window=1.0, tolerance=0.25, grace=1.0)
    assert (s.opens(3), s.closes(3)) == (112.0, 113.0)
    assert "opens for bids at" in s.refusal(3, 111.7) and "in 0.3 s" in s.refusal(3, 111.7)
    assert s.refusal(3, 111.75) is None and s.refusal(3, 114.25) is None  # tolerance, grace
    assert "closed for bids at" in s.refusal(3, 114.3)
    assert s.round_to_bid(112.2, margin=0.5) == 3  # 0.8 s of round 3's window left
    assert s.round_to_bid(112.6, margin=0.5) == 4  # too little left: the next round
    assert s.round_to_bid(50.0, margin=0.5) == 0  # before round 0: round 0
    # However many rounds a message names, only these are accepted at any moment:
    for now in np.linspace(100.0, 140.0, 321):
        accepted = [r for r in range(40) if s.refusal(r, float(now)) is None]
        assert len(accepted) <= s.live_rounds()


def test_peers_commitments_open_a_sealed_round_only_at_k_plus_one_and_stay_bounded():
    pending = PendingCommitments(needed=2, quota=3, ttl=1.0)
    commit = Commit(7, bytes(32), bytes(32), bytes(32))
    assert not pending.hold(7, "p1", commit, now=0.0)  # one peer: maybe no real round
    assert not pending.hold(7, "p1", commit, now=0.1)  # the same peer again counts once
    assert pending.hold(7, "p2", commit, now=0.2)  # k+1 = 2 peers: an honest one closed
    assert [s for s, _ in pending.take(7, now=0.3)] == ["p1", "p2"]
    assert pending.take(7, now=0.3) == []
    for r in range(100, 200):  # a deviator names a hundred rounds: it keeps its last three
        pending.hold(r, "p1", Commit(r, bytes(32), bytes(32), bytes(32)), now=1.0)
    assert pending.held() == 3 and pending.support(199, now=1.0) == 1
    assert pending.support(199, now=2.5) == 0  # past the peers' phase timeout: stale
    other = Commit(5, bytes(32), bytes(32), b"\x01" * 32)  # two different: both kept,
    pending.hold(5, "p2", commit, now=3.0)  # so that the inbox sees the equivocation
    pending.hold(5, "p2", other, now=3.0)
    assert [m for _, m in pending.take(5, now=3.0)] == [commit, other]


# --- the attacks, end to end in process ------------------------------------------------------


def run_attack(opening: str, deviation, seed: int = 0):
    """One round of the double auction with p2 deviating; the client bids when the trials
    have it bid (sealed: after the deviator's frames; schedule: inside the window)."""
    params = params_for(opening)
    bids = double_auction_bids(seed, 30, 4)
    deviator = deviation(params, "p2", np.random.default_rng(seed), plan=seed)
    [r] = simulate_rounds(
        params,
        [bids],
        behaviors={"p2": deviator},
        seed=seed,
        bids_delay=bids_delay(params, [deviator]),
    )
    return params, bids, r


@pytest.mark.parametrize("opening", OPENINGS)
def test_one_provider_cannot_empty_a_round_by_opening_it_first(opening):
    """p2 opens the round alone and runs it on no bids before the client bids. Were rounds
    to open at the first message naming them, p0 and p1 would close bidding a window later
    with nothing, agree with p2 on the empty market and deliver its outcome, and tell the
    client "ok" with none of its bids. They output the outcome on the client's bids, or ⊥."""
    params, bids, r = run_attack(opening, OpenRoundEarly)
    expected = instance_for("double").centralized(bids, 0, params)
    for p in ("p0", "p1"):
        out = r.outputs[p]
        assert not out.ok or (out.agreed == bids and out.outcome == expected), (p, out.reason)
    for provider, result in r.client_results.items():  # nobody tells the client "ok" for
        assert not result.ok or result.outcome == expected.encode(), provider  # another market
    if opening == "schedule":  # the clock closes bidding, not p2: the round delivers
        assert all(r.outputs[p].ok for p in ("p0", "p1"))


@pytest.mark.parametrize("opening", OPENINGS)
def test_an_empty_batch_from_any_client_opens_nothing(opening):
    params, bids, r = run_attack(opening, EmptyBatchOpens)
    expected = instance_for("double").centralized(bids, 0, params)
    for p in ("p0", "p1"):
        assert r.outputs[p].ok and r.outputs[p].outcome == expected, r.outputs[p].reason


@pytest.mark.parametrize("opening", OPENINGS)
def test_a_flood_of_future_rounds_lets_the_real_round_through(opening):
    params, bids, r = run_attack(opening, FloodRounds)
    expected = instance_for("double").centralized(bids, 0, params)
    for p in ("p0", "p1"):
        assert r.outputs[p].ok and r.outputs[p].outcome == expected, r.outputs[p].reason


# --- one provider's table, a client's answer -------------------------------------------------


class Market:
    """The three providers and any number of bidder clients on one in-process hub, under the
    virtual clock, which is also the providers' wall clock (schedule_start 0: round r opens
    at 4r seconds)."""

    def __init__(self, params: ProtocolParams, sealing: tuple[str, ...] = ()) -> None:
        loop = asyncio.get_running_loop()
        self.hub = InProcessHub()
        self.keys = {p: Keypair(bytes([i + 1]) * 32) for i, p in enumerate(params.providers)}
        public = {p: k.public for p, k in self.keys.items()}
        self.peers = PeersFile(
            params, tuple(Peer(p, "tcp://127.0.0.1:1", public[p]) for p in public), sealing
        )
        self.nodes = {
            p: ProviderNode(
                p,
                params,
                self.keys[p],
                public,
                self.hub.endpoint(p),
                sealing_clients=sealing,
                wall_clock=loop.time,
            )
            for p in params.providers
        }
        self.serving = [asyncio.ensure_future(n.serve()) for n in self.nodes.values()]

    def client(self, name: str, key: Keypair) -> BidderClient:
        return BidderClient(self.peers, key, self.hub.endpoint(name))

    async def close(self) -> None:
        for node in self.nodes.values():
            node.stop()
        await asyncio.gather(*self.serving)


def in_virtual_time(coroutine):
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(coroutine)


SEALER, LATE, EARLY = (Keypair(bytes([i]) * 32) for i in (40, 41, 42))
MINE = BidVector.from_bids(
    [Bid("late-buyer", "buy", 9.0, 1.0), Bid("late-seller", "sell", 0.1, 1.0)]
)


@pytest.mark.parametrize("opening", OPENINGS)
def test_a_client_whose_bids_missed_the_round_is_told_so(opening):
    params = params_for(opening)
    bids = double_auction_bids(3, 20, 4)

    async def main():
        market = Market(params, (SEALER.public,) if opening == "sealed" else ())
        try:
            on_time = market.client("on-time", SEALER)
            late, early = market.client("late", LATE), market.client("early", EARLY)
            first = asyncio.ensure_future(on_time.run_round(0, bids, timeout=10))
            await asyncio.sleep(1.5)  # past round 0's close, whichever rule opened it
            missed = await late.run_round(0, MINE, timeout=10)
            delivered = await first
            # A round not open for bids: not yet (schedule: round 5 opens at 20 s) or not
            # opened by its sealing client.
            not_open = await early.run_round(5, MINE, timeout=10)
            return delivered, missed, not_open
        finally:
            await market.close()

    delivered, missed, not_open = in_virtual_time(main())
    assert delivered.status == "ok" and delivered.outcome.bidders == bids.ids
    assert missed.status == "missed" and not missed.ok
    assert missed.missing == ("late-buyer", "late-seller")
    assert "leaves out 2 of your bids" in missed.reason or "no provider took" in missed.reason
    assert not_open.status == "missed" and not_open.outcome is None
    assert set(not_open.refusals) == set(PROVIDERS)
    words = "opens for bids at" if opening == "schedule" else "its sealing clients open rounds"
    assert all(words in why for why in not_open.refusals.values())


def test_the_verdict_never_says_ok_without_the_clients_bids():
    bids = double_auction_bids(1, 10, 3)
    outcome = instance_for("double").centralized(bids, 0)
    payload = outcome.encode()
    everyone = ClientAnswers({p: Result(0, True, "", payload) for p in PROVIDERS})
    assert verdict(everyone, PROVIDERS, bids)[0] == "ok"
    extra = BidVector.from_bids([*bids.bids(), Bid("zz-not-in-it", "buy", 1.0, 1.0)])
    status, got, reason, missing = verdict(everyone, PROVIDERS, extra)
    assert (status, missing, got) == ("missed", ("zz-not-in-it",), outcome)
    assert "leaves out 1 of your bids (zz-not-in-it)" in reason
    refused = ClientAnswers(refusals={p: Missed(0, "closed", True) for p in PROVIDERS})
    assert refused.settled(PROVIDERS)  # nobody took the batch: no need to wait for Results
    assert verdict(refused, PROVIDERS, bids)[0] == "missed"
    split = ClientAnswers({"p0": Result(0, False, "timeout", b"")})
    assert verdict(split, PROVIDERS, bids)[0] == "⊥"
    assert not ClientAnswers(refusals={"p0": Missed(0, "closed", True)}).settled(PROVIDERS)


@pytest.mark.parametrize("opening", OPENINGS)
def test_a_handful_of_messages_naming_many_rounds_fills_no_table(opening):
    """A deviating peer commits to 200 future rounds and a client of its sends 200 empty
    batches: every provider still opens the real round, holds at most `max_open_rounds`
    of the peer's commitments, and never has more rounds than the opening rule allows."""
    params = params_for(opening)
    bids = double_auction_bids(4, 20, 4)
    sybil = Keypair(bytes([50]) * 32)

    async def main():
        market = Market(params, (SEALER.public,) if opening == "sealed" else ())
        try:
            p1 = market.keys["p1"]
            for r in range(1, 201):
                commit = Commit(r, params.digest(), bytes(32), bytes(32))
                empty = BidBatch(r, BidVector.empty(), final=True)
                for target in ("p0", "p2"):
                    market.hub.deliver("p1", target, encode(commit, "p1", p1))
                    market.hub.deliver("sybil", target, encode(empty, sybil.public, sybil))
            market.hub.endpoint("sybil")
            client = market.client("client", SEALER)
            submitted = asyncio.ensure_future(client.run_round(0, bids, timeout=10))
            await asyncio.sleep(0.5)
            tables = {p: (set(n.rounds), n.pending.held()) for p, n in market.nodes.items()}
            return tables, await submitted, {p: n.dropped for p, n in market.nodes.items()}
        finally:
            await market.close()

    tables, result, dropped = in_virtual_time(main())
    assert result.ok, result.reason
    assert result.outcome == instance_for("double").centralized(bids, 0, params)
    for p in ("p0", "p2"):
        rounds, held = tables[p]
        assert rounds <= {0}, (p, sorted(rounds)[:10])  # round 0 may be over already
        assert held <= params.max_open_rounds
        assert "too-many-rounds" not in dropped[p]
        assert dropped[p]["round-not-open"] >= 200


def test_a_scheduled_round_closes_by_the_clock_whoever_names_it_first():
    """Any client's empty batch naming round 0 at time 0 creates the round's state, but
    bidding still closes at the schedule's close (1 s), so a bid made 0.9 s in counts."""
    params = params_for("schedule")
    bids = double_auction_bids(6, 15, 4)
    sybil = Keypair(bytes([51]) * 32)

    async def main():
        market = Market(params)
        try:
            market.hub.endpoint("sybil")
            empty = encode(BidBatch(0, BidVector.empty(), final=True), sybil.public, sybil)
            for p in PROVIDERS:
                market.hub.deliver("sybil", p, empty)
            await asyncio.sleep(0.9)  # 0.1 s before the close
            closes = {p: n.rounds[0].bids_close for p, n in market.nodes.items()}
            return closes, await market.client("client", SEALER).run_round(0, bids, timeout=10)
        finally:
            await market.close()

    closes, result = in_virtual_time(main())
    assert closes == dict.fromkeys(PROVIDERS, 1.0)
    assert result.ok and result.outcome.bidders == bids.ids


def test_a_batch_after_the_close_is_late_even_as_the_first_message_of_its_round():
    """The clock closes bidding, not the moment a provider's round task wakes up: a batch
    that arrives 0.2 s after round 0's close (within the grace in which a peer's first
    message may still create the round) is refused as late, never counted."""
    params = ProtocolParams(("p0",), 0, bid_window=1.0, phase_timeout=2.0, round_seconds=4.0)
    bids = double_auction_bids(8, 10, 3)

    async def main():
        market = Market(params)
        try:
            await asyncio.sleep(1.2)
            return await market.client("client", SEALER).run_round(0, bids, timeout=10)
        finally:
            await market.close()

    result = in_virtual_time(main())
    assert result.status == "missed", result.reason
    assert "closed here before your batch arrived" in result.refusals["p0"]
    assert result.outcome is None or result.outcome.bidders == ()


def test_a_client_keeps_a_bounded_number_of_other_rounds_answers():
    """Answers for other rounds are kept for a later call, but a provider sending answers
    for many rounds cannot grow the client's memory: only the latest rounds are kept."""
    from mercat.auctioneer.client import MAX_PENDING_ROUNDS

    params = params_for("schedule")

    async def main():
        market = Market(params)
        try:
            client = market.client("client", SEALER)
            p0 = market.keys["p0"]
            for r in range(1000, 1200):
                market.hub.deliver("p0", "client", encode(Missed(r, "no"), "p0", p0))
            await client.answers(5, timeout=0.5)
            return client._pending
        finally:
            await market.close()

    pending = in_virtual_time(main())
    assert len(pending) == MAX_PENDING_ROUNDS
    assert max(pending) == 1199 and min(pending) == 1200 - MAX_PENDING_ROUNDS
