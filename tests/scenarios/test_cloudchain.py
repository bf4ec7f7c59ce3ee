"""Seed 002's 30-day marketplace through the round pipeline: the book audits, tokens and work
add up, the premium tier, the collective rule on SLA violations, the oracle quorum (signed
and not, the same verdicts), Jain's index and its controls, bad input, the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from mercat.errors import InvalidParameterError, UnknownNameError
from mercat.runtime.terms import RequestTerms
from mercat.scenarios.cloudchain import PREMIUM, RESOURCE, job_terms, simulate
from mercat.scenarios.cloudchain_config import (
    UNIT,
    CloudChainConfig,
    Provider,
    RequesterGroup,
    default_providers,
)
from mercat.scenarios.cloudchain_metrics import jain, jain_of_shares

SMALL = CloudChainConfig(requesters=40, days=2)
ONE_GROUP = (RequesterGroup("all", 1.0, 0.5, 6.0, 2.0, 5.0, 0.4, 6),)


@pytest.fixture(scope="module")
def run():
    return simulate(SMALL, seed=3)


def test_the_same_seed_gives_the_same_run(run):
    again = simulate(SMALL, seed=3)
    assert np.array_equal(run.earned, again.earned)
    assert np.array_equal(run.served, again.served)
    assert run.audit == again.audit
    other = simulate(SMALL, seed=4)
    assert not np.array_equal(run.served, other.served)


def _cli_json(*args: str, hash_seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-m", "mercat.cli", "simulate", "cloudchain", "--json", *args],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)


@pytest.mark.slow
def test_a_run_does_not_depend_on_string_hashing():
    # Python salts string hashes per process: a run must never iterate a set of request ids.
    args = ("--days", "1", "--requesters", "30")
    assert _cli_json(*args, hash_seed="1") == _cli_json(*args, hash_seed="2")


def test_the_book_audits_and_the_supply_is_what_was_deposited(run):
    audit = run.audit
    assert audit["verified"] is True
    assert audit["supply_now"] == audit["supply_deposited"]
    assert sum(audit["by_role"].values()) == pytest.approx(audit["supply_now"], abs=1e-3)
    assert audit["by_role"]["tasks_held"] == 0  # every task of every round settled
    assert audit["by_role"]["operator"] == 0  # the auctions' margins go to the pool


def test_requesters_buy_the_tokens_their_jobs_escrow():
    rich = (RequesterGroup("rich", 1.0, 0.5, 40.0, 4000.0, 5000.0, 0.0, 3),)
    result = simulate(CloudChainConfig(requesters=4, days=1, groups=rich), seed=1)
    audit = result.audit
    assert audit["supply_deposited"] > 4 * 10**4 + 10**6  # topped up beyond the first deposit
    assert audit["supply_now"] == audit["supply_deposited"] and result.jobs_completed > 0


def test_every_token_is_accounted_for(run):
    # Requesters pay for paid tasks; providers receive payouts; the pool keeps the auctions'
    # margins, pays the collective rewards and receives the penalties (eq. 2's λ·R).
    pool_change = run.audit["by_role"]["pool"] - 10**6
    assert pool_change == pytest.approx(
        run.paid.sum() - run.earned.sum() - run.stake_change.sum(), abs=1e-3
    )
    assert run.paid.sum() >= run.earned.sum()  # budget balanced: margins are never negative
    assert run.tokens.sum() == pytest.approx(run.earned.sum() + run.stake_change.sum())


def test_work_is_neither_lost_nor_invented(run):
    assert np.all(run.served <= run.demanded + 1e-9)
    # Served counts whole GPU-minutes per request; delivered sums the tasks' exact parts.
    assert run.delivered.sum() == pytest.approx(run.served.sum(), abs=run.tasks / 60)
    assert run.hourly_gpu_hours.sum() == pytest.approx(run.served.sum())
    assert np.all(run.allocated <= run.offered + 1e-9)
    assert np.all(run.delivered <= run.allocated + 1e-9)
    jobs = run.jobs_completed + run.jobs_expired + run.jobs_dropped_by_control + run.jobs_waiting
    assert jobs == run.jobs_submitted
    assert run.tasks_paid <= run.tasks and run.jobs_completed > 0


def test_premium_work_goes_only_to_premium_providers():
    providers = (
        Provider("reliable", 64, 3.0, 0.0, 0.0, True),
        Provider("reliable too", 64, 3.2, 0.0, 0.0, True),
        Provider("cheap but flaky", 400, 0.5, 0.05, 0.05, True),  # 50 servers of 8 GPUs
    )
    premium = (replace(ONE_GROUP[0], premium_share=1.0),)
    cfg = CloudChainConfig(requesters=20, days=1, groups=premium, providers=providers)
    only_premium = simulate(cfg, seed=0)
    assert only_premium.allocated[2] == 0.0 and only_premium.allocated[:2].sum() > 0
    open_market = simulate(replace(cfg, groups=(replace(premium[0], premium_share=0.0),)), 0)
    assert open_market.allocated[2] > open_market.allocated[:2].sum()  # cheapest first


def test_perfect_providers_and_honest_oracles_meet_every_sla():
    perfect = tuple(replace(p, failure=0.0, violation=0.0) for p in default_providers(5))
    result = simulate(
        CloudChainConfig(requesters=20, days=1, oracle_error=0.0, providers=perfect), seed=1
    )
    assert result.sla_compliance == 1.0 == result.sla_compliance_true
    assert np.all(result.stake_change >= 0) and not result.removed


def test_a_late_task_pays_nothing_and_costs_its_server_the_penalty():
    # Failures and SLA violations settle alike: no payout, the charge back to the escrow,
    # and the collective rule takes P = λ·n from the server's stake (eq. 2's λ_i·R_i).
    late = tuple(replace(p, failure=0.0, violation=0.3) for p in default_providers(5))
    cfg = CloudChainConfig(requesters=20, days=1, oracle_error=0.0, providers=late, stake=500.0)
    result = simulate(cfg, seed=1)
    unpaid = result.tasks - result.tasks_paid
    assert unpaid > 0 and result.tasks_on_time == result.tasks_paid
    rule = cfg.integer_rule
    assert rule.penalty == round(cfg.penalty_factor * cfg.oracles * UNIT)
    # coll-stake does not clamp, and a stake of 500 is not spent in a day (no removal, after
    # which a server's tasks in the same batch move nothing): every task moves its server's
    # stake by exactly R or -P.
    assert not result.removed
    expected = (rule.reward * result.tasks_paid - rule.penalty * unpaid) / UNIT
    assert result.stake_change.sum() == pytest.approx(expected, abs=1e-6)


def test_free_moves_no_stake_and_coll_stake_removes_what_fails_often():
    flaky = (
        Provider("steady", 256, 2.0, 0.0, 0.0, True),
        Provider("flaky", 24, 1.0, 0.5, 0.0, False),
    )
    cfg = CloudChainConfig(requesters=20, days=2, groups=ONE_GROUP, providers=flaky, stake=10.0)
    free = simulate(replace(cfg, mechanism="free"), seed=2)
    assert np.all(free.stake_change == 0) and not free.removed
    removing = simulate(cfg, seed=2)
    assert [owner for _, owner, _ in removing.removed] == ["flaky"]
    (_, _, when) = removing.removed[0]
    assert removing.offered[1] == 24 * when  # offered until the round it was removed
    assert removing.allocated[1] < free.allocated[1]


@pytest.mark.parametrize("rule", ["coll-rep", "coll-sr"])
def test_stake_weighted_rules_run_with_admission(rule):
    result = simulate(replace(SMALL, requesters=20, days=1, mechanism=rule), seed=5)
    assert result.audit["verified"] and result.tasks > 0


def test_signed_reports_give_the_same_verdicts_as_the_vectorised_tally():
    cfg = CloudChainConfig(requesters=12, days=1, oracle_error=0.2)
    plain = simulate(cfg, seed=6)
    signed = simulate(replace(cfg, signed_reports=True), seed=6)
    assert plain.tasks == signed.tasks and plain.overturned == signed.overturned > 0
    assert np.array_equal(plain.earned, signed.earned)
    assert plain.audit == signed.audit


def test_the_verdict_rule_is_the_oracle_quorum_tally():
    from mercat.errors import QuorumNotReachedError
    from mercat.oracle import OracleReport, SignedReport
    from mercat.oracle.quorum import QuorumRule, tally
    from mercat.scenarios.cloudchain_oracles import NO_QUORUM, OUTCOMES, oracle_keys, verdicts

    keys = oracle_keys(5)
    oracles = [k.public for k in keys]
    as_report = {0: (False, False), 1: (True, False), 2: (True, True)}
    votes = np.random.default_rng(5).integers(0, OUTCOMES, size=(60, 5))
    ours = verdicts(votes, quorum=3)
    for piece, row in enumerate(votes):
        reports = [
            SignedReport.sign(OracleReport(1, f"p{piece}", *as_report[int(v)], 10), key)
            for v, key in zip(row, keys, strict=True)
        ]
        try:
            verdict = tally(reports, oracles, QuorumRule(3))
            expected = {(False, False): 0, (True, False): 1, (True, True): 2}[
                (verdict.success, verdict.sla_met)
            ]
        except QuorumNotReachedError:
            expected = NO_QUORUM
        assert ours[piece] == expected


def test_a_dishonest_minority_of_oracles_rarely_changes_the_verdict():
    honest = simulate(CloudChainConfig(requesters=20, days=2, oracle_error=0.0), seed=4)
    noisy = simulate(CloudChainConfig(requesters=20, days=2, oracle_error=0.02), seed=4)
    # A 3-of-5 quorum with 2 % oracle error flips about 0.08 % of verdicts.
    assert honest.overturned == 0 and noisy.overturned <= 0.005 * noisy.tasks
    assert abs(noisy.sla_compliance - honest.sla_compliance) < 0.01


# --- fairness ---------------------------------------------------------------------------


def test_jain_index():
    assert jain(np.ones(7)) == pytest.approx(1.0)
    assert jain(np.array([1.0, 0, 0, 0])) == pytest.approx(0.25)
    assert jain(np.array([1.0, 3.0]), np.array([True, False])) == pytest.approx(1.0)
    assert np.isnan(jain(np.zeros(3)))


def test_jain_of_served_shares_is_blind_to_scale_and_sees_one_group_served_less():
    demanded = np.array([100.0, 300.0, 50.0])
    served = np.array([90.0, 240.0, 45.0])
    fair = jain_of_shares(served, demanded)
    assert jain_of_shares(0.5 * served, demanded) == pytest.approx(fair)  # all alike
    assert jain_of_shares(served * [1, 1, 0.5], demanded) < fair - 0.03  # one group less
    assert jain_of_shares(served, np.array([100.0, 300.0, 0.0])) == pytest.approx(
        jain(np.array([0.9, 0.8]))
    )  # a group that asked for nothing is left out


@pytest.mark.slow
def test_dropping_one_groups_jobs_scores_lower_and_dropping_at_random_does_not():
    cfg = CloudChainConfig(requesters=60, days=3)
    market = simulate(cfg, seed=7)
    at_random = simulate(replace(cfg, drop="random", drop_probability=0.5), seed=7)
    one_group = simulate(
        replace(cfg, drop="group", drop_group="independents", drop_probability=0.5), seed=7
    )
    assert at_random.jobs_dropped_by_control > 0.4 * at_random.jobs_submitted
    assert abs(at_random.jain_groups - market.jain_groups) < 0.02
    assert one_group.jain_groups < market.jain_groups - 0.05
    assert one_group.jain_requesters < market.jain_requesters - 0.03


def test_groups_differ_in_size_and_share_the_requesters():
    cfg = CloudChainConfig(requesters=100)
    assert cfg.group_sizes == (10, 30, 60)
    for n in (3, 4, 7, 10, 301):
        sizes = CloudChainConfig(requesters=n).group_sizes
        assert sum(sizes) == n and min(sizes) >= 1
    assert CloudChainConfig(requesters=3).group_sizes == (1, 1, 1)


# --- utilization ------------------------------------------------------------------------


def test_utilization_by_capacity_and_mean_over_providers(run):
    per_provider = run.allocated / run.offered
    assert run.utilization_mean_over_providers == pytest.approx(per_provider.mean())
    assert run.utilization_by_capacity == pytest.approx(run.allocated.sum() / run.offered.sum())
    # Small community nodes are cheap and busy, large clouds idle: the unweighted mean is
    # the larger of the two here.
    assert run.utilization_mean_over_providers > run.utilization_by_capacity


# --- inputs -----------------------------------------------------------------------------


def test_the_fast_job_terms_equal_validated_terms():
    for premium in (False, True):
        workload = PREMIUM if premium else "open"
        template = RequestTerms("template", max_price=1, demand={RESOURCE: 1},
                                workload=workload, deadline_ms=60_000)  # fmt: skip
        for request, price, minutes, expires in (("j1", 7, 60, 3), ("j123.4", 10**12, 1, 9)):
            fast = job_terms(template, request, price, minutes, expires)
            slow = RequestTerms(request, max_price=price, demand={RESOURCE: minutes},
                                workload=workload, deadline_ms=60_000, expires=expires)  # fmt: skip
            assert fast == slow and hash(fast) == hash(slow)
            assert fast.to_wire() == slow.to_wire()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requesters": 0}, "requesters"),
        ({"requesters": 2}, "at least as many requesters"),
        ({"quorum": 6}, "quorum"),
        ({"quorum": 2}, "majority"),
        ({"days": 10**6}, "rounds"),
        ({"oracle_error": 1.5}, "oracle_error"),
        ({"mechanism": "blame"}, "mechanism"),
        ({"target": 1.0}, "target"),
        ({"stake": 2.0}, "removal level"),
        ({"penalty_factor": 0}, "penalty_factor"),
        ({"drop": "some"}, "drop"),
        ({"drop": "group", "drop_group": "nobody"}, "drop_group"),
        ({"drop_probability": -0.1}, "drop_probability"),
        ({"groups": ()}, "at least one requester group"),
        ({"groups": (ONE_GROUP[0], ONE_GROUP[0])}, "unique"),
        ({"groups": (replace(ONE_GROUP[0], name="Bad Name"),)}, "group name"),
        ({"groups": (replace(ONE_GROUP[0], value_high=1.0),)}, "value_high"),
        ({"groups": (replace(ONE_GROUP[0], jobs_per_hour=1e6),)}, "arrivals"),
        ({"groups": (replace(ONE_GROUP[0], patience=0),)}, "patience"),
        ({"groups": (replace(ONE_GROUP[0], sigma=4.0),)}, "sigma"),
        ({"groups": (replace(ONE_GROUP[0], value_high=1e5),)}, "value_high above"),
        ({"groups": (replace(ONE_GROUP[0], mean_gpu_hours=1e5),)}, "mean_gpu_hours"),
        ({"groups": (replace(ONE_GROUP[0], jobs_per_hour=50.0, patience=5000),)}, "waiting"),
        ({"stake": 1e12}, "stake above"),
        ({"providers": ()}, "at least one provider"),
        ({"providers": (Provider("x", 1, 1, 0, 0, False),) * 2}, "unique"),
        ({"providers": (Provider("x", 0, 1, 0, 0, False),)}, "gpus"),
        ({"providers": (Provider("x", 8, 0, 0, 0, False),)}, "cost"),
        ({"providers": (Provider("x", 8, 1e5, 0, 0, False),)}, "cost above"),
        ({"providers": (Provider("x", 1, 1, 1.0, 0, False),)}, "probability 1"),
    ],
)
def test_bad_configurations_are_refused(kwargs, message):
    with pytest.raises((InvalidParameterError, UnknownNameError), match=message):
        CloudChainConfig(**kwargs)


def test_the_command_prints_the_run_and_its_audit_as_json():
    from typer.testing import CliRunner

    from mercat.cli import app

    out = CliRunner().invoke(
        app, ["simulate", "cloudchain", "--days", "1", "--requesters", "20", "--json"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["summary"]["jobs_completed"] > 0
    assert len(data["tokens"]) == len(data["providers"]) == 28
    assert [g["group"] for g in data["groups"]] == ["labs", "startups", "independents"]
    assert data["audit"]["verified"] is True
    for bad, word in (
        (["--community", "-1"], "community"),
        (["--collective", "blame"], "'blame' is not one of"),
        (["--drop", "group", "--drop-group", "x", "--drop-probability", "0.5"], "drop_group"),
    ):
        refused = CliRunner().invoke(app, ["simulate", "cloudchain", *bad])
        assert refused.exit_code == 2 and "error:" in refused.output and word in refused.output


@pytest.mark.slow
def test_the_experiment_reports_figures_3_to_5_with_controls(tmp_path, monkeypatch):
    from mercat.report.experiments import ExperimentContext, get
    from mercat.scenarios import experiments_cloudchain as exp

    monkeypatch.setattr(exp, "REQUESTERS", (10, 20))
    monkeypatch.setattr(exp, "TOKENS_AT", 20)
    monkeypatch.setattr(exp, "CONTROLS_AT", 20)
    monkeypatch.setattr(exp, "VARIANTS", ("free", "coll-stake"))
    monkeypatch.setattr(exp, "QUICK_DAYS", 1)
    monkeypatch.setattr(exp, "WORKERS", 1)
    context = ExperimentContext(tmp_path, quick=True, runs=1, show_progress=False)
    section = get("seed002-cloudchain").run(context)
    assert (tmp_path / "seed002_cloudchain.png").exists()
    by_n, controls, rules, tokens = section.tables
    assert [row[0] for row in by_n.rows] == [10, 20]
    assert [row[0] for row in controls.rows] == [label for label, _ in exp.CONTROLS]
    assert [row[0] for row in rules.rows] == ["free", "coll-stake"]
    assert len(tokens.rows) == 28
    assert 0 < section.facts["jain_groups"]["20"] <= 1
    # The market's row among the controls is the sweep's run at the same size.
    assert controls.rows[0][1] == pytest.approx(by_n.rows[1][3])
    # Labels come from the run: a 1-day run never says "30 days" as if it ran them.
    assert "1-day" in section.title and "30-day" not in section.title
    assert "30 days" not in tokens.title and "1 days" in tokens.title
    assert section.paper == "002" and [c.source for c in section.claims] == [
        "Fig. 3", "Fig. 4", "Fig. 5"
    ]  # fmt: skip


def test_a_run_collects_garbage_less_often_and_restores_the_setting():
    import gc

    from mercat.runtime import collector

    before = gc.get_threshold()
    seen = []
    simulate(CloudChainConfig(requesters=4, days=1), seed=1, progress=lambda _: seen.append(
        (gc.get_threshold(), gc.get_freeze_count())))  # fmt: skip
    assert seen and all(t[0] == max(before[0], collector.FIRST_THRESHOLD) for t, _ in seen)
    assert all(frozen > 0 for _, frozen in seen)  # the objects alive before the run
    assert seen[0][0][1:] == before[1:] and gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
