"""VCG standard auction (seed 003 §5.2.2): proven optimum, Clarke payments, the plain MILP.

The seed's set-up: bids U[0.75, 1.25], demands U(0, 1], m = 8 providers, capacities
C_j = f_j·D/m with f_j ~ U[0, 0.25] (the seed's literal factor; `generator_setup` repeats
the allocation with the wider reading U[0, 0.5]). The bars: proven optimal
allocation and exact Clarke payments at n = 125 in ≤ 10 s; n = 1000 with a certified gap
≤ 0.1% in ≤ 60 s; the plain assignment MILP (HiGHS, one thread) side by side at n = 125.

Prints one JSON object with these sections:
- `exact`: per n and seed, time to the proven optimum (or the certified gap at the time
  limit), then all Clarke payments sequentially and in a process pool (`--workers`), and
  whether both give the same payments; payments only up to `--payments-up-to` users.
- `certified`: per n and seed, time to a certified gap ≤ `--target-gap`, then every
  winner's payment interval (each W*_{-i} to the same gap) in a process pool of
  `--workers`, up to `--certified-payments-up-to` users; with `--best-effort-limit S`, also
  the gap reached in S seconds when asked for a proof.
- `plain_milp`: the reference MILP with `--milp-limit` seconds at n = 125.
- `fig5`: seed Fig. 5's running time against n for p = 1, 2, 4 payment groups: the
  allocation, the payments' critical path (the slowest group's sum of per-user times, i.e.
  one machine per group) and the wall time of a p-process pool on this machine.
- `generator_setup`: the allocation under the generator's capacity factor.
- `versus`: per n (`--versus-sizes`, default 1000) and seed, the multiple-knapsack solver
  (`solver="mulknap"`) to a proof with every Clarke payment in a pool of `--workers`
  processes over `--groups` subsets of the winners,
  side by side with the previous solver (`solver="colgen"`, column generation) asked for
  the certified gap `--target-gap` within `--time-limit`, its reference: the proven
  optimum must lie inside its certificate.
- `large`: per n (`--large-sizes`, default 10^4) and seed, the allocation asked for a
  proof (it stops at `--target-gap` only if the proof is not reached in `--time-limit`).
- `profile`: per seed (`--profile-seeds`, n = `--profile-size`), every winner's W*_{-i}
  by the multiple-knapsack solver, sequentially: nodes and seconds from the warm start
  (what the payments do), the warm start's and the root bound's distance to W*_{-i}
  (relative), and the nodes and seconds of the same search started from the W*_{-i}
  assignment it found (the proof alone). Where the two node counts are close, proving
  W*_{-i} is the cost; where the first is far larger, finding it is.
  `--aspiration-nodes N` gives every solve N nodes of aspiration windows (see
  `mercat.clearing.vcg.mulknap.ASPIRATION_NODES`; 0, the solver's default, runs none).

`--solver` picks the solver of the other sections (default `auto`: the mechanism's own
choice).

Timings are wall-clock seconds on a shared 2-core machine: noisy; `machine` records the
core count and load. Seeds are 0..`--seeds`-1.

    .venv/bin/python benchmarks/bench_vcg.py [--seeds 3] [--quick] [--sections exact fig5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from mercat.clearing.vcg import mulknap
from mercat.clearing.vcg.instance import seed003_standard_auction
from mercat.clearing.vcg.mechanism import (
    SOLVERS,
    allocate,
    clarke_payments,
    payments_from,
    payments_in_pool,
    split_users,
)
from mercat.clearing.vcg.mulknap import refill, solve_mulknap
from mercat.clearing.vcg.reference import plain_milp
from mercat.market.generators import WIDE_CAPACITY_FACTOR


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def allocation_record(state, seconds: float) -> dict:
    return {
        "allocation_seconds": round(seconds, 4),
        "proven_optimal": state.proven_optimal,
        "welfare": state.welfare,
        "bound": state.bound,
        "gap": state.gap,
        "winners": int(state.winners.shape[0]),
    }


def exact_run(n: int, seed: int, args) -> dict:
    auction = seed003_standard_auction(n, 8, seed)
    state, seconds = timed(allocate, auction, time_limit=args.time_limit, solver=args.solver)
    record = {"n": n, "seed": seed, **allocation_record(state, seconds)}
    if n > args.payments_up_to:
        record["payments"] = "not run (n > --payments-up-to)"
        return record
    sequential, seq_seconds = timed(clarke_payments, state, state.winners)
    outcome = payments_from(state, [sequential])
    pooled, pool_seconds = timed(payments_in_pool, state, args.workers, args.workers)
    pooled_outcome = payments_from(state, pooled)
    record.update(
        {
            "payments_sequential_seconds": round(seq_seconds, 4),
            "payments_pool_seconds": round(pool_seconds, 4),
            "pool_workers": args.workers,
            "payments_exact": outcome.payments_exact,
            "payment_uncertainty": outcome.payment_uncertainty,
            "pool_agrees": bool(np.array_equal(outcome.payments, pooled_outcome.payments)),
            "total_seconds_sequential": round(seconds + seq_seconds, 4),
            "total_seconds_pool": round(seconds + pool_seconds, 4),
            "slowest_payment_seconds": round(float(sequential.seconds.max(initial=0.0)), 4),
            "revenue": float(outcome.payments.sum()),
        }
    )
    return record


def certified_run(n: int, seed: int, args) -> dict:
    auction = seed003_standard_auction(n, 8, seed)
    state, seconds = timed(
        allocate,
        auction,
        time_limit=args.time_limit,
        target_gap=args.target_gap,
        solver=args.solver,
    )
    record = {"n": n, "seed": seed, "target_gap": args.target_gap}
    record.update(allocation_record(state, seconds))
    if n <= args.certified_payments_up_to:
        results, pay_seconds = timed(payments_in_pool, state, args.workers, args.workers)
        outcome = payments_from(state, results)
        record.update(
            {
                "payments_pool_seconds": round(pay_seconds, 4),
                "total_seconds_pool": round(seconds + pay_seconds, 4),
                "payments_exact": outcome.payments_exact,
                # Each payment lies in [lower, upper]; the charged one is individually rational.
                "widest_payment_interval": float(
                    (outcome.payment_upper - outcome.payment_lower).max()
                ),
                "revenue": float(outcome.payments.sum()),
            }
        )
    if args.best_effort_limit > 0:
        best, best_seconds = timed(
            allocate, auction, time_limit=args.best_effort_limit, solver=args.solver
        )
        record["best_effort"] = allocation_record(best, best_seconds)
    return record


def milp_run(seed: int, args) -> dict:
    auction = seed003_standard_auction(125, 8, seed)
    reference, seconds = timed(plain_milp, auction, time_limit=args.milp_limit)
    ours, our_seconds = timed(allocate, auction, time_limit=args.time_limit, solver=args.solver)
    return {
        "solver": args.solver,
        "n": 125,
        "seed": seed,
        "time_limit": args.milp_limit,
        "milp_seconds": round(seconds, 4),
        "milp_proven_optimal": reference.proven_optimal,
        "milp_welfare": reference.welfare,
        "milp_bound": reference.bound,
        "milp_gap": (reference.bound - reference.welfare) / reference.bound,
        "mercat_seconds": round(our_seconds, 4),
        "mercat_proven_optimal": ours.proven_optimal,
        "mercat_welfare": ours.welfare,
        "milp_welfare_shortfall": ours.welfare - reference.welfare,
    }


def fig5_run(n: int, seed: int, args) -> dict:
    auction = seed003_standard_auction(n, 8, seed)
    state, seconds = timed(allocate, auction, time_limit=args.time_limit, solver=args.solver)
    sequential, seq_seconds = timed(clarke_payments, state, state.winners)
    per_user = dict(zip(sequential.users.tolist(), sequential.seconds.tolist(), strict=True))
    record = {"n": n, "seed": seed, "allocation_seconds": round(seconds, 4)}
    record["payments_exact"] = payments_from(state, [sequential]).payments_exact
    for groups in (1, 2, 4):
        subsets = split_users(state.winners, groups)
        critical = max(sum(per_user[int(u)] for u in subset) for subset in subsets)
        record[f"p{groups}_critical_path_seconds"] = round(seconds + critical, 4)
        if groups == 1:
            record["p1_wall_seconds"] = round(seconds + seq_seconds, 4)
        else:
            _, wall = timed(payments_in_pool, state, groups, groups)
            record[f"p{groups}_wall_seconds"] = round(seconds + wall, 4)
    return record


def generator_run(seed: int, args) -> dict:
    auction = seed003_standard_auction(125, 8, seed, capacity_factor=WIDE_CAPACITY_FACTOR)
    state, seconds = timed(allocate, auction, time_limit=args.generator_limit, solver=args.solver)
    return {"n": 125, "seed": seed, "capacity_factor": list(WIDE_CAPACITY_FACTOR)} | (
        allocation_record(state, seconds)
    )


def versus_run(n: int, seed: int, args) -> dict:
    auction = seed003_standard_auction(n, 8, seed)
    state, seconds = timed(allocate, auction, time_limit=args.time_limit, solver="mulknap")
    groups = args.groups or args.workers
    results, pay_seconds = timed(payments_in_pool, state, groups, args.workers)
    outcome = payments_from(state, results)
    previous, previous_seconds = timed(
        allocate, auction, time_limit=args.time_limit, target_gap=args.target_gap, solver="colgen"
    )
    slowest = max((float(r.seconds.max(initial=0.0)) for r in results), default=0.0)
    return {
        "n": n,
        "seed": seed,
        "mulknap": allocation_record(state, seconds)
        | {
            "payments_pool_seconds": round(pay_seconds, 4),
            "pool_workers": args.workers,
            "pool_groups": groups,
            "slowest_payment_seconds": round(slowest, 4),
            "payments_summed_seconds": round(sum(float(r.seconds.sum()) for r in results), 4),
            "payments_exact": outcome.payments_exact,
            "total_seconds_pool": round(seconds + pay_seconds, 4),
            "revenue": float(outcome.payments.sum()),
        },
        "colgen": allocation_record(previous, previous_seconds) | {"target_gap": args.target_gap},
        "optimum_inside_colgen_certificate": bool(
            previous.welfare <= state.welfare * (1 + 1e-12)
            and state.welfare <= previous.bound * (1 + 1e-12)
        ),
    }


def large_run(n: int, seed: int, args) -> dict:
    auction = seed003_standard_auction(n, 8, seed)
    state, seconds = timed(allocate, auction, time_limit=args.time_limit, solver=args.solver)
    record = {"n": n, "seed": seed, "solver": args.solver} | allocation_record(state, seconds)
    if not state.proven_optimal:
        certified, certified_seconds = timed(
            allocate,
            auction,
            time_limit=args.time_limit,
            target_gap=args.target_gap,
            solver=args.solver,
        )
        record["certified"] = allocation_record(certified, certified_seconds)
    return record


def profile_run(n: int, seed: int, args) -> dict:
    auction = seed003_standard_auction(n, 8, seed)
    state, seconds = timed(allocate, auction, time_limit=args.time_limit, solver="mulknap")
    record = {"n": n, "seed": seed} | allocation_record(state, seconds)
    units = state.units
    if units is None or not state.proven_optimal:
        return record | {"winners_profiled": "not run (no proven allocation in integer units)"}
    rows = []
    for user in state.winners.tolist():
        without = state.assignment.copy()
        without[user] = -1
        warm = refill(units, without, int(state.assignment[user]), user)
        options = {"excluded": user, "upper": state.bound_units}
        start = time.perf_counter()
        found = solve_mulknap(units, incumbent=warm, deadline=start + args.time_limit, **options)
        found_seconds = time.perf_counter() - start
        root = solve_mulknap(units, incumbent=warm, node_limit=1, **options)
        start = time.perf_counter()
        proof = solve_mulknap(
            units, incumbent=found.assignment, deadline=start + args.time_limit, **options
        )
        proof_seconds = time.perf_counter() - start
        rows.append(
            {
                "user": user,
                "seconds": round(found_seconds, 4),
                "nodes": found.nodes,
                "proven": found.proven,
                "warm_start_gap": (found.value - units.value(warm)) / found.value,
                "root_bound_gap": (root.bound - found.value) / found.value,
                # From the best assignment found when the search did not prove it.
                "proof_from_optimum_nodes": proof.nodes,
                "proof_proven": proof.proven,
                "proof_from_optimum_seconds": round(proof_seconds, 4),
            }
        )
    rows.sort(key=lambda row: -row["seconds"])
    return record | {
        "payments_sequential_seconds": round(sum(row["seconds"] for row in rows), 4),
        "unproven": sum(not row["proven"] for row in rows),
        "winners_profiled": rows,
    }


SECTIONS = (
    "exact",
    "certified",
    "plain_milp",
    "fig5",
    "generator_setup",
    "versus",
    "large",
    "profile",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--exact-sizes", type=int, nargs="*", default=[125, 250])
    parser.add_argument("--gap-sizes", type=int, nargs="*", default=[500, 1000])
    parser.add_argument("--fig5-sizes", type=int, nargs="*", default=[25, 50, 75, 100, 125])
    parser.add_argument("--time-limit", type=float, default=60.0, help="per welfare problem")
    parser.add_argument("--target-gap", type=float, default=1e-3)
    parser.add_argument("--best-effort-limit", type=float, default=0.0)
    parser.add_argument("--payments-up-to", type=int, default=125)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--groups",
        type=int,
        default=0,
        help="payment subsets of the versus section (0: one per worker); more subsets than "
        "workers balance the pool's load (a few W*_{-i} solves take most of the time)",
    )
    parser.add_argument("--certified-payments-up-to", type=int, default=1000)
    parser.add_argument("--milp-limit", type=float, default=60.0)
    parser.add_argument("--generator-limit", type=float, default=20.0)
    parser.add_argument("--versus-sizes", type=int, nargs="*", default=[1000])
    parser.add_argument("--large-sizes", type=int, nargs="*", default=[10_000])
    parser.add_argument("--profile-size", type=int, default=1000)
    parser.add_argument("--profile-seeds", type=int, nargs="*", default=[2])
    parser.add_argument("--aspiration-nodes", type=int, default=mulknap.ASPIRATION_NODES)
    parser.add_argument("--solver", default="auto", choices=SOLVERS)
    parser.add_argument("--quick", action="store_true", help="one seed, short limits")
    parser.add_argument(
        "--sections",
        nargs="*",
        default=[section for section in SECTIONS if section != "profile"],
        choices=SECTIONS,
        help="what to run (`profile` only when named)",
    )
    args = parser.parse_args()
    mulknap.ASPIRATION_NODES = args.aspiration_nodes
    if args.quick:
        args.seeds, args.milp_limit, args.generator_limit = 1, 10.0, 5.0
        args.exact_sizes, args.gap_sizes, args.fig5_sizes = [125], [1000], [50, 125]
        args.versus_sizes, args.large_sizes = [1000], [10_000]
        args.certified_payments_up_to = 0  # n = 1000's payments take up to a minute

    # Compile the numba kernels (cached on disk) outside the timings.
    allocate(seed003_standard_auction(30, 4, 0))
    load_before = os.getloadavg()
    seeds = range(args.seeds)
    result: dict = {"benchmark": "vcg", "setup": "seed 003 §6.3, capacity factor U[0, 0.25]"}
    result["aspiration_nodes"] = mulknap.ASPIRATION_NODES
    runs = {
        "exact": [(exact_run, n, seed) for n in args.exact_sizes for seed in seeds],
        "certified": [(certified_run, n, seed) for n in args.gap_sizes for seed in seeds],
        "plain_milp": [(milp_run, seed) for seed in seeds],
        "fig5": [(fig5_run, n, seed) for n in args.fig5_sizes for seed in seeds],
        "generator_setup": [(generator_run, seed) for seed in seeds],
        "versus": [(versus_run, n, seed) for n in args.versus_sizes for seed in seeds],
        "large": [(large_run, n, seed) for n in args.large_sizes for seed in seeds],
        "profile": [(profile_run, args.profile_size, seed) for seed in args.profile_seeds],
    }
    for section in SECTIONS:
        if section not in args.sections:
            continue
        result[section] = []
        for run, *where in runs[section]:
            log(f"{section} {where}")
            result[section].append(run(*where, args))
    result["machine"] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
