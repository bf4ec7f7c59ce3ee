"""`mercat reproduce` writes the report's header from the command it ran: the command as it
would be retyped, the RNG seed, the version, whether the run was quick, its time."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mercat import __version__
from mercat.cli import app
from mercat.report import experiments as registry
from mercat.report.claims import Claim
from mercat.report.html import Section


def _probe(context: registry.ExperimentContext) -> Section:
    claim = Claim("001", "a figure", "a claim", "1", str(context.seed), "holds", "a rule")
    return Section("probe", "A probe", "<p>probe</p>", paper="001", claims=(claim,))


def test_the_header_names_the_command_seed_version_and_size(tmp_path, monkeypatch):
    probe = registry.Experiment("probe", "A probe", "Writes one claim.", _probe)
    monkeypatch.setitem(registry._REGISTRY, "probe", probe)
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["reproduce", "probe", "--quick", "--out", str(out), "--seed", "7", "--runs", "2"]
    )
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text(encoding="utf-8")
    header = page[: page.index("<nav>")]
    assert f"mercat reproduce probe --quick --out {out} --runs 2 --seed 7" in header
    assert "<dt>RNG seed</dt><dd>7</dd>" in header
    assert f"<dd>{__version__}</dd>" in header and "--quick" in header
    run = json.loads((out / "facts.json").read_text(encoding="utf-8"))["run"]
    assert run["quick"] is True and run["rng_seed"] == 7 and run["seconds"] >= 0
    # The section's claim, computed from the run (its seed), reached the page.
    saved = json.loads((out / "probe" / "section.json").read_text(encoding="utf-8"))
    assert saved["claims"][0]["reproduced"] == "7"
