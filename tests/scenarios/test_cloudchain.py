"""Seed 002's 30-day marketplace: accounting that adds up, the premium tier, the oracle
quorum, and Jain's index."""

from dataclasses import replace

import numpy as np
import pytest

from mercat.errors import InvalidParameterError
from mercat.scenarios.cloudchain import (
    CloudChainConfig,
    Provider,
    default_providers,
    jain,
    simulate,
)


@pytest.fixture(scope="module")
def week():
    return simulate(CloudChainConfig(requesters=60, days=7), seed=3)


def test_the_same_seed_gives_the_same_run(week):
    again = simulate(CloudChainConfig(requesters=60, days=7), seed=3)
    assert np.array_equal(week.tokens, again.tokens)
    assert week.jobs_completed == again.jobs_completed


def test_every_token_is_accounted_for(week):
    # Requesters pay the buyer price, providers earn the seller price, the auction keeps the
    # difference: paid = earned + margin, to float rounding; penalties leave the providers'
    # earnings for the penalty pool.
    earned = week.tokens.sum() + week.penalties.sum()
    assert week.paid.sum() == pytest.approx(earned + week.market_margin, rel=1e-12)
    assert week.market_margin >= 0
    assert week.penalties.sum() > 0


def test_work_is_neither_lost_nor_invented(week):
    assert week.delivered.sum() == pytest.approx(week.served.sum())
    assert np.all(week.served <= week.demanded + 1e-9)
    assert np.all(week.utilization <= 1 + 1e-9)
    assert week.jobs_completed + week.jobs_dropped == week.jobs_submitted


def test_premium_work_goes_only_to_premium_providers():
    providers = (
        Provider("reliable", 50.0, 3.0, 0.0, 0.0, True),
        Provider("cheap but flaky", 500.0, 0.5, 0.05, 0.05, False),
    )
    only_premium = CloudChainConfig(requesters=20, days=2, premium_share=1.0, providers=providers)
    result = simulate(only_premium, seed=0)
    assert result.delivered[1] == 0.0 and result.delivered[0] > 0
    open_market = simulate(replace(only_premium, premium_share=0.0), seed=0)
    assert open_market.delivered[1] > open_market.delivered[0]  # cheapest capacity first


def test_perfect_providers_and_honest_oracles_meet_every_sla_and_pay_no_penalty():
    perfect = tuple(replace(p, failure=0.0, violation=0.0) for p in default_providers(5))
    result = simulate(
        CloudChainConfig(requesters=20, days=2, oracle_error=0.0, providers=perfect), seed=1
    )
    assert result.sla_compliance == 1.0
    assert result.penalties.sum() == 0.0


def test_violations_cost_lambda_per_oracle_report():
    flaky = tuple(replace(p, failure=0.0, violation=0.3) for p in default_providers(5))
    cfg = CloudChainConfig(requesters=20, days=2, oracle_error=0.0, providers=flaky)
    result = simulate(cfg, seed=1)
    violations = result.pieces - result.pieces_sla_met
    assert violations > 0
    assert result.penalties.sum() == pytest.approx(violations * cfg.penalty_factor * cfg.oracles)


def test_the_verdict_rule_is_the_oracle_quorum_tally():
    from mercat.errors import QuorumNotReachedError
    from mercat.ledger import Keypair
    from mercat.oracle import OracleReport, SignedReport
    from mercat.oracle.quorum import QuorumRule, tally
    from mercat.scenarios.cloudchain import NO_QUORUM, OUTCOMES, verdicts

    keys = [Keypair.generate() for _ in range(5)]
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
            verdict = tally(reports, oracles, QuorumRule(3), verify_signatures=False)
            expected = {(False, False): 0, (True, False): 1, (True, True): 2}[
                (verdict.success, verdict.sla_met)
            ]
        except QuorumNotReachedError:
            expected = NO_QUORUM
        assert ours[piece] == expected


def test_a_dishonest_minority_of_oracles_does_not_change_the_verdict():
    honest = simulate(CloudChainConfig(requesters=20, days=2, oracle_error=0.0), seed=4)
    noisy = simulate(CloudChainConfig(requesters=20, days=2, oracle_error=0.02), seed=4)
    # A 3-of-5 quorum with 2 % oracle error flips about 0.08 % of verdicts.
    assert abs(noisy.sla_compliance - honest.sla_compliance) < 0.01


def test_jain_index():
    assert jain(np.ones(7)) == pytest.approx(1.0)
    assert jain(np.array([1.0, 0, 0, 0])) == pytest.approx(0.25)
    assert jain(np.array([1.0, 3.0]), np.array([True, False])) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requesters": 0}, "requesters"),
        ({"quorum": 6}, "quorum"),
        ({"quorum": 2}, "majority"),
        ({"jobs_per_requester_hour": 1e9}, "arrivals"),
        ({"days": 10**6}, "rounds"),
        ({"premium_share": 1.5}, "premium_share"),
        ({"value_low": 3.0, "value_high": 2.0}, "value_high"),
        ({"providers": ()}, "at least one provider"),
        ({"providers": (Provider("x", 1, 1, 0, 0, False),) * 2}, "unique"),
        ({"providers": (Provider("x", 0, 1, 0, 0, False),)}, "capacity"),
        ({"providers": (Provider("x", 1, 1, 1.0, 0, False),)}, "probability 1"),
    ],
)
def test_bad_configurations_are_refused(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        CloudChainConfig(**kwargs)


def test_the_experiment_reports_figures_3_to_5(tmp_path, monkeypatch):
    from mercat.report.experiments import ExperimentContext, get
    from mercat.scenarios import experiments_cloudchain

    monkeypatch.setattr(experiments_cloudchain, "REQUESTERS", (10, 40))
    monkeypatch.setattr(experiments_cloudchain, "TOKENS_AT", 40)
    context = ExperimentContext(tmp_path, quick=True, runs=1, show_progress=False)
    section = get("seed002-cloudchain").run(context)
    assert (tmp_path / "seed002_cloudchain.png").exists()
    assert [row[0] for row in section.tables[0].rows] == [10, 40]
    assert len(section.tables[1].rows) == 28
    assert 0 < section.facts["jain_min"] <= 1


def test_the_command_prints_the_summary_as_json():
    import json

    from typer.testing import CliRunner

    from mercat.cli import app

    out = CliRunner().invoke(app, ["simulate", "cloudchain", "--days", "1", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["summary"]["jobs_completed"] > 0
    assert len(data["tokens"]) == 28
    bad = CliRunner().invoke(app, ["simulate", "cloudchain", "--community", "-1"])
    assert bad.exit_code == 2 and "community" in bad.output


def test_unit_lots_cut_amounts_into_units():
    from mercat.scenarios.cloudchain import unit_lots

    owner, size = unit_lots(np.array([2.5, 1.0, 0.25]))
    assert owner.tolist() == [0, 0, 0, 1, 2]
    assert size.tolist() == [1.0, 1.0, 0.5, 1.0, 0.25]
