"""The peers file's [bidders] table from a ledger: request ids and active asset ids bound to
their owners' keys (`mercat auctioneer init --bidders-from-ledger`, `mercat auctioneer
bidders`), and a provider that enforces it."""

import json

import pytest
from typer.testing import CliRunner

from mercat.auctioneer.bidder_registry import bidders_from_accounts, bidders_from_ledger
from mercat.auctioneer.bids import Bid, BidVector
from mercat.auctioneer.config import ProtocolParams, load_peers
from mercat.auctioneer.messages import BidBatch
from mercat.cli import app
from mercat.errors import AuctioneerConfigError
from mercat.ledger import PostRequest, RequestTerms
from tests.auctioneer.single_provider import provider_round
from tests.ledger.market import Market

PARAMS = ProtocolParams(("p0",), 0, bid_window=1.0)

runner = CliRunner()
A, B, C = "a" * 64, "b" * 64, "c" * 64


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_requests_and_active_assets_bind_to_their_owners():
    table = bidders_from_accounts(
        [("req-1", A), ("shared", B)],
        [("gpu-1", C, "active"), ("gpu-0", A, "removed"), ("shared", B, "active")],
    )
    assert table == (("gpu-1", C), ("req-1", A), ("shared", B))


def test_a_label_with_two_owners_is_refused():
    with pytest.raises(AuctioneerConfigError, match=r"'x' is a request of aaaa.*asset of bbbb"):
        bidders_from_accounts([("x", A)], [("x", B, "active")])


@pytest.fixture
def ledger_market(tmp_path):
    """A ledger with three users: u0 owns gpu-a (active), u1 owned gpu-b (removed by a
    failed task, which closed the request it served), u2 posted request job-1."""
    market = Market(f"sqlite:///{tmp_path}/ledger.db", users=3)
    for user in market.users:
        market.fund(user, 10_000)
    market.asset(market.users[0], 100, "gpu-a")
    market.asset(market.users[1], 100, "gpu-b")
    market.submit(market.users[2], PostRequest(terms=RequestTerms("job-1", max_price=500)))
    task = market.task(market.request(market.users[2], 10), ["gpu-b"], [10])
    assert market.settle(1, task, False).result["removed"] == ["gpu-b"]
    yield market
    market.ledger.close()


def test_the_table_of_a_ledger(ledger_market):
    u0, _, u2 = (k.public for k in ledger_market.users)
    assert bidders_from_ledger(ledger_market.ledger.url) == (("gpu-a", u0), ("job-1", u2))


def test_init_and_refresh_the_registry_from_a_ledger(ledger_market, tmp_path):
    url = ledger_market.ledger.url
    out = run("auctioneer", "init", "--providers", 3, "--out", tmp_path / "auct",
              "--ledger", url)  # fmt: skip
    assert out.exit_code == 0, out.output
    peers = tmp_path / "auct" / "peers.toml"
    assert dict(load_peers(peers).bidders) == dict(bidders_from_ledger(url))

    # The ledger changes: a new asset; `bidders` rewrites the table and says what changed.
    ledger_market.asset(ledger_market.users[1], 100, "gpu-c")
    out = run("auctioneer", "bidders", "--peers", peers, "--ledger", url, "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["added"] == ["gpu-c"] and report["removed"] == [] and report["bidders"] == 3
    loaded = load_peers(peers)
    assert dict(loaded.bidders)["gpu-c"] == ledger_market.users[1].public
    assert loaded.params.providers == ("p1", "p2", "p3")  # the rest of the file is kept


def test_bad_ledgers_change_nothing(tmp_path):
    out = run("auctioneer", "init", "--out", tmp_path / "auct",
              "--ledger", f"sqlite:///{tmp_path}/none.db")  # fmt: skip
    assert out.exit_code == 2 and "no ledger at" in " ".join(out.output.split())
    assert not (tmp_path / "auct").exists() and not (tmp_path / "none.db").exists()

    assert run("auctioneer", "init", "--out", tmp_path / "auct").exit_code == 0
    peers = tmp_path / "auct" / "peers.toml"
    before = peers.read_text()
    empty = Market(f"sqlite:///{tmp_path}/empty.db", users=1)
    out = run("auctioneer", "bidders", "--peers", peers, "--ledger", empty.ledger.url)
    empty.ledger.close()
    assert out.exit_code == 2 and "would be empty" in " ".join(out.output.split())
    assert peers.read_text() == before


def test_a_provider_takes_bids_only_from_the_owners_the_ledger_names(ledger_market):
    # The registry from the ledger: gpu-a sells only for u0, job-1 buys only for u2; a bid
    # for job-1 signed by u0 (not its owner) and one for the removed gpu-b are refused.
    u0, u1, u2 = ledger_market.users
    registry = dict(bidders_from_ledger(ledger_market.ledger.url))
    job, gpu = Bid("job-1", "buy", 2.0, 1.0), Bid("gpu-a", "sell", 0.5, 4.0)
    removed = Bid("gpu-b", "sell", 0.1, 4.0)
    deliveries = [
        (u2, BidBatch(0, BidVector.from_bids([job]))),
        (u0, BidBatch(0, BidVector.from_bids([gpu, Bid("job-1", "buy", 9.0, 1.0)]))),
        (u1, BidBatch(0, BidVector.from_bids([removed]))),
    ]
    result, dropped = provider_round(PARAMS, deliveries, bidder_keys=registry)
    assert result.ok
    assert result.agreed == BidVector.from_bids([gpu, job])
    assert dropped["unregistered-bids"] == 2
