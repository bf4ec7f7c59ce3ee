"""What reaches a provider or a bidder client from the network is hostile: a frame that is
badly signed, from a sender nobody knows, or of a kind that has no business there is
dropped, and nothing it sends can crash the receiving loop or grow its memory without
bound. Every test runs on in-process endpoints with the frames delivered up front, so no
outcome depends on timing."""

import asyncio
import logging

import numpy as np

from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.client import BidderClient
from mercat.auctioneer.config import Peer, PeersFile, ProtocolParams
from mercat.auctioneer.instances import instance_for
from mercat.auctioneer.messages import BidBatch, Result, Transfer, encode
from mercat.auctioneer.node import ProviderNode
from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.round import RoundResult
from mercat.auctioneer.transport import DropLog, InProcessHub, Received, Transport
from mercat.auctioneer.workloads import double_auction_bids
from mercat.identity import Keypair

PROVIDERS = ("p0", "p1", "p2")
KEYS = {p: Keypair(bytes([i + 1]) * 32) for i, p in enumerate(PROVIDERS)}
PARAMS = ProtocolParams(PROVIDERS, 1, opening="sealed", bid_window=1.0, phase_timeout=2.0)
PEERS = PeersFile(PARAMS, tuple(Peer(p, "tcp://127.0.0.1:1", KEYS[p].public) for p in PROVIDERS))
CLIENT = Keypair(bytes([40]) * 32)
STRANGER = Keypair(bytes([41]) * 32)


def test_a_client_drops_badly_signed_and_unexpected_frames_and_keeps_listening():
    """A provider's address sends a Result signed with another key, a Result claiming to
    come from a provider nobody knows, and a bid batch (a kind no client takes) before the
    real Results: the client drops the three and decides on the real ones."""
    bids = double_auction_bids(1, 10, 3)
    payload = instance_for("double").centralized(bids, 0).encode()
    real = Result(0, True, "", payload)

    async def main():
        hub = InProcessHub()
        client = BidderClient(PEERS, CLIENT, hub.endpoint("client"))
        junk = [
            encode(real, "p0", STRANGER),  # p0's name, another key
            encode(real, "p9", STRANGER),  # a provider the peers file does not list
            encode(BidBatch(0, bids), STRANGER.public, STRANGER),  # not for a client
        ]
        for frames in junk:
            hub.deliver("p0", "client", frames)
        for p in PROVIDERS:
            hub.deliver(p, "client", encode(real, p, KEYS[p]))
        return await client.answers(0, timeout=3600), client.dropped

    got, dropped = asyncio.run(main())
    assert dropped == 3
    assert set(got.results) == set(PROVIDERS)
    assert all(r == real for r in got.results.values())


def test_empty_batches_from_any_client_leave_nothing_in_an_open_round():
    """A round is open (its sealing client sent a first batch); any client may add bids to
    it, up to `max_bids`. Empty batches add no bids, so without a rule of their own they
    would pile up in the round without limit: they are answered and leave nothing."""
    sealer = CLIENT
    bids = double_auction_bids(1, 10, 3)

    async def main():
        hub = InProcessHub()
        node = ProviderNode(
            "p0",
            PARAMS,
            KEYS["p0"],
            {p: k.public for p, k in KEYS.items()},
            hub.endpoint("p0"),
            sealing_clients=(sealer.public,),
        )
        node.handle(Received(encode(BidBatch(0, bids), sealer.public, sealer), "sealer"))
        empty = encode(BidBatch(0, BidVector.empty()), STRANGER.public, STRANGER)
        for _ in range(2000):
            node.handle(Received(empty, "stranger"))
        rnd = node.rounds[0]
        held = len(rnd.batches), rnd.bid_count
        rnd.task.cancel()
        return held

    assert asyncio.run(main()) == (1, len(bids))


def test_finished_rounds_remembered_in_memory_are_bounded_in_bytes():
    """A provider remembers finished rounds to answer late batches, but a round may hold
    up to `max_bids` bids: any client can fill every round, and 1024 full rounds kept in
    memory would be gigabytes. It keeps the outcomes (not the agreed bids) of the most
    recent rounds within 256 MiB, and the last round always."""
    ids = tuple(f"{'b' * 56}{i:08d}" for i in range(15_000))
    n = len(ids)
    big = Outcome("double", ids, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(n))
    payload = big.encode()  # about 1 MB
    size = len(payload)
    agreed = BidVector(ids, np.zeros(n), np.ones(n), np.ones(n))

    async def main():
        node = ProviderNode(
            "p0",
            PARAMS,
            KEYS["p0"],
            {p: k.public for p, k in KEYS.items()},
            InProcessHub().endpoint("p0"),
            sealing_clients=(CLIENT.public,),
        )
        for r in range(1024):
            node._remember(RoundResult(r, big, agreed=agreed), payload)
        return node.finished

    finished = asyncio.run(main())
    assert 0 < len(finished) * size <= 256 * 1024 * 1024
    assert max(finished) == 1023 and list(finished) == sorted(finished)
    assert all(r.agreed is None and r.outcome is big for r in finished.values())


def test_a_peers_transfers_in_one_round_hold_at_most_one_messages_worth_of_bytes():
    """A peer may send a round's data transfers before the round needs them, for tasks the
    round may never run. Each is up to `max_message_bytes`; 64 of them per peer per round
    would be 64 messages' worth of memory. A provider holds at most `max_message_bytes` of a
    peer's transfers per round (a group's results are far smaller: VCG's payments are 25
    bytes a user) and drops the rest."""
    limit = 1024 * 1024
    params = ProtocolParams(
        PROVIDERS, 1, opening="sealed", bid_window=1.0, phase_timeout=2.0, max_message_bytes=limit
    )
    value = bytes(limit // 2)

    async def main():
        node = ProviderNode(
            "p0",
            params,
            KEYS["p0"],
            {p: k.public for p, k in KEYS.items()},
            InProcessHub().endpoint("p0"),
            sealing_clients=(CLIENT.public,),
        )
        first = encode(BidBatch(0, BidVector.empty()), CLIENT.public, CLIENT)
        node.handle(Received(first, "sealer"))
        for i in range(64):
            node.handle(Received(encode(Transfer(0, f"t{i}", value), "p1", KEYS["p1"]), "p1"))
        rnd = node.rounds[0]
        held = [m for m in rnd.inbox.slots.values() if isinstance(m, Transfer)]
        rnd.task.cancel()
        return held

    held = asyncio.run(main())
    assert len(held) >= 1 and sum(len(m.value) for m in held) <= limit


class Recording(Transport):
    """A transport that keeps what the provider sends, and never delivers anything."""

    name = "recording"

    def __init__(self) -> None:
        self.replies: list[tuple[object, list[bytes]]] = []

    def send(self, peer, frames) -> None:
        pass

    def reply(self, route, frames) -> None:
        self.replies.append((route, frames))

    async def recv(self) -> Received:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_late_batches_for_a_finished_round_share_one_copy_of_its_result():
    """Any client may name a finished round again and gets its signed Result back. A large
    outcome must not be encoded, signed and queued anew for every such batch (a client that
    sends small batches and never reads would make the provider queue one outcome per
    batch): every reply carries the same frames."""
    ids = tuple(f"bidder-{i:06d}" for i in range(20_000))
    n = len(ids)
    big = Outcome("double", ids, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(n))
    late = encode(BidBatch(0, BidVector.empty()), STRANGER.public, STRANGER)

    async def main():
        transport = Recording()
        node = ProviderNode(
            "p0",
            PARAMS,
            KEYS["p0"],
            {p: k.public for p, k in KEYS.items()},
            transport,
            sealing_clients=(CLIENT.public,),
        )
        node._remember(RoundResult(0, big))
        for i in range(50):
            node.handle(Received(late, ("router", i)))
        return transport.replies

    replies = asyncio.run(main())
    assert [route for route, _ in replies] == [("router", i) for i in range(50)]
    first = replies[0][1]
    assert len(first[1]) == len(big.encode())
    assert all(frames is first for _, frames in replies)


def test_a_flood_of_junk_is_counted_in_full_but_logged_in_a_bounded_number_of_lines(caplog):
    """Each dropped message gets its one log line, up to a burst per kind of drop and
    minute; the rest are counted, so a peer sending junk as fast as it can cannot fill
    the provider's disk with its log."""
    node = ProviderNode(
        "p0",
        PARAMS,
        KEYS["p0"],
        {p: k.public for p, k in KEYS.items()},
        Recording(),
        sealing_clients=(CLIENT.public,),
    )
    with caplog.at_level(logging.WARNING, logger="mercat.auctioneer.node"):
        for i in range(2000):
            node.handle(Received([b"junk", bytes([i % 256])], ("router", i)))
    assert node.dropped == {"MalformedMessageError": 2000}
    lines = [r for r in caplog.records if r.name == "mercat.auctioneer.node"]
    assert 1 <= len(lines) <= 200
    assert "a message has 3 frames, got 2" in lines[0].getMessage()


def test_the_drop_log_says_how_many_it_did_not_log():
    now = [0.0]
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("mercat.test.droplog")
    logger.addHandler(Collect())
    logger.propagate = False
    drops = DropLog(logger, burst=3, window=60.0, clock=lambda: now[0])
    for i in range(10):
        drops.warning("bad", "dropped %d", i)
    drops.warning("other", "other kind")
    now[0] = 61.0
    drops.warning("bad", "dropped %d", 10)
    assert records == [
        "dropped 0",
        "dropped 1",
        "dropped 2",
        "other kind",
        "7 more messages dropped (bad) in 61 s, not logged one by one",
        "dropped 10",
    ]
