"""The optional bidder registry ([bidders] in the peers file): only the client key a label
is registered to may bid under it, so nobody can bid for an unregistered label or spoil
another bidder's bid to ⊥ by sending a different one."""

import pytest

from mercat.auctioneer.bids import Bid, BidVector
from mercat.auctioneer.config import Peer, PeersFile, ProtocolParams, dump_peers, load_peers
from mercat.auctioneer.messages import BidBatch
from mercat.errors import AuctioneerConfigError
from mercat.identity import Keypair
from tests.auctioneer.single_provider import provider_round

PARAMS = ProtocolParams(("p0",), 0, bid_window=1.0)
OWNER, ROGUE = (Keypair(bytes([i]) * 32) for i in (2, 3))
ALICE, BOB = Bid("alice", "buy", 2.0, 1.0), Bid("bob", "sell", 0.5, 1.0)
SPOILER, CAROL = Bid("alice", "buy", 9.0, 1.0), Bid("carol", "buy", 3.0, 1.0)


def one_round(bidder_keys):
    """The owner bids for alice and bob; a rogue client sends a different bid for alice and
    one for carol. Returns the agreed bids and the provider's drop counts."""
    deliveries = [
        (OWNER, BidBatch(0, BidVector.from_bids([ALICE, BOB]))),
        (ROGUE, BidBatch(0, BidVector.from_bids([SPOILER, CAROL]))),
    ]
    return provider_round(PARAMS, deliveries, bidder_keys=bidder_keys)


def test_without_a_registry_any_client_can_spoil_a_label():
    result, dropped = one_round(None)
    assert result.ok
    assert result.agreed == BidVector.from_bids([BOB, CAROL])  # alice: two bids, ⊥
    assert "unregistered-bids" not in dropped


def test_with_a_registry_only_the_registered_key_bids_for_a_label():
    result, dropped = one_round({"alice": OWNER.public, "bob": OWNER.public})
    assert result.ok
    assert result.agreed == BidVector.from_bids([ALICE, BOB])
    assert dropped["unregistered-bids"] == 1  # the rogue's batch: both its bids refused


def test_the_registry_round_trips_through_the_peers_file(tmp_path):
    peers = PeersFile(
        ProtocolParams(("p1",), 0),
        (Peer("p1", "tcp://127.0.0.1:6000", "0" * 64),),
        (),
        (("alice", OWNER.public), ('bidder "b" é', ROGUE.public)),
    )
    path = tmp_path / "peers.toml"
    path.write_text(dump_peers(peers), encoding="utf-8")
    loaded = load_peers(path)
    assert loaded == peers
    assert loaded.bidder_keys() == {"alice": OWNER.public, 'bidder "b" é': ROGUE.public}
    plain = PeersFile(peers.params, peers.peers)
    path.write_text(dump_peers(plain), encoding="utf-8")
    assert load_peers(path).bidder_keys() is None


PROVIDER = "[[provider]]\nid='p1'\naddress='tcp://h:1'\npublic_key='" + "0" * 64 + "'\n"


@pytest.mark.parametrize(
    ("bidders", "words"),
    [
        ("[bidders]\nalice = 'abc'\n", "bidder 'alice' needs a client key of 64"),
        ("[bidders]\nalice = 3\n", "bidder 'alice' needs a client key of 64"),
        ("bidders = 3\n", "\\[bidders\\] must be a table"),
    ],
)
def test_a_bad_registry_is_refused(tmp_path, bidders, words):
    path = tmp_path / "peers.toml"
    path.write_text(bidders + "[auction]\nk = 0\n" + PROVIDER, encoding="utf-8")
    with pytest.raises(AuctioneerConfigError, match=words):
        load_peers(path)
