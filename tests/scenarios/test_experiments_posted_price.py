"""`mercat reproduce seed001` end to end on one random market of each kind: the running
example's claims hold, and the files and facts the report promises are written."""

import csv
import json

from typer.testing import CliRunner

from mercat.cli import app


def test_seed001_writes_its_section(tmp_path):
    out = CliRunner().invoke(
        app, ["reproduce", "seed001", "--quick", "--runs", "1", "--out", str(tmp_path), "--json"]
    )
    assert out.exit_code == 0, out.output
    facts = json.loads(out.stdout)["experiments"]["seed001"]
    assert facts["running_example_claims_hold"]
    assert facts["attempt4_zero_margin_equilibria"] == ["α1"]
    assert facts["random_markets"] == 1 and facts["within_1pct"] == 1
    assert facts["all_ir"] and facts["all_converged"] and facts["margin_above_bound"] == 0
    folder = tmp_path / "seed001"
    # The report's claims: one per running-example dynamics, and attempt 4's convergence.
    saved = json.loads((folder / "section.json").read_text())
    assert saved["paper"] == "001"
    assert [c["verdict"] for c in saved["claims"]] == ["holds"] * 9
    assert saved["claims"][-1]["source"] == "attempt 4, final claim"
    for name in (
        "running_example.csv",
        "equilibria.csv",
        "attempt4_ticks.csv",
        "random_markets.csv",
        "noisy_makers.csv",
        "running_example_margins.png",
        "random_markets.png",
    ):
        assert (folder / name).stat().st_size > 0, name
    with (folder / "running_example.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["attempt"], r["holds"]) for r in rows] == [
        (str(a), "yes") for a in (1, 2, 2, 2, 3, 4, 4, 4)
    ]
    with (folder / "equilibria.csv").open() as handle:
        eq = {r["current best (zero margin)"]: r for r in csv.DictReader(handle)}
    assert all(r["attempt 2"] == "equilibrium" for r in eq.values())
    assert all(r["attempt 3"] == "a maker deviates" for r in eq.values())
    assert "Seed 001: posted prices" in (tmp_path / "index.html").read_text(encoding="utf-8")
