"""`mercat plot`: every swept value is drawn, and a figure that cannot draw all its data
says what it left out."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mercat.cli import app
from mercat.errors import InvalidParameterError
from mercat.workbench import load, read_scenario, run_sweep
from mercat.workbench import plot as plot_module
from mercat.workbench.plot import plot_results

ECHO = "tests.workbench.sims_for_tests:EchoTotals"


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep of 30 values of one parameter × 2 of another: 60 points, 30 lines a panel."""
    tmp = tmp_path_factory.mktemp("wide")
    hold_from = ", ".join(f"{100.0 + v:.1f}" for v in range(30))
    (tmp / "wide.toml").write_text(
        f"""
[scenario]
name = "wide"
simulation = "{ECHO}"
runs = 2
seed = 4
[grid]
value = [1.0, 2.0]
hold_from = [{hold_from}]
[output]
formats = ["parquet"]
"""
    )
    out = tmp / "out"
    run_sweep(read_scenario(tmp / "wide.toml"), out, workers=1)
    return out


def _drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The figures plot_results draws, by file stem, with their lines, boxes and titles."""
    from mercat.report.plots import plt

    drawn: dict[str, Any] = {}

    def keep(fig: Any, path: Path) -> None:
        axes = fig.axes[0]
        handles, labels = axes.get_legend_handles_labels()
        drawn[path.stem] = {
            "lines": labels,  # errorbar's containers and plot's lines alike
            # an errorbar container's first element is its line
            "colours": [(h[0] if isinstance(h, tuple) else h).get_color() for h in handles],
            "ticks": [t.get_text() for t in axes.get_xticklabels()],
            "title": fig._suptitle.get_text() if fig._suptitle else "",
        }
        plt.close(fig)

    monkeypatch.setattr(plot_module, "_save", keep)
    return drawn


def test_every_swept_value_is_a_line_and_every_point_a_box(wide, tmp_path, monkeypatch):
    drawn = _drawn(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_results(wide, tmp_path / "figs")
    assert [w for w in caught if w.category.__name__ == "PlotWarning"] == []
    # 30 values of hold_from: 30 lines against value, none silently left out
    assert len(drawn["points"]["lines"]) == 30
    assert len(set(drawn["points"]["lines"])) == 30
    assert len(drawn["steps"]["lines"]) == 60  # one per point
    assert len(drawn["runs"]["ticks"]) == 60  # one box per point
    # past 20 lines the colours follow a colour map: still one colour per line
    assert len({tuple(c) for c in drawn["points"]["colours"]}) == 30


def test_a_figure_past_its_limit_says_what_it_left_out(wide, tmp_path, monkeypatch):
    drawn = _drawn(monkeypatch)
    monkeypatch.setattr(plot_module, "MAX_LINES", 25)
    monkeypatch.setattr(plot_module, "MAX_BOXES", 50)
    with pytest.warns(plot_module.PlotWarning) as caught:
        plot_results(wide, tmp_path / "figs")
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3
    assert messages[0].startswith("points.png: drew the first 25 of 30 lines")
    assert messages[1].startswith("runs.png: drew the first 50 of 60 points")
    assert messages[2].startswith("steps.png: drew the first 25 of 60 lines")
    assert all("--where KEY=VALUE" in m and "\n" not in m for m in messages)
    assert len(drawn["points"]["lines"]) == 25
    assert drawn["points"]["title"].endswith("(first 25 of 30 lines)")
    assert drawn["runs"]["title"].endswith("(first 50 of 60 points)")


def test_plot_where_draws_a_subset_and_the_command_prints_warnings(wide, tmp_path, monkeypatch):
    monkeypatch.setattr(plot_module, "MAX_LINES", 25)
    runner = CliRunner()
    figs = tmp_path / "figs"
    result = runner.invoke(app, ["plot", str(wide), "--out", str(figs), "--json"])
    assert result.exit_code == 0, result.output
    assert "warning: points.png: drew the first 25 of 30 lines" in result.stderr
    assert len(json.loads(result.stdout)["warnings"]) == 2  # points and steps, not runs
    drawn = _drawn(monkeypatch)
    monkeypatch.setattr(plot_module, "MAX_LINES", 30)
    result = runner.invoke(app, ["plot", str(wide), "--out", str(figs), "--where", "value=2.0"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    assert len(drawn["steps"]["lines"]) == 30
    assert len(drawn["runs"]["ticks"]) == 30


def test_plot_where_refuses_a_column_or_value_no_point_has(wide, tmp_path):
    figs = tmp_path / "figs"
    with pytest.raises(InvalidParameterError, match=r"--where stake: not a column .*; try value"):
        plot_results(wide, figs, where={"stake": 1.0})
    with pytest.raises(InvalidParameterError, match=r"--where value=7.0: no point has it; "
                                                    r"value: 1.0, 2.0"):  # fmt: skip
        plot_results(wide, figs, where={"value": 7.0})
    result = CliRunner().invoke(app, ["plot", str(wide), "--out", str(figs), "--where", "value"])
    assert result.exit_code == 2
    assert "error: --where must look like KEY=VALUE" in result.output
    assert not figs.exists()
    assert len(load(wide)["points"]) == 60


def test_a_figure_that_cannot_be_written_is_one_error_and_leaves_the_earlier_one(
    wide, tmp_path, monkeypatch
):
    import errno

    from matplotlib.figure import Figure

    figs = tmp_path / "figs"
    plot_results(wide, figs)
    before = {p.name: p.read_bytes() for p in figs.iterdir()}

    def full_disk(fig, where, **kwargs):  # type: ignore[no-untyped-def]
        Path(where).write_bytes(b"\x89PNG half a figure")
        raise OSError(errno.ENOSPC, "No space left on device", str(where))

    monkeypatch.setattr(Figure, "savefig", full_disk)
    result = CliRunner().invoke(app, ["plot", str(wide), "--out", str(figs)])
    assert result.exit_code == 2, result.output
    message = f"error: cannot write figures to {figs}: No space left on device"
    assert result.output.strip() == message
    assert {p.name: p.read_bytes() for p in figs.iterdir()} == before
