"""Sweeps: the same tables for any number of workers, resumable, stopped cleanly, a failing
point named, results loadable with the scenario and version beside them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mercat.errors import InvalidParameterError, MercatError, ScenarioError
from mercat.workbench import load, parse_scenario, read_scenario, run_sweep
from mercat.workbench.store import mercat_version
from mercat.workbench.sweep import SweepError

ROOT = Path(__file__).resolve().parents[2]
ECHO = "tests.workbench.sims_for_tests:Echo"


def echo_scenario(tmp_path: Path, values: str = "[1.0, 2.0, 3.0]", extra: str = "") -> Path:
    path = tmp_path / "echo.toml"
    path.write_text(
        f"""
[scenario]
name = "echo"
simulation = "{ECHO}"
runs = 3
seed = 4
[grid]
value = {values}
[variants.a]
hold_from = 100.0
[variants.b]
hold_from = 200.0
{extra}
"""
    )
    return path


def small_collective(tmp_path: Path) -> Path:
    path = tmp_path / "collective.toml"
    path.write_text(
        """
[scenario]
simulation = "collective"
runs = 4
seed = 2
[parameters]
assets = 20
tasks = 600
[grid]
stake = [3.0, 10.0]
[variants.coll-stake]
mechanism = "coll-stake"
[variants.coll-sr]
mechanism = "coll-sr"
[output]
step_every = 200
"""
    )
    return path


def tables_equal(a: Path, b: Path) -> None:
    first, second = load(a), load(b)
    assert set(first) == set(second)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name], check_exact=True)
        assert (a / f"{name}.csv").read_bytes() == (b / f"{name}.csv").read_bytes()


def test_one_worker_and_two_write_the_same_tables(tmp_path):
    scenario = read_scenario(small_collective(tmp_path))
    one = run_sweep(scenario, tmp_path / "one", workers=1)
    two = run_sweep(scenario, tmp_path / "two", workers=2)
    assert one.computed == two.computed == 4
    tables_equal(tmp_path / "one", tmp_path / "two")
    results = load(tmp_path / "one")
    assert len(results["runs"]) == 4 * 4 and len(results["points"]) == 4
    assert list(results["runs"].columns[:3]) == ["point", "variant", "stake"]
    assert set(results) == {"points", "runs", "steps"}


def test_a_sweep_resumes_where_it_stopped(tmp_path):
    scenario = read_scenario(echo_scenario(tmp_path))
    out = tmp_path / "out"
    first = run_sweep(scenario, out, workers=1)
    assert (first.computed, first.reused) == (6, 0)
    again = run_sweep(scenario, out, workers=1)
    assert (again.computed, again.reused) == (0, 6)
    lost = scenario.points[3]
    import shutil

    shutil.rmtree(out / "points" / lost.key)
    third = run_sweep(scenario, out, workers=1)
    assert (third.computed, third.reused) == (1, 5)
    bigger = read_scenario(echo_scenario(tmp_path, "[1.0, 2.0, 3.0, 4.0]"))
    fourth = run_sweep(bigger, out, workers=1)
    assert (fourth.computed, fourth.reused) == (2, 6)
    assert len(load(out)["points"]) == 8


def test_results_carry_the_scenario_and_version_and_csv_equals_parquet(tmp_path):
    path = echo_scenario(tmp_path)
    out = tmp_path / "out"
    run_sweep(read_scenario(path), out, workers=1)
    results = load(out)
    assert results.version == mercat_version() and results.simulation == "echo"
    assert results.scenario["grid"]["value"] == [1.0, 2.0, 3.0]
    assert (out / "scenario.toml").read_text() == path.read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["points"]) == 6
    tag = json.loads(pq.read_schema(out / "runs.parquet").metadata[b"mercat"])
    assert tag == {"mercat_version": mercat_version(), "scenario": "echo",
                   "simulation": "echo", "table": "runs"}  # fmt: skip
    for name in results:  # CSV reads an empty string back as missing
        pd.testing.assert_frame_equal(
            pd.read_csv(out / f"{name}.csv"), results[name].replace("", float("nan")),
            check_dtype=False,
        )  # fmt: skip
    runs = results["runs"]
    assert runs[(runs["point"] == 5)]["x"].tolist() == [3.0, 6.0, 9.0]
    steps = results["steps"]  # its own column `value` and the swept parameter `value`
    assert list(steps.columns) == ["point", "variant", "param_value", "hold_from", "run",
                                   "step", "value"]  # fmt: skip
    assert (steps["value"] == steps["param_value"] + steps["step"]).all()
    assert set(runs["seed"]) == {4}
    points = results["points"]
    assert points["total"].tolist() == [6.0, 6.0, 12.0, 12.0, 18.0, 18.0]
    assert points["variant"].tolist() == ["a", "b"] * 3


def test_formats_and_steps_follow_the_output_table(tmp_path):
    path = echo_scenario(tmp_path, extra="[output]\nformats = ['csv']\nsteps = false\n")
    out = tmp_path / "out"
    run_sweep(read_scenario(path), out, workers=1)
    assert sorted(p.name for p in out.glob("*.csv")) == ["points.csv", "runs.csv"]
    assert not list(out.glob("*.parquet"))
    assert set(load(out)) == {"points", "runs"}


def test_a_failing_point_is_named_and_the_finished_ones_are_kept(tmp_path):
    scenario = read_scenario(echo_scenario(tmp_path, "[1.0, 13.0]"))
    out = tmp_path / "out"
    with pytest.raises(SweepError, match=r"point 2 \(variant a, value=13.0\) failed: "
                                         r"RuntimeError: thirteen"):  # fmt: skip
        run_sweep(scenario, out, workers=1)
    assert len(list((out / "points").iterdir())) == 2
    with pytest.raises(InvalidParameterError, match=r"has not finished .2 of 4 points"):
        load(out)
    partial = load(out, partial=True)
    assert len(partial["points"]) == 2 and not partial.complete
    with pytest.raises(SweepError, match="thirteen"):
        run_sweep(scenario, tmp_path / "parallel", workers=2)


def test_a_directory_of_something_else_is_refused(tmp_path):
    scenario = read_scenario(echo_scenario(tmp_path))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidParameterError, match="holds no mercat results"):
        run_sweep(scenario, tmp_path / "busy")
    run_sweep(read_scenario(small_collective(tmp_path)), tmp_path / "c", workers=1)
    with pytest.raises(InvalidParameterError, match="holds results of a 'collective' sweep"):
        run_sweep(scenario, tmp_path / "c")
    with pytest.raises(InvalidParameterError, match="backend must be local or ray"):
        run_sweep(scenario, tmp_path / "x", backend="dask")
    with pytest.raises(InvalidParameterError, match="--ray-address needs --backend ray"):
        run_sweep(scenario, tmp_path / "x", ray_address="auto")


def _wait_for(condition, what: str, limit: float = 300.0) -> None:  # type: ignore[no-untyped-def]
    """Poll until `condition()` holds: the wait is for an event, the limit only a safety net."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def _session_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_the_workers_and_the_sweep_resumes(tmp_path, signum):
    hold = tmp_path / "hold"
    hold.write_text("wait")
    path = echo_scenario(
        tmp_path, "[1.0, 2.0, 3.0]", extra=f"[parameters]\nhold = '{hold}'\n"
    ).read_text()
    # points of value 1 finish; the others wait while `hold` exists
    path = path.replace("hold_from = 100.0", "hold_from = 2.0").replace(
        "hold_from = 200.0", "hold_from = 1.5"
    )
    scenario_file = tmp_path / "held.toml"
    scenario_file.write_text(path)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mercat.cli", "sweep", str(scenario_file), "--out", str(out),
         "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    points = out / "points"
    _wait_for(lambda: points.is_dir() and len([p for p in points.iterdir()
                                               if not p.name.startswith(".")]) == 2,
              "the two points of value 1")  # fmt: skip
    if signum == signal.SIGINT:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C at a terminal reaches the whole group
    else:
        process.send_signal(signal.SIGTERM)  # a scheduler stops the sweep's process
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "stopped: the finished points are kept" in stderr
    assert "Traceback" not in stderr
    _wait_for(lambda: not _session_alive(process.pid), "the workers to exit", 60)
    assert sorted(p.name for p in points.iterdir() if p.name.startswith(".tmp")) == []
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    hold.unlink()
    report = run_sweep(read_scenario(scenario_file), out, workers=1)
    assert (report.computed, report.reused) == (4, 2)
    assert len(load(out)["runs"]) == 6 * 3


def test_the_sweep_checks_every_point_before_it_runs_any(tmp_path):
    bad = echo_scenario(tmp_path).read_text().replace("value = [1.0, 2.0, 3.0]", "value = [1, 'x']")
    with pytest.raises(ScenarioError, match=r"\[grid\] value: must be a number"):
        parse_scenario(bad, "echo.toml")
    assert not (tmp_path / "out").exists()


def test_two_variants_that_set_the_same_values_are_refused(tmp_path):
    same = echo_scenario(tmp_path).read_text().replace("hold_from = 200.0", "hold_from = 100.0")
    with pytest.raises(ScenarioError, match=r"point 1 \(variant b, .*\) runs the same "
                                            r"parameters as point 0 \(variant a"):  # fmt: skip
        parse_scenario(same, "echo.toml")


def test_a_sweep_that_writes_fewer_tables_leaves_none_of_the_earlier_ones(tmp_path):
    out = tmp_path / "out"
    run_sweep(read_scenario(echo_scenario(tmp_path)), out, workers=1)
    (out / "notes.csv").write_text("mine\n")
    smaller = echo_scenario(tmp_path, "[5.0]", extra="[output]\nformats = ['csv']\nsteps = false\n")
    run_sweep(read_scenario(smaller), out, workers=1)
    results = load(out)
    assert set(results) == {"points", "runs"}
    assert results["points"]["value"].tolist() == [5.0, 5.0]
    assert sorted(p.name for p in out.glob("*.*sv")) == ["notes.csv", "points.csv", "runs.csv"]
    assert not list(out.glob("*.parquet"))


def test_an_out_that_is_a_file_or_holds_another_manifest_is_one_error(tmp_path):
    scenario = read_scenario(echo_scenario(tmp_path))
    (tmp_path / "file").write_text("mine")
    with pytest.raises(InvalidParameterError, match="is a file; results go to a directory"):
        run_sweep(scenario, tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"
    (tmp_path / "listed").mkdir()
    (tmp_path / "listed" / "manifest.json").write_text("[1, 2]")
    with pytest.raises(InvalidParameterError, match="not a manifest mercat wrote"):
        run_sweep(scenario, tmp_path / "listed")


def test_the_step_figure_draws_one_line_per_swept_value_not_per_measured_one(tmp_path):
    from mercat.workbench.plot import _steps, plot_results
    from mercat.workbench.simulation import simulation

    # Echo's steps table has a column `value` of its own; the swept `value` is `param_value`
    path = echo_scenario(tmp_path, "[1.0, 2.0]").read_text().split("[variants.a]")[0]
    (tmp_path / "plain.toml").write_text(path)
    out = tmp_path / "out"
    run_sweep(read_scenario(tmp_path / "plain.toml"), out, workers=1)
    results = load(out)
    figure = _steps(results, simulation(ECHO), results.manifest["swept"], print)
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["value=1.0", "value=2.0"]
    assert [list(line.get_ydata()) for line in lines] == [[2.0, 3.0, 4.0], [3.0, 4.0, 5.0]]
    (tmp_path / "file").write_text("mine")
    with pytest.raises(InvalidParameterError, match="cannot write figures to"):
        plot_results(out, tmp_path / "file")


def test_a_second_sweep_of_a_directory_in_use_fails_at_once_and_changes_nothing(tmp_path):
    import fcntl

    from typer.testing import CliRunner

    from mercat.cli import app

    scenario_file = echo_scenario(tmp_path)
    out = tmp_path / "out"
    run_sweep(read_scenario(scenario_file), out, workers=1)
    lock = out / ".sweep.lock"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p != lock}
    # another sweep holds the lock: an open file description of its own, as another
    # process would have (flock conflicts between two of them even in one process)
    with open(lock, "a+") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.truncate(0)
        holder.write("4242\n")
        holder.flush()
        with pytest.raises(MercatError, match=rf"{out} is being written "
                           r"by another sweep \(pid 4242\); wait for it to finish"):  # fmt: skip
            run_sweep(read_scenario(scenario_file), out, workers=1)
        result = CliRunner().invoke(app, ["sweep", str(scenario_file), "--out", str(out)])
        assert result.exit_code == 2
        assert result.output.strip().splitlines()[-1].startswith("error: ")
        assert f"{out} is being written by another sweep (pid 4242)" in result.output
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p != lock} == before
        assert lock.read_text() == "4242\n"
    # the holder gone, the directory is free again
    report = run_sweep(read_scenario(scenario_file), out, workers=1)
    assert (report.computed, report.reused) == (0, 6)


def test_the_lock_is_the_running_sweeps_and_refused_directories_gain_no_lock_file(tmp_path):
    from mercat.workbench import ResultsInUseError
    from mercat.workbench.store import locked

    out = tmp_path / "out"
    with locked(out):
        assert (out / ".sweep.lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(ResultsInUseError, match=rf"\(pid {os.getpid()}\)"), locked(out):
            pass
    with locked(out):  # released when the first one ended
        pass
    scenario = read_scenario(echo_scenario(tmp_path))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidParameterError, match="holds no mercat results"):
        run_sweep(scenario, tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]
    run_sweep(scenario, out, workers=1)  # a directory holding only a lock is a new one
    assert len(load(out)["points"]) == 6


def _full_disk(written: Path | str, *args: object, **kwargs: object) -> None:
    """A writer that gets a few bytes out, then finds the disk full."""
    import errno

    Path(written).write_bytes(b"PAR1 half a table")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(written))


def _leftovers(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name.startswith(".tmp"))


def test_a_full_disk_is_one_error_and_leaves_no_half_written_table(tmp_path, monkeypatch):
    import pyarrow.parquet
    from typer.testing import CliRunner

    from mercat.cli import app

    scenario_file = echo_scenario(tmp_path)
    out = tmp_path / "out"
    # the combined tables cannot be written: the points are kept, no table half-written
    real = pyarrow.parquet.write_table

    def combined_tables_fail(table, where, **kwargs):  # type: ignore[no-untyped-def]
        if Path(str(where)).parent == out:  # not a point's own tables, under points/
            _full_disk(where)
        real(table, where, **kwargs)

    monkeypatch.setattr(pyarrow.parquet, "write_table", combined_tables_fail)
    with pytest.raises(SweepError, match=rf"cannot write results to {out}: No space left on "
                                         r"device \(.*points.parquet\); the finished points "
                                         r"are kept"):  # fmt: skip
        run_sweep(read_scenario(scenario_file), out, workers=1)
    assert _leftovers(out) == []
    assert not list(out.glob("*.parquet")) and not list(out.glob("*.csv"))
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    with pytest.raises(InvalidParameterError, match="the sweep has not finished"):
        load(out)
    result = CliRunner().invoke(app, ["sweep", str(scenario_file), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith("error: cannot write results to")
    assert "Traceback" not in result.output
    monkeypatch.undo()
    report = run_sweep(read_scenario(scenario_file), out, workers=1)
    assert (report.computed, report.reused) == (0, 6)
    assert len(load(out)["runs"]) == 6 * 3


def test_a_point_that_cannot_be_written_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    scenario_file = echo_scenario(tmp_path)
    out = tmp_path / "out"
    monkeypatch.setattr(pd.DataFrame, "to_parquet", lambda frame, where, **kw: _full_disk(where))
    with pytest.raises(SweepError, match="No space left on device"):
        run_sweep(read_scenario(scenario_file), out, workers=1)
    assert _leftovers(out) == []
    assert [p.name for p in (out / "points").iterdir()] == []
    monkeypatch.undo()
    report = run_sweep(read_scenario(scenario_file), out, workers=1)
    assert (report.computed, report.reused) == (6, 0)


def test_a_ray_tasks_threads_are_the_cpus_ray_gave_it_within_its_cores():
    from mercat.workbench.sweep import task_threads, usable_cores

    assert task_threads(1.0, 16) == 1  # one CPU of a 16-core node: one thread
    assert task_threads(4.0, 16) == 4
    assert task_threads(8.0, 2) == 2  # never more than the cores the process may use
    assert task_threads(0.5, 8) == 1  # a fraction of a CPU still runs one thread
    assert task_threads(None, 8) == 1  # no CPU resource assigned
    if hasattr(os, "sched_getaffinity"):
        assert usable_cores() == len(os.sched_getaffinity(0))


@pytest.mark.slow
def test_ray_tasks_size_their_threads_where_they_run_not_on_the_driver(
    tmp_path, monkeypatch, ray_session
):
    import numba

    from mercat.workbench.simulation import Steps
    from mercat.workbench.sweep import PointTask

    scenario_file = tmp_path / "threads.toml"
    scenario_file.write_text(
        "[scenario]\nsimulation = 'tests.workbench.sims_for_tests:Threads'\nruns = 1\n"
        "[grid]\nvalue = [1.0, 2.0]\n"
    )
    # a driver with many cores beside workers with few: the driver's count must not matter
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    out = tmp_path / "out"
    run_sweep(read_scenario(scenario_file), out, backend="ray")
    # a Ray this sweep did not start: one CPU a task, so one thread
    assert load(out)["points"]["threads"].tolist() == [1, 1]
    # a task given two CPUs runs two threads (as many as its worker may use)
    from mercat.workbench.sweep import _run_on_ray

    task = PointTask("tests.workbench.sims_for_tests:Threads", (), 0, {"value": 1.0, "runs": 1,
                     "seed": 1}, Steps(False), None)  # fmt: skip
    remote = ray_session.remote(num_cpus=2, max_retries=0)(_run_on_ray)
    outcome = ray_session.get(remote.remote(task))
    assert outcome.error is None, outcome.error
    assert outcome.result.summary["threads"] == min(2, numba.config.NUMBA_NUM_THREADS)
