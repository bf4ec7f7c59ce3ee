"""Scenario files: expansion into points, merging, keys, and one clear error per mistake
naming the file, the table and the key."""

from __future__ import annotations

import pytest

from mercat.errors import ScenarioError
from mercat.workbench.scenario import (
    MAX_FILE_BYTES,
    parse_assignment,
    parse_scenario,
    point_key,
    read_scenario,
)

BASE = """
[scenario]
name = "s"
simulation = "collective"
runs = 3
seed = 7

[parameters]
assets = 20
tasks = 300
"""


def scenario(extra: str = "", **kwargs):  # type: ignore[no-untyped-def]
    return parse_scenario(BASE + extra, "s.toml", **kwargs)


def test_points_are_cases_times_grid_times_variants_variants_innermost():
    s = scenario(
        """
[[cases]]
label = "small"
assets_per_task = 2
[[cases]]
label = "large"
assets_per_task = 4

[grid]
stake = [5, 10]

[variants.a]
mechanism = "coll-stake"
[variants.b]
mechanism = "coll-sr"
"""
    )
    assert len(s.points) == 2 * 2 * 2
    order = [(p.case, p.params["stake"], p.variant) for p in s.points]
    assert order[:4] == [("small", 5.0, "a"), ("small", 5.0, "b"), ("small", 10.0, "a"),
                         ("small", 10.0, "b")]  # fmt: skip
    assert [p.index for p in s.points] == list(range(8))
    first = s.points[0]
    assert first.design == {"assets_per_task": 2, "stake": 5.0, "mechanism": "coll-stake"}
    assert first.params["assets"] == 20 and first.params["runs"] == 3 and first.params["seed"] == 7
    assert first.params["alpha"] == 0.05  # the simulation's default
    assert s.swept_columns == ["assets_per_task", "stake"]
    assert s.design_columns == ["assets_per_task", "stake", "mechanism"]


def test_integers_are_taken_for_floats_and_keys_follow_every_parameter():
    a = scenario("[grid]\nstake = [10]\n").points[0]
    b = scenario("[grid]\nstake = [10.0]\n").points[0]
    assert a.params["stake"] == 10.0 and isinstance(a.params["stake"], float)
    assert a.key == b.key
    c = scenario("[grid]\nstake = [10.0]\nseed = [8]\n").points[0]
    assert c.key != a.key  # the seed is part of what a point's results depend on
    assert a.key == point_key("collective", a.params, True, 500)
    assert point_key("collective", a.params, False, 500) != a.key


def test_table_parameters_merge_entry_by_entry():
    s = parse_scenario(
        """
[scenario]
simulation = "clearing"
runs = 1
[parameters]
mechanism = "posted-price"
options = { makers = 2, tick = 0.05 }
[grid]
options.tick = [0.1, 0.2]
[variants.three]
"options.makers" = 3
[variants.two]
""",
        "pp.toml",
    )
    options = [p.params["options"] for p in s.points]
    assert options == [
        {"makers": 3, "tick": 0.1},
        {"makers": 2, "tick": 0.1},
        {"makers": 3, "tick": 0.2},
        {"makers": 2, "tick": 0.2},
    ]
    assert s.points[0].design == {"options.tick": 0.1, "options.makers": 3}


def test_seed_and_runs_may_be_swept():
    s = scenario("[grid]\nseed = [1, 2, 3]\n")
    assert [p.params["seed"] for p in s.points] == [1, 2, 3]
    assert len({p.key for p in s.points}) == 3


def test_overrides_replace_fixed_parameters_but_not_swept_ones():
    s = scenario("[grid]\nstake = [5]\n", overrides={"runs": 1, "tasks": 100})
    assert s.points[0].params["runs"] == 1 and s.points[0].params["tasks"] == 100
    assert s.overrides == {"runs": 1, "tasks": 100}
    with pytest.raises(ScenarioError, match="--set stake: the scenario sweeps it"):
        scenario("[grid]\nstake = [5]\n", overrides={"stake": 2.0})
    with pytest.raises(ScenarioError, match=r"s.toml: \[--set\] nope: unknown parameter"):
        scenario(overrides={"nope": 1})
    assert parse_assignment("runs=2") == ("runs", 2)
    assert parse_assignment("mechanism=coll-sr") == ("mechanism", "coll-sr")
    assert parse_assignment("x=[1, 2]") == ("x", [1, 2])
    with pytest.raises(ScenarioError, match="KEY=VALUE"):
        parse_assignment("runs")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[gird]\nstake = [1]\n", r"s.toml: unknown table \[gird\]"),
        ("[output]\nformat = ['csv']\n", r"s.toml: \[output\] format: unknown key"),
        ("[output]\nformats = ['xlsx']\n", r"\[output\] formats: must list some of"),
        ("[output]\nstep_every = -1\n", r"\[output\] step_every: must be an integer from 0"),
        ("[grid]\nstakee = [1]\n", r"s.toml: \[grid\] stakee: unknown parameter of simulation "
         r"'collective'; did you mean 'stake'\? known: runs, seed, mechanism"),
        ("[grid]\nstake = 5\n", r"\[grid\] stake: must be a non-empty list"),
        ("[grid]\nstake = []\n", r"\[grid\] stake: must be a non-empty list"),
        ("[grid]\nstake = [5, 5.0]\n", r"\[grid\] stake: lists a value twice"),
        ("[grid]\nassets = ['many']\n", r"\[grid\] assets: must be an integer, got 'many'"),
        ("[grid]\nstake = [-1.0]\n", r"\[grid\] stake = -1.0: stake must be > 0"),
        ("[grid]\nengine = ['turbo']\n", r"\[grid\] engine: must be one of fast, reference"),
        ("[grid]\nmechanism = ['coll-x']\n",
         r"\[grid\] mechanism = \"coll-x\": unknown collective rule 'coll-x'"),
        ("[grid]\nclamp = [1]\n", r"\[grid\] clamp: must be true or false"),
        ("[grid]\nstake.x = [1]\n", r"\[grid\] stake: stake is not a table of options"),
        ("[variants.a]\nassets = 'x'\n", r"\[variants.a\] assets: must be an integer"),
        ("[variants.a]\nrule_options = 3\n", r"\[variants.a\] rule_options: must be a table"),
        ("[grid]\nstake = [5]\n[variants.a]\nstake = 2\n",
         r"\[variants.a\] stake: is swept by the grid already"),
        ("[[cases]]\nstake = 5\n[grid]\nstake = [2]\n",
         r"\[grid\] stake: is set by the \[\[cases\]\] too"),
        ("[[cases]]\nstake = 5\n[[cases]]\nalpha = 0.1\n", "must set the same parameters"),
        ("[[cases]]\nlabel = 'a'\nstake = 5\n[[cases]]\nlabel = 'a'\nstake = 6\n",
         r"\[cases #2\] label: 'a' is taken"),
        ("[[cases]]\nlabel = 'x'\n", r"\[cases #1\]: sets no parameter"),
        ("[scenario.extra]\n", r"\[scenario\] extra: unknown key"),
        ("[grid]\nassets_per_task = [50]\n",
         r"\[grid\] assets_per_task = 50: assets \(20\) must be at least assets_per_task"),
        ("[grid]\nassets_per_task = [2, 3]\nassets = [2, 3]\n",
         r"point 2 \(assets_per_task=3, assets=2\): assets \(2\) must be at least"),
    ],
)  # fmt: skip
def test_every_mistake_is_one_error_naming_the_file_table_and_key(extra, message):
    with pytest.raises(ScenarioError, match=message):
        scenario(extra)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[scenario\n", r"x.toml: not valid TOML"),
        ("[parameters]\nassets = 3\n", r"x.toml: missing table \[scenario\]"),
        ("[scenario]\nname = 's'\n", r"\[scenario\] simulation: missing"),
        ("[scenario]\nsimulation = 'weather'\n",
         r"\[scenario\] simulation: unknown simulation 'weather'; known: collective, fedavg"),
        ("[scenario]\nsimulation = 'collective'\nruns = 0\n", r"\[scenario\] runs: must be >= 1"),
        ("[scenario]\nsimulation = 'collective'\nplugins = ['no_such_module_here']\n",
         r"\[scenario\] plugins: cannot import 'no_such_module_here'"),
        ("[scenario]\nsimulation = 'collective'\n[parameters]\nruns = 2\n[grid]\nx = 1\n",
         r"\[grid\] x: unknown parameter"),
        ("[scenario]\nsimulation = 'collective'\nruns = 2\n[parameters]\nruns = 3\n",
         r"\[parameters\] runs: set in \[scenario\] already"),
        ("[scenario]\nsimulation = 'collective'\n[parameters]\nassets = 2\n",
         r"\[parameters\]: assets \(2\) must be at least"),
    ],
)  # fmt: skip
def test_broken_files_are_one_error(text, message):
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(text, "x.toml")


def test_files_are_read_bounded_and_named(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("# " + "x" * MAX_FILE_BYTES)
    with pytest.raises(ScenarioError, match=r"big.toml: .* at most 1 MiB"):
        read_scenario(path)
    with pytest.raises(ScenarioError, match=r"missing.toml: cannot read it"):
        read_scenario(tmp_path / "missing.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ScenarioError, match=r"bin.toml: not UTF-8"):
        read_scenario(tmp_path / "bin.toml")


def test_too_many_points_are_refused():
    stakes = ", ".join(str(1.0 + i) for i in range(400))
    alphas = ", ".join(str(0.01 + i / 1000) for i in range(400))
    grid = f"[grid]\nstake = [{stakes}]\nalpha = [{alphas}]\n"
    with pytest.raises(ScenarioError, match="160,000 points; a sweep holds at most 100,000"):
        scenario(grid)
