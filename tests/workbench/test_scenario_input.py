"""What `mercat scenario check`, `mercat sweep` and `mercat plot` do with careless or hostile
input: a scenario file or a results directory written, edited or truncated by hand. Each is
one line on stderr and exit code 2, before anything is written; never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_runs import one_line_error, run

HEAD = '[scenario]\nsimulation = "collective"\n'


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- misspelt names: refused, with the name meant ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (HEAD + "[gird]\nstake = [1]\n", ["unknown table [gird]", "did you mean [grid]?"]),
        (HEAD + "run = 2\n", ["[scenario] run: unknown key", "did you mean 'runs'?"]),
        (HEAD + "[output]\nformat = ['csv']\n", ["[output] format", "did you mean 'formats'?"]),
        (HEAD + "[grid]\nstak = [1.0]\n", ["[grid] stak: unknown parameter",
                                           "did you mean 'stake'?"]),
        ('[scenario]\nsimulation = "clearing"\n[parameters]\n"optins.tick" = 1\n',
         ["optins.tick: unknown parameter", "did you mean 'options'?"]),
        ('[scenario]\nsimulation = "colective"\n', ["unknown simulation 'colective'",
                                                    "did you mean 'collective'?"]),
    ],
)  # fmt: skip
def test_a_misspelt_name_is_refused_with_the_name_meant(tmp_path, text, words):
    one_line_error(run("scenario", "check", write(tmp_path, text)), "s.toml", *words)


@pytest.mark.parametrize("table", ["parameters", "grid", "variants.a"])
def test_an_option_given_twice_under_two_spellings_is_refused(tmp_path, table):
    # TOML reads both as keys of their own; the last one silently won
    value = "[0.1]" if table == "grid" else "0.1"
    text = (
        '[scenario]\nsimulation = "clearing"\n[parameters]\nmechanism = "posted-price"\n'
        + ("" if table == "parameters" else f"[{table}]\n")
        + f'options.tick = {value}\n"options.tick" = {value}\n'
    )
    out = run("scenario", "check", write(tmp_path, text))
    one_line_error(out, f"[{table}] options.tick: given twice")


@pytest.mark.parametrize(
    "text",
    [
        '[scenario]\nsimulation = "' + "x" * 500_000 + '"\n',
        HEAD + "[parameters]\n" + "x" * 500_000 + " = 1\n",
        HEAD + '[parameters]\nengine = "' + "x" * 500_000 + '"\n',
    ],
)
def test_a_huge_name_or_value_is_cut_in_the_error_line(tmp_path, text):
    out = run("scenario", "check", write(tmp_path, text))
    one_line_error(out, "xxx... (50")
    assert len(out.stderr) < 2000  # was the 500,000 characters, echoed


# --- sizes: refused before any work, with the bound ----------------------------------------------


def test_a_grid_of_10_to_the_15_points_is_refused_before_it_is_built(tmp_path):
    values = ", ".join(str(1000 + i) for i in range(1000))
    keys = ("assets", "tasks", "seed", "pool_size", "window")
    grid = "".join(f"{key} = [{values}]\n" for key in keys)
    out = run("scenario", "check", write(tmp_path, HEAD + "[grid]\n" + grid))
    one_line_error(out, "1,000,000,000,000,000 points", "at most 100,000")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (HEAD + "runs = 1000000000000\n", ["[scenario] runs: must be at most 100,000"]),
        (HEAD + "[grid]\nruns = [2, 1000000]\n", ["[grid] runs: must be at most 100,000"]),
        # past 64 bits: the result tables could not hold it (pyarrow's OverflowError, after
        # every point had run)
        (HEAD + "seed = 18446744073709551616\n", ["[scenario] seed: must be a 64-bit integer"]),
        ('[scenario]\nsimulation = "clearing"\n[parameters]\n'
         "options = { threads = 18446744073709551616 }\n",
         ["[parameters] options.threads: holds an integer past 64 bits"]),
        (HEAD + "[parameters]\nstake = 1" + "0" * 400 + "\n",
         ["[parameters] stake: must be finite"]),
        # a collective point failed on it (numpy's cast), after the directory was made
        (HEAD + "[output]\nstep_every = 100000000000000000000\n",
         ["[output] step_every: must be an integer from 0 to 2^63 - 1"]),
    ],
)  # fmt: skip
def test_huge_values_are_refused_with_their_bound(tmp_path, text, words):
    one_line_error(run("scenario", "check", write(tmp_path, text)), *words)


@pytest.mark.parametrize(
    ("simulation", "key", "value", "bound"),
    [
        # checking a point draws its market: 10^8 requests kept `mercat scenario check` busy
        # for hours
        ("clearing", "requests", 10_001, "10,000"),
        ("clearing", "nodes", 10**8, "10,000"),
        ("marketplace", "providers", 10**18, "1,000"),
        ("marketplace", "rounds", 100_001, "100,000"),
        ("fedavg", "rounds", 10**9, "100,000"),
        ("fedavg", "local_steps", 10**9, "1,000"),
    ],
)
def test_a_simulations_sizes_are_bounded(tmp_path, simulation, key, value, bound):
    text = f'[scenario]\nsimulation = "{simulation}"\n[parameters]\n{key} = {value}\n'
    out = run("scenario", "check", write(tmp_path, text))
    one_line_error(out, f"[parameters] {key}: must be at most {bound}, got {value}")


def test_runs_past_the_bound_on_the_command_line_are_refused(tmp_path):
    path = write(tmp_path, HEAD)
    out = run("sweep", path, "--out", tmp_path / "out", "--set", "runs=1000000000000")
    one_line_error(out, "[--set] runs: must be at most 100,000")
    assert not (tmp_path / "out").exists()


# --- files that are not scenario files -----------------------------------------------------------


def test_a_device_without_end_is_read_only_up_to_the_bound():
    one_line_error(run("scenario", "check", "/dev/zero"), "/dev/zero: more than 1 MiB")


def test_a_byte_order_mark_is_not_part_of_the_toml(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + HEAD.encode())
    out = run("scenario", "check", path, "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["simulation"] == "collective"


# --- results directories edited or truncated by hand --------------------------------------------

ECHO = "tests.workbench.sims_for_tests:Echo"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A scenario and the results directory of its finished sweep (to be copied, then
    damaged)."""
    root = tmp_path_factory.mktemp("finished")
    scenario = root / "echo.toml"
    scenario.write_text(
        f'[scenario]\nsimulation = "{ECHO}"\nruns = 2\n[grid]\nvalue = [1.0, 2.0]\n'
    )
    out = run("sweep", scenario, "--out", root / "out", "--workers", 1)
    assert out.exit_code == 0, out.output
    return scenario, root / "out"


def copy_of(finished: tuple[Path, Path], tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(finished[1], tmp_path / "out"))


DEEP = "[" * 3000 + "]" * 3000


def edit_manifest(out: Path, **changes: object) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, **changes}))


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        # each was a traceback (AttributeError, KeyError, TypeError) from mercat plot
        (lambda out: (out / "manifest.json").write_text("[]"), ["not a JSON object"]),
        (lambda out: (out / "manifest.json").write_text('{"complete": false}'),
         ["'simulation' is not a name"]),
        (lambda out: edit_manifest(out, complete=False, points=[{"x": 1}]),
         ["point 0 has no key"]),
        (lambda out: edit_manifest(out, swept=5), ["'swept' is not a list of names"]),
        # was a RecursionError from json.loads (at Python's recursion limit of 1,000)
        (lambda out: (out / "manifest.json").write_text(DEEP), ["not JSON"]),
    ],
)  # fmt: skip
def test_an_edited_manifest_is_one_error_naming_it(finished, tmp_path, damage, words):
    out = copy_of(finished, tmp_path)
    damage(out)
    one_line_error(run("plot", out), "manifest.json: not a manifest mercat wrote", *words)
    assert not (out / "figures").exists()


def test_a_manifest_naming_an_unknown_simulation_names_the_directory(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    edit_manifest(out, simulation="weather", simulation_ref="weather")
    one_line_error(run("plot", out), f"{out}: unknown simulation 'weather'")


def test_an_edited_scenario_in_the_results_is_one_error_naming_it(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    (out / "scenario.toml").write_text("[scenario\n")
    one_line_error(run("plot", out), "scenario.toml: not valid TOML", "line 1")


@pytest.mark.parametrize("table", ["points", "runs"])
def test_a_truncated_table_is_one_error_naming_it(finished, tmp_path, table):
    out = copy_of(finished, tmp_path)
    path = out / f"{table}.parquet"
    path.write_bytes(path.read_bytes()[:100])
    one_line_error(run("plot", out), f"{table}.parquet: cannot read this table")


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda point: (point / "point.json").write_text("{"), "point.json is not JSON"),
        (lambda point: (point / "point.json").write_text("[]"), "point.json has no summary"),
        (lambda point: (point / "point.json").write_text(DEEP), "point.json is not JSON"),
        (lambda point: (point / "runs.parquet").write_bytes(b"PAR1"),
         "runs.parquet cannot be read"),
        # was "cannot write results ... make room": a missing file read as a full disk
        (lambda point: (point / "runs.parquet").unlink(), "runs.parquet cannot be read"),
    ],
)  # fmt: skip
def test_a_damaged_point_is_named_and_recomputed_once_removed(finished, tmp_path, damage, why):
    import shutil

    scenario = finished[0]
    out = copy_of(finished, tmp_path)
    point = sorted((out / "points").iterdir())[0]
    damage(point)
    again = run("sweep", scenario, "--out", out, "--workers", 1, "--json")
    # found when the tables are combined, after the other points: they are kept
    one_line_error(again, f"{point}: a finished point's results, damaged ({why})",
                   "remove that directory")  # fmt: skip
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    shutil.rmtree(point)
    again = run("sweep", scenario, "--out", out, "--workers", 1, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["computed"] == 1


def test_a_refused_out_is_its_error_line_alone(finished, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    out = run("sweep", finished[0], "--out", tmp_path / "notes.txt")
    one_line_error(out, "is a file; results go to a directory")  # no counts, no progress line
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_more_local_workers_than_the_machine_holds_are_refused(finished, tmp_path):
    from mercat.workbench.sweep import WORKERS_PER_CORE, usable_cores

    too_many = WORKERS_PER_CORE * usable_cores() + 1
    out = run("sweep", finished[0], "--out", tmp_path / "out", "--workers", too_many)
    one_line_error(out, f"at most {too_many - 1} processes", "--backend ray")
    assert not (tmp_path / "out").exists()


def test_plot_where_a_list_is_compared_not_a_traceback(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    one_line_error(run("plot", out, "--where", "value=[1, 2]"), "--where value=[1, 2]: no point")


@pytest.mark.parametrize("option", ["--set", "--where"])
def test_a_command_line_value_nested_too_deeply_is_one_error(finished, tmp_path, option):
    import sys

    nested = "[" * 3000 + "]" * 3000  # was a RecursionError from tomllib
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # Python's own (pytest raises it)
    try:
        if option == "--set":
            out = run("scenario", "check", finished[0], "--set", f"value={nested}")
        else:
            out = run("plot", copy_of(finished, tmp_path), "--where", f"value={nested}")
    finally:
        sys.setrecursionlimit(before)
    one_line_error(out, "value=...: nested too deeply")


def test_the_scenario_in_the_results_is_read_within_a_scenario_files_bound(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    with (out / "scenario.toml").open("a") as file:
        file.write("#" + "x" * (2 << 20) + "\n")  # was read and parsed whole
    one_line_error(run("plot", out), "scenario.toml:", "at most 1 MiB")


def test_an_integer_of_5000_digits_is_one_error(tmp_path):
    huge = "1" + "0" * 5000  # past Python's 4,300 digits: a ValueError from tomllib's int()
    one_line_error(run("scenario", "check", write(tmp_path, HEAD + f"runs = {huge}\n")),
                   "s.toml: an integer of more than 4,300 digits")  # fmt: skip
    out = run("scenario", "check", write(tmp_path, HEAD), "--set", f"runs={huge}")
    one_line_error(out, "runs=...: an integer of more than 4,300 digits")
