"""The seed002-storage experiment on small objects: tables, facts and files."""

from mercat.report.experiments import ExperimentContext, get
from mercat.storage import experiments


def test_the_experiment_measures_both_platforms_and_fits_eq_1(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "QUICK_SIZES", (1_000_000, 4_000_000, 16_000_000))
    context = ExperimentContext(tmp_path, quick=True, runs=1, show_progress=False)
    section = get("seed002-storage").run(context)
    assert (tmp_path / "seed002_storage.csv").exists()
    assert (tmp_path / "seed002_storage.png").exists()
    assert [r[:2] for r in section.tables[0].rows] == [
        (name, size) for name in ("mercat store", "3 replicas") for size in (1.0, 4.0, 16.0)
    ]
    for name in ("mercat store", "3 replicas"):
        assert section.facts[name]["write_MBps"] > 0
        assert section.facts[name]["T_c_seconds"] >= 0
    # Fig. 2's platforms are absent here: that claim cannot be decided, never "holds".
    fig2, eq1 = section.claims
    assert section.paper == "002" and fig2.verdict == "not measurable"
    assert eq1.source == "eq. 1" and "R² read" in eq1.reproduced
