"""`mercat reproduce adversaries --quick` runs end to end and writes its table, figure and
section; a cell's gain is the adversary's profit minus its twin's on the same seeds."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from mercat.cli import app
from mercat.scenarios.collective_adversaries import Whitewasher
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_countermeasures import CounterMeasures
from mercat.scenarios.experiments_adversaries import (
    ADVERSARY_NAMES,
    COLUMNS,
    COUNTER_MEASURES,
    MECHANISMS,
    cell,
)


@pytest.mark.slow
def test_reproduce_adversaries_quick_writes_every_cell(tmp_path):
    out = CliRunner().invoke(
        app, ["reproduce", "adversaries", "--quick", "--runs", "1", "--out", str(tmp_path)]
    )
    assert out.exit_code == 0, out.output
    folder = tmp_path / "adversaries"
    with (folder / "adversaries.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == len(ADVERSARY_NAMES) * len(MECHANISMS) * len(COUNTER_MEASURES)
    assert (folder / "adversaries.png").stat().st_size > 1000
    section = json.loads((folder / "section.json").read_text())
    assert section["key"] == "adversaries" and "whitewasher" in section["summary"]


def test_a_cells_gain_is_the_adversarys_profit_less_its_twins():
    config = CollectiveConfig(mechanism="coll-stake", assets=20, tasks=600)
    result = cell(config, Whitewasher, CounterMeasures(entry_bond=1.0), [1, 2])
    assert result["gain"] == pytest.approx(result["adversary_profit"] - result["twin_profit"])
    assert result["runs"] == 2 and result["identities"] >= 1
