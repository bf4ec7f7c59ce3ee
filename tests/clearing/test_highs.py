"""HiGHS's per-thread scheduler: one solve's `threads` option must not decide later solves.

HiGHS creates a task scheduler per OS thread at the thread's first solve, with that solve's
thread count, and refuses (model status "Not Set") a later solve on the thread that asks for
another count. `mercat.clearing.highs.run` resets it; these tests fail without it."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mercat.clearing.optimal import OptimalMechanism
from mercat.clearing.vcg.mechanism import VCGMechanism
from mercat.market.generators import running_example, standard_auction_market

SRC = Path(__file__).resolve().parents[2] / "src" / "mercat"


def _in_a_fresh_thread(work):
    """Run `work` in a new OS thread (a fresh HiGHS scheduler) and return what it returned."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


def test_solves_on_one_thread_each_get_the_thread_count_they_ask_for():
    market = running_example()
    auction = standard_auction_market(3, 12, 3)

    def solves():
        results = []
        for threads in (2, 1, 3, 1):
            results.append(OptimalMechanism(threads=threads).clear(market, seed=0))
            # VCG's solvers are single-threaded: before the fix, a first solve with
            # threads=2 left every one of them failing with "status Not Set".
            results.append(VCGMechanism(workers=0).clear(auction))
        return results

    results = _in_a_fresh_thread(solves)
    optimal, vcg = results[0::2], results[1::2]
    assert {r.diagnostics["status"] for r in optimal} == {"Optimal"}
    assert all(r.allocation == optimal[0].allocation for r in optimal)
    assert all(r.payments == vcg[0].payments and r.proven for r in vcg)


THREADS_AFTER_SOLVE = """
import os, threading, time
from mercat.clearing.optimal import OptimalMechanism
from mercat.market.generators import running_example

market = running_example()  # every import and lazy pool is up before counting
left = []

def solve():
    before = set(os.listdir("/proc/self/task"))
    OptimalMechanism(threads=4).clear(market, seed=0)
    # Counted while this thread lives (its scheduler would live as long). A solver thread
    # that has stopped may stay listed in /proc for a moment while the kernel releases it:
    # wait up to 30 s for the list to settle; a thread kept alive never leaves it.
    for _ in range(600):
        extra = set(os.listdir("/proc/self/task")) - before
        if not extra:
            break
        time.sleep(0.05)
    left.append(len(extra))

worker = threading.Thread(target=solve)  # a fresh OS thread: a fresh HiGHS scheduler
worker.start()
worker.join()
print(left[0])
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_a_multi_threaded_solve_leaves_no_solver_threads_behind():
    # In a process of its own: a test runner's worker starts and stops threads of its own,
    # which a count in this process would see.
    left = subprocess.run(
        [sys.executable, "-c", THREADS_AFTER_SOLVE], capture_output=True, text=True, check=True
    )
    assert left.stdout.strip() == "0", left  # the scheduler's 3 helper threads were stopped


def test_every_highs_solve_goes_through_run():
    """A `.run()` on a HiGHS instance anywhere else would bring the leak back."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "clearing" / "highs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "run"
                and not node.args
                and not node.keywords
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_search_options_cannot_change_what_counts_as_optimal():
    from mercat.clearing.highs import solve_max
    from mercat.errors import SolverError
    from mercat.market.constraints import encode

    market = running_example()
    exact = solve_max(encode(market))
    # A loose gap among the caller's options is overridden by solve_max's own (1e-9).
    loose = solve_max(encode(market), options={"mip_rel_gap": 0.9, "mip_heuristic_effort": 0.0})
    assert loose.proven and loose.objective == pytest.approx(exact.objective, abs=1e-9)
    assert loose.gap <= 1e-9
    with pytest.raises(SolverError, match="refused the option"):
        solve_max(encode(market), options={"no_such_option": 1})


def test_presolve_without_the_merging_rule_solves_the_row_it_misjudged():
    """Two demands of 1e-8 fit with 0.25 beside neither (by 5e-9): 0.5 is optimal. HiGHS
    1.16's presolve, merging the parallel columns, reported 0.25; `presolve=True` runs it
    without that rule."""
    import highspy

    from mercat.clearing import highs
    from mercat.market.constraints import encode
    from mercat.market.model import Market, Node, Request

    market = Market(
        tuple(Request(f"t{i}", 0.25, (d,)) for i, d in enumerate([1e-8, 0.25, 1e-8, 0.25])),
        (Node("n0", unit_costs=(0.0,), capacity=(0.2499999995,)),),
        resources=("bw",),
    )
    encoding = encode(market)
    for presolve, options in ((False, None), (True, None), (True, {"presolve_rule_off": 0})):
        # (the caller's rules off cannot switch the merging rule back on)
        result = highs.solve_max(encoding, presolve=presolve, options=options)
        assert result.proven and result.objective == pytest.approx(0.5, abs=1e-12)
    # The rule is what misjudges it: with every rule on, HiGHS 1.16 says 0.25. A later
    # HiGHS that gets it right skips this test, saying the workaround can go.
    solver = highs.new_solver(1)
    solver.setOptionValue("small_matrix_value", highs.SMALLEST_COEFFICIENT)
    solver.passModel(highs._highs_lp(encoding, integral=True))
    for name, value in (("mip_rel_gap", 1e-9), ("primal_feasibility_tolerance", 1e-9),
                        ("mip_feasibility_tolerance", 1e-9), ("presolve", "on")):  # fmt: skip
        solver.setOptionValue(name, value)
    highs.run(solver)
    assert solver.getModelStatus() == highspy.HighsModelStatus.kOptimal
    merged = float(encoding.objective @ np.array(solver.getSolution().col_value))
    if merged != pytest.approx(0.25, abs=1e-12):
        pytest.skip(_fixed_upstream("misjudges the row", "PARALLEL_ROWS_AND_COLUMNS"))


def _fixed_upstream(fault: str, workaround: str) -> str:
    from importlib.metadata import version

    return f"highspy {version('highspy')} no longer {fault}: {workaround} can go"


@pytest.mark.parametrize("seed", range(12))
def test_presolve_finds_the_same_optimum_on_random_markets(seed):
    """Presolve (without the merging rule) changes how HiGHS gets there, never the optimum:
    random markets with every constraint kind, capacities that bind included."""
    from mercat.clearing.highs import solve_max
    from mercat.market.constraints import encode
    from mercat.market.generators import random_market

    market = random_market(seed, 10 + seed, 4 + seed % 4)
    encoding = encode(market)
    plain, presolved = solve_max(encoding), solve_max(encoding, presolve=True)
    assert plain.proven and presolved.proven
    assert presolved.objective == pytest.approx(plain.objective, abs=1e-7)
    assert market_fits(encoding, market, presolved.x)


def market_fits(encoding, market, x) -> bool:
    from mercat.market.constraints import is_valid

    return is_valid(market, encoding.decode(x, market))


def _tiny_posted_price_model():
    """A regime model of a posted-price challenge (11 binaries) on which HiGHS 1.16, given
    a start worth -0.5 and presolving, reported the start as optimal with a bound of -0.25
    (the optimum: serve request 7 on node 9)."""
    import math

    from mercat.market.constraints import MilpEncoding, rows_matrix

    rows = [
        ({0: 1.0, 1: 1.0, 6: -1.0}, 0.0, 0.0),
        ({2: 1.0, 3: 1.0, 7: -1.0}, 0.0, 0.0),
        ({4: 1.0, 5: 1.0, 8: -1.0}, 0.0, 0.0),
        *[({j: 1.0, 9: -1.0}, -math.inf, 0.0) for j in (0, 2, 4)],
        *[({j: 1.0, 10: -1.0}, -math.inf, 0.0) for j in (1, 3, 5)],
        ({0: -1.0, 2: -1.0, 4: -1.0, 9: 1.0}, -math.inf, 0.0),
        ({1: -1.0, 3: -1.0, 5: -1.0, 10: 1.0}, -math.inf, 0.0),
        ({8: 1.0, 9: 1.0}, 1.0, math.inf),
    ]  # fmt: skip
    lower = np.zeros(11)
    lower[[8, 9]] = 1.0
    return MilpEncoding(
        objective=np.array([0.0] * 7 + [0.25, -0.25, -0.25, 0.0]),
        col_lower=lower,
        col_upper=np.ones(11),
        integral=np.ones(11, dtype=bool),
        matrix=rows_matrix(rows, 11),
        row_lower=np.array([lo for _, lo, _ in rows]),
        row_upper=np.array([hi for _, _, hi in rows]),
        pair_columns={},
        served_columns={},
        used_columns={},
        indicators={},
        divisible=False,
    )


def test_a_start_with_presolve_is_refused_and_each_alone_is_right():
    from mercat.clearing import highs

    model = _tiny_posted_price_model()
    start = np.zeros(11)
    start[[4, 8, 9]] = 1.0  # feasible, worth -0.5
    assert model.objective @ start == -0.5
    for presolve, initial in ((False, None), (False, start), (True, None)):
        result = highs.solve_max(model, presolve=presolve, initial=initial)
        assert result.proven and result.objective == pytest.approx(-0.25, abs=1e-12)
    with pytest.raises(ValueError, match="MIP start"):
        highs.solve_max(model, presolve=True, initial=start)
    # What the refusal is for: HiGHS 1.16 itself, presolving from the start (without the
    # merging rule too), returns the start with a bound it does not reach. A later HiGHS
    # that gets it right skips this test, saying the refusal can go.
    import highspy

    solver = highs.new_solver(1)
    solver.passModel(highs._highs_lp(model, integral=True))
    for name, value in (("mip_rel_gap", 1e-9), ("presolve", "on"),
                        ("presolve_rule_off", highs.PARALLEL_ROWS_AND_COLUMNS)):  # fmt: skip
        solver.setOptionValue(name, value)
    point = highspy.HighsSolution()
    point.col_value = start.tolist()
    point.value_valid = True
    solver.setSolution(point)
    highs.run(solver)
    returned = float(model.objective @ np.array(solver.getSolution().col_value))
    if returned != pytest.approx(-0.5):
        pytest.skip(_fixed_upstream("misreports a start", "solve_max's refusal"))
    assert solver.getInfo().mip_dual_bound == pytest.approx(-0.25)
