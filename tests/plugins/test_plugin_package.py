"""A separate package of plug-ins (examples/plugin-package), found through its entry points:
usable from the command line, and passing the contracts mercat ships (mercat.testing).

The package is "installed" for the test by an entry-point distribution on the path (a
`.dist-info` directory with its entry_points.txt, as pip would write), beside the package's
source: importlib.metadata finds it as it finds any installed distribution, and nothing is
installed into the environment the rest of the suite runs in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mercat import plugins

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "plugin-package"
MARKET = ROOT / "examples" / "seed001_running_example.json"


def _dist_info(site: Path) -> None:
    """The package's metadata and entry points, read from its own pyproject.toml."""
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    info = site / f"mercat_example_plugins-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The plug-in package on the path with its entry points; the environment for
    subprocesses that should see it too."""
    site = tmp_path_factory.mktemp("site")
    _dist_info(site)
    paths = [str(site), str(PACKAGE / "src")]
    sys.path[:0] = paths
    plugins.refresh()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*paths, str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    yield env
    for path in paths:
        sys.path.remove(path)
    for module in [m for m in sys.modules if m.startswith("mercat_example_plugins")]:
        del sys.modules[module]
    plugins.refresh()


def mercat(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mercat.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_entry_points_are_listed_without_importing_the_package(installed):
    from mercat.clearing import registry
    from mercat.incentives.rules import RULES

    assert "greedy-pay-as-bid" in registry.REGISTRY.names()
    assert "slash-fraction" in RULES.names()
    assert "mercat_example_plugins.mechanisms" not in sys.modules
    assert registry.REGISTRY.get("greedy-pay-as-bid").name == "greedy-pay-as-bid"
    assert "mercat_example_plugins.mechanisms" in sys.modules


@pytest.mark.slow
def test_the_plugin_mechanism_clears_from_the_command_line(installed):
    by_name = mercat(installed, "clear", str(MARKET), "--mechanism", "greedy-pay-as-bid", "--json")
    assert by_name.returncode == 0, by_name.stderr
    cleared = json.loads(by_name.stdout)
    by_path = mercat(
        installed, "clear", str(MARKET), "--json",
        "--mechanism", "mercat_example_plugins.mechanisms:GreedyPayAsBid",
    )  # fmt: skip
    assert by_path.returncode == 0, by_path.stderr
    assert json.loads(by_path.stdout) == cleared
    unknown = mercat(installed, "clear", str(MARKET), "--mechanism", "no-such-mechanism")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith("error: ") and "greedy-pay-as-bid" in unknown.stderr


@pytest.mark.slow
def test_the_plugin_rule_simulates_on_reference_and_pipeline_and_fast_refuses(installed):
    small = ["--assets", "20", "--tasks", "300", "--runs", "2", "--json"]
    for engine in ("reference", "pipeline"):
        done = mercat(
            installed, "simulate", "collective", "--collective", "slash-fraction",
            "--rule-option", "fraction=0.3", "--engine", engine, *small,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["config"]["rule_options"] == {"fraction": 0.3}
    fast = mercat(
        installed, "simulate", "collective", "--collective", "slash-fraction", "--engine", "fast",
        *small,
    )  # fmt: skip
    assert fast.returncode == 2
    assert fast.stderr.startswith("error: ") and "slash-fraction" in fast.stderr


@pytest.mark.slow
def test_a_scenario_sweeps_the_plugin_rule(installed, tmp_path):
    scenario = tmp_path / "slash.toml"
    scenario.write_text(
        """
[scenario]
simulation = "collective"
runs = 2
seed = 3
[parameters]
engine = "reference"
assets = 20
tasks = 300
[variants.slash]
mechanism = "slash-fraction"
rule_options = { fraction = 0.3 }
[variants.coll-sr]
mechanism = "coll-sr"
"""
    )
    done = mercat(installed, "sweep", str(scenario), "--out", str(tmp_path / "out"), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["points"] == 2


@pytest.mark.slow
def test_the_shipped_contracts_pass_on_the_installed_plugins(installed):
    """`pytest --pyargs mercat.testing.installed` (every installed plug-in, no test code in
    the plug-in) and the package's own tests, which subclass mercat.testing's contracts."""
    for target in (["--pyargs", "mercat.testing.installed"], [str(PACKAGE / "tests")]):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
             *target],
            cwd=PACKAGE, env=installed, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        assert " passed" in done.stdout and "failed" not in done.stdout


@pytest.mark.slow
def test_the_plugin_strategy_and_experiment_run_from_the_command_line(installed, tmp_path):
    scenario = tmp_path / "budget.toml"
    scenario.write_text(
        """
[scenario]
simulation = "marketplace"
runs = 1
[parameters]
rounds = 3
[variants.truthful]
requester_strategy = "truthful"
[variants.budgeted]
requester_strategy = "budgeted"
strategy_options = { budget = 2.0 }
"""
    )
    out = tmp_path / "out"
    done = mercat(installed, "sweep", str(scenario), "--out", str(out), "--workers", "1")
    assert done.returncode == 0, done.stderr
    from mercat.workbench import load

    assert load(out)["points"]["variant"].tolist() == ["truthful", "budgeted"]
    report = tmp_path / "report"
    done = mercat(
        installed, "reproduce", "slash-vs-coll-sr", "--quick", "--runs", "2", "--out", str(report)
    )
    assert done.returncode == 0, done.stderr
    assert (report / "slash-vs-coll-sr" / "slash.csv").read_text().startswith("rule,")
