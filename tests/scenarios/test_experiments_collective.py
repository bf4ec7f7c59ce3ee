"""The seed-000 experiments run end to end (small sizes) and write what they promise."""

import csv
import json
import re

import pytest
from typer.testing import CliRunner

from mercat.cli import app
from mercat.report import experiments as registry


def test_registry_names_are_unique_and_documented():
    known = registry.experiments()
    assert {"fig3", "fig4", "fig5", "table1"} <= set(known)
    for name, exp in known.items():
        assert exp.name == name and exp.title and exp.description


def test_table1_writes_the_promised_columns(tmp_path):
    out = CliRunner().invoke(
        app, ["reproduce", "table1", "--runs", "4", "--out", str(tmp_path), "--json"]
    )
    assert out.exit_code == 0, out.output
    with (tmp_path / "table1" / "table1.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 18
    assert list(rows[0])[:9] == [
        "config", "Nt", "Na", "S0", "alpha", "target", "mechanism",
        "removal_precision_pct", "task_failure_rate_pct",
    ]  # fmt: skip
    assert [r["config"] for r in rows[::2]] == [str(i) for i in range(1, 10)]
    # One experiment's section on the page (beside the claims summary and its paper's part).
    page = (tmp_path / "index.html").read_text()
    assert re.findall(r'<section id="([^"]+)">', page) == ["claims-summary", "table1"]
    assert page.count('<section class="paper"') == 1
    facts = json.loads(out.stdout)["experiments"]["table1"]
    assert facts["runs"] == 4


@pytest.mark.parametrize("name", ["fig4", "fig5"])
def test_figures_are_written(tmp_path, name):
    context = registry.ExperimentContext(out_dir=tmp_path, runs=3, show_progress=False)
    section = registry.run_experiment(name, context)
    for figure in section.figures:
        assert (tmp_path / figure.path).stat().st_size > 10_000
    assert (tmp_path / name / "section.json").exists()
    # Claims of seed 000, each judged on this run's numbers.
    assert section.paper == "000" and len(section.claims) >= 3
    assert {c.paper for c in section.claims} == {"000"}
    assert all(c.reproduced and c.why for c in section.claims)
    if name == "fig4":
        free = section.claims[0]
        low, high = section.facts["free"]["median_range_pct"]
        assert f"{low:.1f}-{high:.1f}%" in free.reproduced
        # Window-100 medians of 0 cannot sit on a log axis: the caption says how many.
        window100 = section.figures[1].caption
        assert "seed's Fig. 4 values are drawn" in window100
        assert "resolution 1/100" in window100 or "No median is 0" in window100


@pytest.mark.slow
def test_fig3_quick(tmp_path):
    context = registry.ExperimentContext(out_dir=tmp_path, quick=True, show_progress=False)
    section = registry.run_experiment("fig3", context)
    # 95% intervals: 7 of 7 is likely, fewer than 5 has probability below 0.004
    assert sum(v["monte_carlo_in_ci"] for v in section.facts.values()) >= 5
    below = [section.facts[f"F={f}"]["log_slope_per_x"] for f in (0.1, 0.15, 0.19)]
    assert below[0] < below[1] < below[2] < 0  # steeper the further below the target
    assert [c.verdict for c in section.claims] == ["holds", "holds", "holds"]
    assert "diffusion" in section.figures[0].caption


def test_the_engine_option_reaches_seed_000s_simulations(tmp_path):
    # The reference engine draws the fast engine's runs event for event: same CSV, and the
    # page says which engine drew them.
    written = {}
    for engine in ("fast", "reference"):
        out = tmp_path / engine
        result = CliRunner().invoke(
            app,
            ["reproduce", "fig5", "--runs", "2", "--out", str(out), "--json", "--engine", engine],
        )
        assert result.exit_code == 0, result.output
        written[engine] = (out / "fig5" / "fig5.csv").read_text()
        page = (out / "index.html").read_text()
        assert f"(the {engine} engine)" in page
        assert ("--engine reference" in page) == (engine == "reference")
    assert written["fast"] == written["reference"]


def test_the_gpu_engine_without_a_gpu_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    from mercat.scenarios import collective_gpu

    reason = "the gpu engine needs a CUDA GPU (numba-cuda found none); use --engine fast"
    monkeypatch.setattr(collective_gpu, "unavailable_reason", lambda: reason)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["reproduce", "table1", "--engine", "gpu", "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {reason}"
    assert not out.exists()
