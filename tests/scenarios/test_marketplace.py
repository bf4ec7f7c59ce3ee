"""The marketplace scenario and `mercat market run`: every task settles, the books audit,
owners sign their own offers and requests, and the summary adds up."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mercat.clearing import registry
from mercat.cli import app
from mercat.incentives.collective import mechanism as collective_mechanism
from mercat.incentives.integer_rule import IntegerRule
from mercat.ledger import Ledger
from mercat.runtime.memory import MemoryBook
from mercat.scenarios.admission import compare
from mercat.scenarios.marketplace import MarketSetup, build, summary

runner = CliRunner()


def _book():
    rule = IntegerRule.from_collective(
        collective_mechanism("coll-stake").rule(initial_stake=10.0, task_target=0.01), 10**6
    )
    return MemoryBook(rule, unit=10**6, quorum=2)


@pytest.mark.parametrize("mechanism", ["optimal", "collective", "double-auction", "vcg"])
def test_every_task_settles_and_the_book_audits(mechanism):
    book = _book()
    setup = MarketSetup(providers=3, requesters=4, standard_auction=mechanism == "vcg")
    market = build(book, registry.create(mechanism), setup, np.random.default_rng(2), "coll-stake")
    supply = book.supply()
    market.run(4)
    book.verify()
    assert book.supply() == supply
    assert not [t for t in book.tasks.values() if t.status == "open"]
    result = summary(market)
    assert result["tasks"] == sum(len(r.tasks) for r in market.reports) > 0
    assert result["paid"] + result["failed"] == result["tasks"]
    charged = sum(s.charge for r in market.reports for s in r.settlements)
    assert sum(result["spent"].values()) == pytest.approx(charged / 10**6)
    assert len(book.oracles) == 3  # settled under the 2-of-3 quorum of signed reports


def test_failure_prone_servers_are_penalised_more():
    book = _book()
    market = build(book, registry.create("optimal"), MarketSetup(failure_prone=0.5),
                   np.random.default_rng(3), "coll-stake")  # fmt: skip
    market.run(15)
    prone = [a for a, rate in market.reliability.items() if rate >= 0.2]
    steady = [a for a, rate in market.reliability.items() if rate < 0.05]
    assert prone and steady
    mean = lambda assets: np.mean([book.stake_of(a) for a in assets])  # noqa: E731
    assert mean(prone) < mean(steady)


def test_market_run_on_a_sqlite_ledger_signs_audits_and_reports(tmp_path):
    url = f"sqlite:///{tmp_path}/market.db"
    out = runner.invoke(app, ["market", "run", "--ledger", url, "--rounds", "3",
                              "--providers", "2", "--requesters", "3", "--json",
                              "--keys", str(tmp_path / "keys")])  # fmt: skip
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["audit"] == "ok" and result["rounds"] == 3 and result["tasks"] > 0
    with Ledger(url) as ledger:
        report = ledger.verify()
        assert report.ok and report.settled_tasks == result["tasks"]
        signers = {e.signer for e in ledger.journal(limit=10_000)}
        # the operator, 2 providers, 3 requesters and the 3 oracles' relays: owners signed
        assert len(signers) >= 1 + 2 + 3
        assert {t.status for t in ledger.tasks()} == {"settled"}
        offers = ledger.offers()
        assert len(offers) == 2 * 2 + 1  # two servers each and the model
    keys = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert "operator.key" in keys and "provider1.key" in keys
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in (tmp_path / "keys").iterdir())
    verified = runner.invoke(app, ["ledger", "verify", "--ledger", url])
    assert verified.exit_code == 0


def test_market_run_refuses_bad_input_in_one_line():
    out = runner.invoke(app, ["market", "run", "--mechanism", "nope"])
    assert out.exit_code == 2 and "unknown mechanism" in out.output
    out = runner.invoke(app, ["market", "run", "--collective", "nope", "--rounds", "1"])
    assert out.exit_code == 2 and "nope" in out.output


def test_admission_is_measured_seed_for_seed():
    result = compare("collective", "coll-sr", rounds=3, seeds=2,
                     setup=MarketSetup(providers=2, requesters=2))  # fmt: skip
    assert set(result["mean"]) == {"admission", "no_admission"}
    for row in result["runs"]:
        assert row["admission"]["tasks"] > 0 and row["no_admission"]["tasks"] > 0
