"""Providers as separate OS processes talking ZeroMQ over TCP on loopback: rounds, the
bidder client and its command, a crashed or frozen provider, hostile bytes on the wire."""

import json
import os
import signal
import time

import numpy as np
import pytest
import zmq
from typer.testing import CliRunner

from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.instances import instance_for, published_seed
from mercat.auctioneer.local import LocalCluster
from mercat.auctioneer.workloads import double_auction_bids, standard_auction_bids
from mercat.cli import app

PHASE = 1.5


@pytest.fixture(scope="module")
def cluster():
    params = ProtocolParams(
        ("p1", "p2", "p3"), 1, bid_window=1.0, phase_timeout=PHASE, task_timeout=30.0
    )
    with LocalCluster(params) as c:
        yield c


def test_rounds_over_tcp_equal_the_centralized_mechanism(cluster):
    pids = {p.pid for p in cluster.processes.values()}
    assert len(pids) == 3 and os.getpid() not in pids  # three processes of their own
    for r in range(3):
        bids = double_auction_bids(r, 150, 8)
        result = cluster.run_round(100 + r, bids, timeout=20)
        assert result.ok, result.reason
        assert result.outcome == instance_for("double").centralized(bids, 0)
        assert set(result.results) == {"p1", "p2", "p3"}
        for answer in result.results.values():  # each provider's milestones, in order
            names = [name for name, _ in answer.phases]
            assert names == ["bids", "commit", "reveal", "validate", "outcome"]
            times = [us for _, us in answer.phases]
            assert times == sorted(times) and times[-1] < 20e6


def test_mercat_bid_sends_to_every_provider_and_reports_the_outcome(cluster, tmp_path):
    # The cluster's rounds are opened by its sealing client: bid with its key.
    key = tmp_path / "client.key"
    key.write_text(cluster.client_key.seed.hex())
    out = CliRunner().invoke(
        app,
        [
            "bid",
            "--peers",
            str(cluster.peers_path),
            "--round",
            "200",
            "--key",
            str(key),
            "--json",
            "--bid",
            "u1:buy:1.2:1",
            "--bid",
            "u2:buy:1.1:1",
            "--bid",
            "u3:buy:0.9:1",
            "--bid",
            "s1:sell:0.5:1",
            "--bid",
            "s2:sell:0.6:1",
            "--bid",
            "s3:sell:0.7:1",
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["outcome"] == "ok" and data["providers_answered"] == ["p1", "p2", "p3"]
    # trade reduction: u3 and s3 are the marginal pair; u1, u2 buy 1 each at 0.9
    assert data["your_bids"]["u1"] == {"allocated": 1.0, "pays": 0.9}
    assert data["your_bids"]["s1"]["pays"] == -0.7
    assert data["your_bids"]["u3"] == {"allocated": 0.0, "pays": 0.0}
    # Another client bids in round 200 after it ran: told that it missed it, never "ok".
    late = CliRunner().invoke(
        app, ["bid", "--peers", str(cluster.peers_path), "--round", "200",
              "--bid", "u9:buy:5:1"],
    )  # fmt: skip
    assert late.exit_code == 0, late.output
    assert late.stdout.startswith("round 200: missed: the round's outcome leaves out 1 of")
    # ... and one that bids in a round its sealing client never opened, at once.
    never = CliRunner().invoke(
        app, ["bid", "--peers", str(cluster.peers_path), "--round", "201", "--json",
              "--bid", "u9:buy:5:1"],
    )  # fmt: skip
    data = json.loads(never.stdout)
    assert data["outcome"] == "missed" and data["missed_bids"] == ["u9"]
    assert set(data["not_taken_by"]) == {"p1", "p2", "p3"} and data["seconds"] < 10


def test_ties_broken_by_the_common_coin_across_processes():
    # Equal bids on a grid of quarters, ties broken by the coin: every round's outcome is the
    # trusted auctioneer's with the coin seed the outcome publishes, and the seeds differ.
    params = ProtocolParams(
        ("p1", "p2", "p3"), 1, bid_window=1.0, phase_timeout=PHASE, tie_break="coin"
    )
    bids = double_auction_bids(4, 60, 8)
    bids = BidVector(bids.ids, bids.side, np.round(bids.price * 4) / 4, bids.quantity)
    seeds = set()
    with LocalCluster(params) as coin_cluster:
        for r in range(3):
            result = coin_cluster.run_round(r, bids, timeout=20)
            assert result.ok, result.reason
            seed = published_seed(result.outcome)
            assert result.outcome.facts["coin_seed"] == seed
            assert result.outcome == instance_for("double").centralized(bids, seed, params)
            seeds.add(seed)
    assert len(seeds) == 3


def test_hostile_bytes_are_dropped_and_the_next_round_works(cluster):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(cluster.peers.peer("p2").address)
    for frames in ([b"garbage"], [b"{}", b"", b"x" * 64], [b'{"v": 9}', b"", b""]):
        sock.send_multipart(frames)
    time.sleep(0.3)
    sock.close()
    ctx.term()
    bids = double_auction_bids(9, 50, 8)
    assert cluster.run_round(300, bids, timeout=20).ok
    log = (cluster.workdir / "p2.log").read_text()
    assert "dropped a message (MalformedMessageError)" in log
    assert "dropped a message (UnsupportedVersionError)" in log


def test_a_frozen_then_a_crashed_provider_gives_bottom_in_bounded_time(cluster):
    bids = double_auction_bids(5, 50, 8)
    p3 = cluster.processes["p3"]
    os.kill(p3.pid, signal.SIGSTOP)  # stays silent
    try:
        started = time.monotonic()
        result = cluster.run_round(400, bids, timeout=30)
        elapsed = time.monotonic() - started
    finally:
        os.kill(p3.pid, signal.SIGCONT)
    assert not result.ok and "p3" in result.reason
    # the peers' phase timeout and the client's grace (2 * PHASE + 1 s), not the client's
    # 30 s round timeout; the slack is for a loaded machine
    assert elapsed < 20.0
    woke = cluster.run_round(401, bids, timeout=20)
    assert woke.ok, woke.reason  # it woke up: the next round works

    cluster.stop_provider("p3", signal.SIGKILL)  # crashes
    started = time.monotonic()
    result = cluster.run_round(402, bids, timeout=30)
    assert not result.ok and time.monotonic() - started < 20.0  # as above
    cluster.start_provider("p3")
    cluster.wait_ready(["p3"])
    assert cluster.run_round(403, bids, timeout=20).ok  # restarted: rounds work again


@pytest.mark.slow
def test_vcg_groups_in_separate_processes():
    params = ProtocolParams(
        tuple(f"p{i}" for i in range(4)), 1, mechanism="vcg", groups=2, phase_timeout=5.0
    )
    with LocalCluster(params) as c:
        for r in range(2):
            bids = standard_auction_bids(r, 14, 6)
            result = c.run_round(r, bids, timeout=60)
            assert result.ok, result.reason
            assert result.outcome == instance_for("vcg").centralized(bids, 0)


def test_provider_command_refuses_bad_setups(tmp_path):
    runner = CliRunner()
    out = runner.invoke(
        app, ["auctioneer", "init", "--providers", "3", "--k", "1", "--out", str(tmp_path)]
    )
    assert out.exit_code == 0, out.output
    peers = tmp_path / "peers.toml"

    def error(*args):
        out = runner.invoke(app, ["provider", *map(str, args)])
        assert out.exit_code == 2
        return " ".join(out.output.split())

    assert "provider 'p9' is not in the peers file" in error("--id", "p9", "--peers", peers)
    (tmp_path / "p2.key").write_text((tmp_path / "p1.key").read_text())
    assert "does not match" in error("--id", "p2", "--peers", peers)
    assert "needs m > 2k" in error("--id", "p1", "--peers", peers, "--k", "2")
    assert "does not exist" in error("--id", "p1", "--peers", tmp_path / "none.toml")


@pytest.mark.slow
def test_a_scheduled_auction_over_tcp_takes_bids_by_the_clock():
    """Rounds open by the schedule (what `mercat auctioneer init` writes): `mercat bid`
    without --round waits for the next round to open, bids in it and gets its outcome."""
    start = float(int(time.time()))
    params = ProtocolParams(
        ("p1", "p2", "p3"), 1, schedule_start=start, round_seconds=3.0, bid_window=2.0,
        phase_timeout=PHASE,
    )  # fmt: skip
    with LocalCluster(params, sealed=False) as scheduled:
        assert not scheduled.peers.sealing_clients
        out = CliRunner().invoke(
            app, ["bid", "--peers", str(scheduled.peers_path), "--json",
                  "--bid", "u1:buy:1.2:1", "--bid", "s1:sell:0.5:1"],
        )  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["outcome"] == "ok", data["reason"]
    assert data["round"] >= 0 and data["your_bids"]["u1"]["allocated"] == 0.0  # no trade
    assert data["providers_answered"] == ["p1", "p2", "p3"]


@pytest.mark.slow
def test_a_provider_busy_computing_stops_promptly_on_sigterm():
    # A VCG round of 125 users keeps every provider busy for many seconds in a worker
    # thread; SIGTERM (also what a provider gets when its launcher dies) must still end it,
    # and closing the cluster must not wait for the computation either.
    import asyncio
    import threading

    from mercat.auctioneer.client import BidderClient

    params = ProtocolParams(
        ("p1", "p2", "p3"), 1, mechanism="vcg", groups=1, phase_timeout=60.0, task_timeout=120.0
    )

    async def one_round(cluster: LocalCluster) -> None:
        client = BidderClient(cluster.peers, cluster.client_key)
        try:
            await client.run_round(1, standard_auction_bids(0, 125, 8), 8.0)
        finally:
            await client.aclose()

    with LocalCluster(params) as c:
        sender = threading.Thread(target=lambda: asyncio.run(one_round(c)), daemon=True)
        sender.start()
        time.sleep(4.0)  # bids agreed, the allocation and payments are being computed
        process = c.processes["p1"]
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        assert time.monotonic() - started < 30.0  # not the payments' 120 s task timeout
        sender.join(timeout=15)
        closing = time.monotonic()
    assert time.monotonic() - closing < 30.0  # the busy p2, p3 stop within their grace too
