"""Protocol parameters and the peers file: checks with clear messages, a faithful round trip."""

import pytest

from mercat.auctioneer.config import Peer, PeersFile, ProtocolParams, dump_peers, load_peers
from mercat.errors import AuctioneerConfigError

P3 = ("p1", "p2", "p3")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"providers": (), "k": 0}, "at least one provider"),
        ({"providers": ("p1", "p1", "p2"), "k": 1}, "duplicate provider id"),
        ({"providers": ("p 1",), "k": 0}, "provider ids"),
        ({"providers": P3, "k": 2}, "needs m > 2k"),
        ({"providers": P3, "k": -1}, "k must be an integer >= 0"),
        ({"providers": P3, "k": 1, "mechanism": "posted"}, "unknown mechanism"),
        ({"providers": P3, "k": 1, "rule": "median"}, "unknown rule"),
        ({"providers": P3, "k": 1, "groups": 2}, r"2 groups of at least k\+1"),
        ({"providers": P3, "k": 1, "vcg_gap": 1.0}, "vcg_gap"),
        ({"providers": P3, "k": 1, "phase_timeout": 0}, "phase_timeout must be"),
        ({"providers": P3, "k": 1, "bid_window": float("inf")}, "bid_window must be"),
        ({"providers": P3, "k": 1, "max_bids": 0}, "max_bids must be"),
        ({"providers": P3, "k": 1, "tie_break": "random"}, "unknown tie_break 'random'"),
        (
            {"providers": P3, "k": 1, "mechanism": "vcg", "tie_break": "coin"},
            "applies to the double auction only",
        ),
        ({"providers": P3, "k": 1, "opening": "first-message"}, "unknown opening"),
        ({"providers": P3, "k": 1, "round_seconds": 0}, "round_seconds must be"),
        ({"providers": P3, "k": 1, "schedule_start": -1.0}, "schedule_start must be"),
        ({"providers": P3, "k": 1, "clock_tolerance": float("nan")}, "clock_tolerance must"),
        (
            {"providers": P3, "k": 1, "round_seconds": 1.0, "bid_window": 2.0},
            "bid_window 2.0 s is longer than round_seconds 1.0 s",
        ),
        (
            {"providers": P3, "k": 1, "round_seconds": 2.0, "clock_tolerance": 1.5},
            "more than half of round_seconds",
        ),
        (
            {"providers": P3, "k": 1, "round_seconds": 2.0, "max_open_rounds": 2},
            "lets up to 4 rounds open at once, more than max_open_rounds = 2",
        ),
    ],
)
def test_bad_parameters_are_refused(kwargs, words):
    with pytest.raises(AuctioneerConfigError, match=words):
        ProtocolParams(**kwargs)


def test_groups_default_to_as_many_as_fit_and_the_digest_covers_what_must_agree():
    params = ProtocolParams(tuple(f"p{i}" for i in range(8)), 1, mechanism="vcg")
    assert params.payment_groups == 4
    assert ProtocolParams(params.providers, 3).payment_groups == 2
    assert params.digest() == params.with_(phase_timeout=99.0).digest()  # local choice
    for change in ({"k": 2}, {"rule": "bitwise"}, {"groups": 2}, {"vcg_gap": 0.01}):
        assert params.digest() != params.with_(**change).digest()
    double = ProtocolParams(params.providers, 1)
    assert double.digest() != double.with_(tie_break="coin").digest()
    # When rounds take bids must agree: a provider on another schedule (or opening) would
    # close bidding at another moment.
    for change in (
        {"opening": "sealed"},
        {"schedule_start": 5.0},
        {"round_seconds": 20.0},
        {"bid_window": 3.0},
    ):
        assert double.digest() != double.with_(**change).digest(), change
    sealed = double.with_(opening="sealed")
    assert sealed.digest() == sealed.with_(bid_window=3.0).digest()  # a local fallback there


@pytest.mark.parametrize(
    "params",
    [
        ProtocolParams(
            P3, 1, mechanism="vcg", groups=1, vcg_gap=0.01, bid_window=1.5, opening="sealed"
        ),
        ProtocolParams(P3, 1, tie_break="coin", schedule_start=1767225600.0, round_seconds=4.0),
    ],
)
def test_peers_file_round_trip(tmp_path, params):
    sealing = ("ab" * 32,) if params.opening == "sealed" else ()
    peers = PeersFile(
        params,
        tuple(Peer(p, f"tcp://127.0.0.1:{6000 + i}", f"{i:064x}") for i, p in enumerate(P3)),
        sealing,
    )
    path = tmp_path / "peers.toml"
    path.write_text(dump_peers(peers))
    assert load_peers(path) == peers
    assert load_peers(path, k=0).params.k == 0  # --k overrides the file


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not toml [", "is not valid TOML"),
        ("[auction]\nk = 1\n", "needs an \\[auction\\] table and \\[\\[provider\\]\\]"),
        (
            "[auction]\nk = 1\ncolour = 3\n[[provider]]\nid='p1'\naddress='tcp://h:1'\n"
            "public_key='" + "0" * 64 + "'\n",
            "unknown \\[auction\\] keys",
        ),
        (
            "[auction]\nk = 0\n[[provider]]\nid='p1'\naddress='udp://h:1'\n"
            "public_key='" + "0" * 64 + "'\n",
            "tcp://HOST:PORT",
        ),
        (
            "[auction]\nk = 0\n[[provider]]\nid='p1'\naddress='tcp://h:1'\npublic_key='xyz'\n",
            "64 lowercase hex",
        ),
        (
            "[auction]\n[[provider]]\nid='p1'\naddress='tcp://h:1'\n"
            "public_key='" + "0" * 64 + "'\n",
            "give k",
        ),
        ("[auction]\nk = 0\n[[provider]]\nid='p1'\n", "exactly id, address and public_key"),
        ("[extra]\n", "unknown sections"),
        (
            "[auction]\nk = 0\nopening = 'sealed'\n[[provider]]\nid='p1'\naddress='tcp://h:1'\n"
            "public_key='" + "0" * 64 + "'\n",
            "opening = 'sealed' needs sealing_clients",
        ),
        (
            "[auction]\nk = 0\nsealing_clients = ['" + "a" * 64 + "']\n[[provider]]\nid='p1'\n"
            "address='tcp://h:1'\npublic_key='" + "0" * 64 + "'\n",
            "set opening = 'sealed' to use them",
        ),
    ],
)
def test_bad_peers_files_say_what_is_wrong(tmp_path, text, words):
    path = tmp_path / "peers.toml"
    path.write_text(text)
    with pytest.raises(AuctioneerConfigError, match=words):
        load_peers(path)
