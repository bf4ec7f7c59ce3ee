"""The bar arithmetic of the Fig. 4 measurement (no timing: rows are made up)."""

import pytest

from mercat.auctioneer.measure import cpu_bound_seconds, fig4_bar, fig5_speedups, protocol_cpu


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
    # the busiest provider's CPU over the trusted auctioneer's: 3 ms / 2 ms, 6 ms / 2 ms
    assert bar["k1"]["busiest_cpu_ratio"] == pytest.approx(1.5)
    assert bar["k3"]["busiest_cpu_ratio"] == pytest.approx(3.0)
    assert fig4_bar(rows, 300, cpus=2) == {}  # no trusted auctioneer at that n


def vcg_row(groups, executing, seconds, busiest, total, users=1000):
    return {"users": users, "groups": groups, "executing": executing, "seconds_median": seconds,
            "cpu_seconds_busiest_provider_per_round": busiest,
            "cpu_seconds_all_providers_per_round": total}  # fmt: skip


def test_the_cpu_bound_is_the_spread_work_or_the_busiest_process():
    assert cpu_bound_seconds(8.0, 1.0, 8, 2) == 4.0  # 8 s of work on 2 cores
    assert cpu_bound_seconds(8.0, 5.0, 8, 16) == 5.0  # one process holds 5 s of it
    assert cpu_bound_seconds(6.0, 2.0, 3, 16) == 2.0  # 3 processes use 3 of 16 cores


def test_fig5_speed_ups_and_their_ceiling_on_few_cores():
    # Centralized 14 s. p = 4: 8 providers spent 28 CPU s together, the busiest 4 s: on 2
    # cores no schedule beats 14 s (ceiling 1x), on 16 cores the busiest's 4 s (3.5x).
    rows = [vcg_row(1, 1, 14.0, 14.0, 14.0), vcg_row(4, 8, 16.0, 4.0, 28.0),
            vcg_row(1, 1, 5.0, 5.0, 5.0, users=100)]  # fmt: skip
    out = fig5_speedups(rows, threshold=10.0, cpus=2)
    head = out["headline"]
    assert head["users"] == 1000 and out["cpus"] == 2
    assert head["p4_speedup"] == pytest.approx(14 / 16)
    assert head["p4_cpu_speedup_of_busiest_provider"] == pytest.approx(3.5)
    assert head["p4_speedup_ceiling_on_cpus"] == pytest.approx(1.0)
    wide = fig5_speedups(rows, threshold=10.0, cpus=16)["headline"]
    assert wide["p4_speedup_ceiling_on_cpus"] == pytest.approx(3.5)
    assert fig5_speedups(rows, threshold=20.0, cpus=2)["headline"] is None


def test_the_in_process_protocol_rows_deliver_every_round():
    rows = protocol_cpu(20, rounds=3, configs=((1, 0), (3, 1)), chunk=2)
    # in turns of 2 rounds then 1: every round of every configuration ran and delivered
    assert [(r["executing"], r["k"], r["ok_rounds"]) for r in rows] == [(1, 0, 3), (3, 1, 3)]
    assert rows[0]["cpu_over_trusted"] == 1.0
    assert rows[1]["cpu_over_trusted"] == pytest.approx(
        rows[1]["cpu_seconds_per_provider"] / rows[0]["cpu_seconds_per_provider"]
    )
    without_trusted = protocol_cpu(20, rounds=1, configs=((3, 1),))
    assert without_trusted[0]["cpu_over_trusted"] is None
    # Three providers exchange signed messages one provider does not: more CPU per round.
    assert rows[1]["cpu_seconds_per_round"] > rows[0]["cpu_seconds_per_round"] > 0


def test_a_reference_time_below_the_clock_resolution_gives_no_ratio():
    # The trusted auctioneer's CPU time read 0.0: the floor is not measurable (None), never
    # the 0.00x the summary used to print; wall-time ratios still come out.
    rows = [row(1, 0, 0.0025, 0.0), row(8, 3, 0.030, 0.006)]
    bar = fig4_bar(rows, 1000, cpus=2)
    assert bar["k3"]["cpu_floor_ratio"] is None
    assert bar["k3"]["ratio_to_centralized"] == pytest.approx(12.0)
    vcg = [vcg_row(1, 1, 14.0, 0.0, 0.0), vcg_row(4, 8, 16.0, 0.0, 0.0)]
    head = fig5_speedups(vcg, threshold=10.0, cpus=2)["headline"]
    assert head["p4_cpu_speedup_of_busiest_provider"] is None
    assert head["p4_speedup_ceiling_on_cpus"] is None
    assert head["p4_speedup"] == pytest.approx(14 / 16)


def test_the_summary_says_not_measurable_instead_of_a_zero_ratio():
    from mercat.auctioneer.experiments import _floor_text

    bar = fig4_bar([row(1, 0, 0.0025, 0.0), row(8, 3, 0.030, 0.006)], 1000, cpus=2)
    text = _floor_text(bar, ["k3"])
    assert bar["k3"]["busiest_cpu_ratio"] is None  # 0.0 s of CPU: below the clock's tick
    assert "not measurable" in text and "0.00" not in text
    measured = fig4_bar([row(1, 0, 0.0025, 0.002), row(8, 3, 0.030, 0.006)], 1000, cpus=2)
    assert "3.20× for k3" in _floor_text(measured, ["k3"])
