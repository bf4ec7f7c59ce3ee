"""The seed002-privacy experiment on a small federation: its tables, facts and files."""

from mercat.privacy import experiments
from mercat.report.experiments import ExperimentContext, get


def test_the_experiment_writes_its_table_figure_and_facts(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "CLIENTS", 80)
    monkeypatch.setattr(experiments, "NOISE_MULTIPLIERS", (1.0, 3.0))
    context = ExperimentContext(tmp_path, quick=True, runs=1, show_progress=False)
    section = get("seed002-privacy").run(context)
    assert (tmp_path / "seed002_privacy.csv").exists()
    assert (tmp_path / "seed002_privacy.png").exists()
    rows = section.tables[0].rows
    assert [(r[0], r[1]) for r in rows] == [
        ("none", 0.0),
        ("central", 1.0),
        ("central", 3.0),
        ("local", 1.0),
        ("local", 3.0),
        ("example", 1.0),
        ("example", 3.0),
    ]
    # more noise spends less privacy, and local noise spends more than central at equal z
    eps = {(r[0], r[1]): r[4] for r in rows}
    assert eps[("central", 3.0)] < eps[("central", 1.0)] < eps[("local", 1.0)]
    assert section.facts["pld_minus_exact_max"] < 1e-3
    assert "Fig. 6" in section.summary
    (overhead,) = section.claims
    assert section.paper == "002" and overhead.source == "Fig. 6"
    assert overhead.published == "+15-20%" and "central" in overhead.reproduced
    assert "(seed 002, Fig. 6)" in section.figures[0].caption
