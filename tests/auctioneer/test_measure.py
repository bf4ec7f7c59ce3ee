"""The bar arithmetic of the Fig. 4 measurement (no timing: rows are made up)."""

import pytest

from mercat.auctioneer.measure import fig4_bar


def row(executing, k, seconds, busiest_cpu, users=1000):
    return {
        "users": users,
        "executing": executing,
        "k": k,
        "seconds_median": seconds,
        "cpu_seconds_busiest_provider_per_round": busiest_cpu,
    }


def test_the_bar_and_the_cpu_floor_of_a_core_starved_machine():
    # The trusted auctioneer: 2.5 ms a round, 2 ms of it CPU. With 8 providers on 2 cores
    # each doing at least those 2 ms, a round needs >= 8 ms: 3.2x, over the bar whatever
    # the protocol costs; with 3 providers on 16 cores the floor is 0.8x.
    rows = [row(1, 0, 0.0025, 0.002), row(3, 1, 0.005, 0.003), row(8, 3, 0.030, 0.006),
            row(1, 0, 9.0, 9.0, users=100)]  # fmt: skip
    bar = fig4_bar(rows, 1000, cpus=2)
    assert bar["centralized_seconds"] == 0.0025 and bar["cpus"] == 2
    assert bar["k1"]["ratio_to_centralized"] == pytest.approx(2.0) and bar["k1"]["within_2x"]
    assert bar["k3"]["ratio_to_centralized"] == pytest.approx(12.0)
    assert not bar["k3"]["within_2x"] and bar["k3"]["under_1s"]
    assert bar["k3"]["cpu_floor_ratio"] == pytest.approx(3.2)
    assert bar["k1"]["cpu_floor_ratio"] == pytest.approx(1.2)
    assert fig4_bar(rows, 1000, cpus=16)["k1"]["cpu_floor_ratio"] == pytest.approx(0.8)
    assert fig4_bar(rows, 300, cpus=2) == {}  # no trusted auctioneer at that n
