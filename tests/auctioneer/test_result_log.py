"""The provider's result log: finished rounds survive a crash, and a restarted provider
answers a client that asks again with what it output before."""

import json
import signal

import pytest
from typer.testing import CliRunner

from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.instances import double_auction_outcome
from mercat.auctioneer.local import LocalCluster
from mercat.auctioneer.result_log import ResultLog
from mercat.auctioneer.round import RoundResult
from mercat.auctioneer.workloads import double_auction_bids
from mercat.cli import app
from mercat.errors import AuctioneerConfigError
from tests.ledger.conftest import pg_url, postgres  # noqa: F401 - fixtures: a PG server


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request, tmp_path) -> str:
    """SQLite by default, PostgreSQL for scale: the log runs once on each."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/r.db"
    return request.getfixturevalue("pg_url")


def test_records_round_trip_and_the_first_record_stands(log_url):
    bids = double_auction_bids(1, 40, 4)
    outcome = double_auction_outcome(bids, coin_seed=7)
    delivered = RoundResult(
        3,
        outcome,
        "",
        bids,
        coin=2**255 + 11,
        seconds=0.25,
        phases=(("bids", 0.1), ("outcome", 0.3)),
    )
    bottom = RoundResult(4, None, "timeout: no commit from p2", seconds=5.0)
    with ResultLog(log_url) as log:
        assert log.record("p1", delivered) and log.record("p1", bottom)
        assert not log.record("p1", RoundResult(3, None, "a second try"))  # ignored
        assert log.record("p2", bottom)  # another provider's row
        got = log.get("p1", 3)
        assert got is not None and got.ok and got.coin == 2**255 + 11
        again = got.result()
        assert again.outcome == outcome and again.coin == delivered.coin
        assert again.agreed is None and again.seconds == 0.25  # bids are not kept
        assert again.phases == (("bids", 0.1), ("outcome", 0.3))
        assert log.get("p1", 4).result().reason == "timeout: no commit from p2"
        assert log.get("p1", 5) is None and log.get("p3", 3) is None
        assert [(r.provider, r.round) for r in log.rounds()] == [("p1", 4), ("p2", 4), ("p1", 3)]
        assert [r.round for r in log.rounds(provider="p1", limit=1)] == [4]
        assert [r.provider for r in log.rounds(round_id=4)] == ["p1", "p2"]
    with ResultLog(log_url) as reopened:  # on disk, not in memory
        assert reopened.get("p1", 3).result().outcome == outcome


def test_the_log_keeps_the_latest_rounds_it_is_asked_to(log_url, tmp_path, monkeypatch):
    from mercat.auctioneer import result_log

    monkeypatch.setattr(result_log, "PRUNE_EVERY", 4)
    with ResultLog(log_url, keep=3) as log:
        for r in range(10):
            log.record("p1", RoundResult(r, None, f"round {r}"))
            log.record("p2", RoundResult(r, None, f"round {r}"))
        kept = {(row.provider, row.round) for row in log.rounds(limit=100)}
        # 20 records, pruned after every 4th: the last prune (after p2's round 9) left
        # each provider's 3 newest
        assert kept == {(p, r) for p in ("p1", "p2") for r in (7, 8, 9)}
        log.record("p1", RoundResult(10, None, "round 10"))
        assert log.prune() == 1 and [row.round for row in log.rounds("p1")] == [10, 9, 8]
        assert [row.round for row in log.rounds("p2")] == [9, 8, 7]
    with pytest.raises(AuctioneerConfigError, match="keep must be an integer >= 1"):
        ResultLog(f"sqlite:///{tmp_path}/r.db", keep=0)


def test_a_bad_log_url_is_refused(tmp_path):
    with pytest.raises(AuctioneerConfigError, match="result log 'nope' cannot be opened"):
        ResultLog("nope")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 200)
    with pytest.raises(
        AuctioneerConfigError, match=r"cannot open the result log .*: file is not a database"
    ):
        ResultLog(f"sqlite:///{notes}")


def test_a_restarted_provider_answers_a_finished_round_from_its_log():
    # Round 0 delivers; p3 is killed and restarted (its memory is gone); the client asks
    # round 0 again: every provider answers with the outcome it output, p3 from its log.
    # Without the log p3 would open round 0 anew, alone, and the client would see ⊥.
    params = ProtocolParams(("p1", "p2", "p3"), 1, bid_window=1.0, phase_timeout=1.0)
    bids = double_auction_bids(3, 80, 8)
    with LocalCluster(params) as cluster:
        first = cluster.run_round(0, bids, timeout=20)
        assert first.ok, first.reason
        cluster.stop_provider("p3", signal.SIGKILL)
        cluster.start_provider("p3")
        cluster.wait_ready(["p3"])
        again = cluster.run_round(0, bids, timeout=20)
        assert again.ok, again.reason
        assert again.outcome == first.outcome and set(again.results) == {"p1", "p2", "p3"}
        log_url = f"sqlite:///{cluster.workdir}/p3.results.db"
        out = CliRunner().invoke(
            app, ["auctioneer", "results", "--results", log_url, "--round", "0", "--json"]
        )
        assert out.exit_code == 0, out.output
        [row] = json.loads(out.stdout)
        assert row["provider"] == "p3" and row["outcome"] == "ok"
        assert row["digest"] == first.outcome.digest().hex()[:16]
        assert row["payments"] == pytest.approx(first.outcome.payments())
        assert list(row["phases_ms"]) == ["bids", "commit", "reveal", "validate", "outcome"]


def test_results_command_refuses_a_missing_log(tmp_path):
    out = CliRunner().invoke(
        app, ["auctioneer", "results", "--results", f"sqlite:///{tmp_path}/none.db"]
    )
    assert out.exit_code == 2 and "no result log at" in out.output
    assert not (tmp_path / "none.db").exists()
