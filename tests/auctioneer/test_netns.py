"""Providers in separate network namespaces: every message crosses veth pairs and a
bridge (a real network stack: ARP, IP, TCP), not loopback."""

import subprocess

import pytest

from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.instances import instance_for
from mercat.auctioneer.local import LocalCluster
from mercat.auctioneer.workloads import double_auction_bids

from .netns import VirtualNetwork, available

REASON = available()


@pytest.mark.skipif(REASON is not None, reason=f"no network namespaces here: {REASON}")
def test_rounds_across_network_namespaces():
    params = ProtocolParams(("p1", "p2", "p3"), 1, phase_timeout=3.0, bid_window=2.0)
    with VirtualNetwork(hosts=3) as net:
        index = {p: i for i, p in enumerate(params.providers)}
        with LocalCluster(
            params,
            hosts=[net.address(i) for i in range(3)],
            commands=lambda provider, command: net.wrap(index[provider], command),
        ) as cluster:
            # each provider is in its own namespace, with only its veth address
            for i in range(3):
                shown = subprocess.run(
                    net.wrap(i, ["ip", "-o", "-4", "addr", "show"]),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                assert net.address(i) in shown and "127.0.0.1" in shown
                others = [net.address(j) for j in range(3) if j != i]
                assert not any(a in shown for a in others)
            for r in range(2):
                bids = double_auction_bids(r, 100, 8)
                result = cluster.run_round(r, bids, timeout=30)
                assert result.ok, result.reason
                assert result.outcome == instance_for("double").centralized(bids, 0)
