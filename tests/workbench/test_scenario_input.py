"""What `mercat scenario check`, `mercat sweep` and `mercat plot` do with careless or hostile
input: a scenario file or a results directory written, edited or truncated by hand. Each is
one line on stderr and exit code 2, before anything is written; never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mercat.cli import app

runner = CliRunner()

HEAD = '[scenario]\nsimulation = "collective"\n'


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(out, *words):
    assert out.exit_code == 2, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for word in words:
        assert word in lines[0], lines[0]


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
    ],
)  # fmt: skip
def test_huge_values_are_refused_with_their_bound(tmp_path, text, words):
    one_line_error(run("scenario", "check", write(tmp_path, text)), *words)


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
