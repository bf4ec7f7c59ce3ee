"""Market-maker dynamics (seed 001, attempt 4) on a 200-request, 50-node market, fast path
against the exact reference.

Two perfect-information makers best-respond until a round changes nothing. The fast path
(`CertifiedResponder`: undercut rays, the near-optimal pool, and the challenge model kept
between turns, `posted_price_challenge`) plays the whole run; every best response and every
evaluation by the mechanism (`submit`) is timed. The exact reference (`BestResponder.exact`:
the reference's challenge MILP solved afresh by HiGHS at every turn) is then run beside it
in the same process on the same market:

- `--reference full`: the whole dynamics again with exact best responses; the two traces
  (every turn's maker, outcome, allocation and margin) must be identical;
- `--reference sampled` (default): the exact best response on `--reference-states` turns
  of the fast run, evenly spaced, timed beside the fast path's time on the very same turns;
  it must find the same gains;
- `--reference none`.

A small market (`--small`) is also run to the end with both responders, and their traces
must be identical.

The large market has no resource dimensions (capacities unlimited): with the generator's
two binding resources, HiGHS does not prove the welfare optimum of a 200 x 50 market within
a minute, and a best response must be exact. Every other constraint kind is there: replicas,
capabilities, node and state conflicts, exclusive node groups, fixed costs.

    .venv/bin/python benchmarks/bench_posted_price.py [--requests 200] [--nodes 50]
        [--tick 0.01] [--rounds 40] [--reference sampled|full|none] [--progress]
        [--time-limit SECONDS] [--optimum highs|none]

The default 40 rounds compare the fast path with the exact reference on sampled turns in
about 40 s, the reference taking most of it (`make bench` runs it so); `--rounds 100000` runs to
convergence (426 proposals at 200 x 50, about 25 CPU s for the fast path), and
`--time-limit S` stops it after S seconds and reports how far it got (turns, the last
margin, best-response CPU time per quarter of the run).
Times are wall-clock and CPU seconds of this process; on a shared machine the wall-clock
times include waiting for a core (`machine.load_average_before`/`_after` say how busy it
was).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time

from mercat.clearing.optimal import solve_welfare
from mercat.clearing.posted_price import challenge
from mercat.clearing.posted_price.dynamics import run_dynamics
from mercat.clearing.posted_price.makers import MakerView, PerfectInformation
from mercat.clearing.posted_price.response import BestResponder
from mercat.clearing.posted_price.template import ToleranceImprovement
from mercat.market.generators import random_market


class TimedMechanism(ToleranceImprovement):
    """Attempt 4, timing every evaluation of a proposal."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def submit(self, market, standing, proposal):
        start = time.perf_counter()
        result = super().submit(market, standing, proposal)
        self.seconds.append(time.perf_counter() - start)
        return result


class OutOfTime(Exception):
    """The large market's dynamics ran past `--time-limit`."""


class TimedMaker(PerfectInformation):
    """A perfect-information maker, timing every decision; the makers of one run share
    `turns`, so it lists every decision in the order of the turns."""

    def __init__(
        self,
        turns: list,
        certify: bool = True,
        progress: bool = False,
        deadline: float | None = None,
    ) -> None:
        super().__init__(certify)
        self.turns = turns  # (maker id, standing seen, offer or None, seconds, CPU seconds)
        self.progress = progress
        self.deadline = deadline  # perf_counter() after which the run stops (OutOfTime)

    def propose(self, view: MakerView):
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise OutOfTime
        start, cpu = time.perf_counter(), time.process_time()
        responder = self.responder(view)
        offer = responder.respond(view.standing)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        self.turns.append((view.maker, view.standing, offer, seconds, cpu))
        if self.progress:  # one line per turn on stderr, to follow a long run
            gain = "pass" if offer is None else f"gain {offer.gain:.4f}"
            print(
                f"turn {len(self.turns)} {view.maker} {seconds:.3f} s ({cpu:.3f} s CPU) {gain} "
                f"milp {responder.milp_solves} lp {getattr(responder, 'lp_solves', 0)}",
                file=sys.stderr,
                flush=True,
            )
        return None if offer is None else offer.proposal


def summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(values),
        "mean_ms": 1e3 * statistics.fmean(values),
        "median_ms": 1e3 * statistics.median(values),
        "p90_ms": 1e3 * ordered[int(0.9 * (len(ordered) - 1))],
        "max_ms": 1e3 * max(values),
        "total_s": sum(values),
    }


def run(
    market,
    tick: float,
    certify: bool,
    rounds: int = 1_000_000,
    progress: bool = False,
    time_limit: float | None = None,
):
    """The dynamics with timed makers; the trace is None if they ran past `time_limit`."""
    mechanism = TimedMechanism()
    turns: list = []
    wall, cpu = time.perf_counter(), time.process_time()
    deadline = None if time_limit is None else wall + time_limit
    makers = [TimedMaker(turns, certify, progress, deadline) for _ in range(2)]
    try:
        trace = run_dynamics(market, makers, attempt=mechanism, rounds=rounds, tick=tick)
    except OutOfTime:
        trace = None
    seconds = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    return trace, mechanism, turns, seconds


def stopped(seconds, turns) -> dict:
    """How far a run cut off by `--time-limit` got."""
    last = next((t[2] for t in reversed(turns) if t[2] is not None), None)
    return {
        "stopped_by_time_limit": True,
        "wall_s": seconds["wall"],
        "cpu_s": seconds["cpu"],
        "turns": len(turns),
        "last_proposal_margin": None if last is None else last.margin,
        "best_response": summary([t[3] for t in turns]),
        "best_response_cpu": summary([t[4] for t in turns]),
        "best_response_cpu_by_quarter": [
            summary([t[4] for t in turns[k * len(turns) // 4 : (k + 1) * len(turns) // 4]])
            for k in range(4)
        ],
    }


def signature(trace):
    return [(s.maker, s.outcome, s.standing.allocation, round(s.margin, 7)) for s in trace.steps]


def outcome(trace, seconds, turns, optimum) -> dict:
    final = trace.steps[-1]
    return {
        "wall_s": seconds["wall"],
        "cpu_s": seconds["cpu"],
        "rounds_played": trace.rounds,
        "turns": len(trace.steps),
        "proposals": trace.proposals,
        "converged": trace.converged,
        "final_welfare": final.welfare,
        "welfare_ratio": None if optimum is None else final.welfare / optimum,
        "final_margin": final.margin,
        "participants": len(final.standing.allocation.served_requests)
        + len(final.standing.allocation.used_nodes),
        "highs_milp_solves": trace.milp_solves,
        "highs_lp_solves": trace.details.get("lp_solves", 0),
        "certified_responses": trace.details.get("certified_responses", 0),
        "placement": trace.details.get("placement", []),
        "wall_s_per_proposal": seconds["wall"] / max(1, trace.proposals),
        "best_response": summary([t[3] for t in turns]),
        "best_response_cpu": summary([t[4] for t in turns]),
        "best_response_cpu_by_quarter": [
            summary([t[4] for t in turns[k * len(turns) // 4 : (k + 1) * len(turns) // 4]])
            for k in range(4)
        ],
    }


def start_side_by_side(market, mechanism, tick: float, turns: list, count: int) -> dict:
    """The restricted challenge MILP of `count` turns from the second half of the run, solved
    with and without the best known candidate as HiGHS's start, alternately, twice each
    (CPU seconds; the same model, bounds and fixing for both). Each turn's responder is
    warmed on the three turns before it, so its candidates are those the run had."""
    from mercat.clearing.highs import solve_max
    from mercat.clearing.posted_price.certificate import CertifiedResponder
    from mercat.clearing.posted_price.challenge import RESTRICTED_MILP_OPTIONS
    from mercat.clearing.posted_price.fixing import fix_columns, lagrangian_bound

    half = len(turns) // 2
    step = max(1, (len(turns) - half) // max(1, count))
    picked = [k for k in range(max(half, 3), len(turns), step)][:count]
    cold, warm, rows = [], [], []
    for k in picked:
        shared: dict = {}
        responders = {
            m: CertifiedResponder(market, mechanism, m, tick, shared=shared) for m in ("mm1", "mm2")
        }
        for maker, standing, *_ in turns[k - 3 : k]:
            responders[maker].respond(standing)
        maker, standing, answer, *_ = turns[k]
        if answer is None or len(standing.members) != 1:
            continue
        responder = responders[maker]
        (holder,) = standing.members
        model = responder.challenge_model
        priced = [
            (responder.offer(a, standing), a)
            for a in dict.fromkeys([holder.allocation, *reversed(model.recent)])
        ]
        offer, allocation = max(
            ((o, a) for o, a in priced if o is not None), key=lambda c: c[0].gain
        )
        milp, constant = model.model(holder, maker)
        bound = lagrangian_bound(milp, model._relaxation_duals(holder))
        lower, upper, _ = fix_columns(milp, bound, offer.gain - constant)
        restricted = dataclasses.replace(milp, col_lower=lower, col_upper=upper)
        point = model.point(holder, allocation)
        times = {"cold": [], "warm": []}
        values = set()
        for _ in range(2):
            for label, initial in (("cold", None), ("warm", point)):
                begin = time.process_time()
                result = solve_max(restricted, options=RESTRICTED_MILP_OPTIONS, initial=initial)
                times[label].append(time.process_time() - begin)
                values.add(round(result.objective + constant, 7))
        cold.append(statistics.fmean(times["cold"]))
        warm.append(statistics.fmean(times["warm"]))
        rows.append(
            {
                "turn": k + 1,
                "candidate_short_of_optimum": answer.gain - offer.gain,
                "cold_cpu_s": cold[-1],
                "started_cpu_s": warm[-1],
                "same_optimum": len(values) == 1 and abs(values.pop() - answer.gain) < 1e-6,
            }
        )
    return {
        "turns": rows,
        "cold_cpu_s_total": sum(cold),
        "started_cpu_s_total": sum(warm),
        "same_optimum": all(r["same_optimum"] for r in rows),
    }


def same(fast, slow) -> bool:
    if fast is None or slow is None:
        return fast is None and slow is None
    return math.isclose(fast.gain, slow.gain, rel_tol=1e-7, abs_tol=1e-7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--tick", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=40,
        help="rounds of the large market's dynamics (each maker proposes once per round; "
        "100000 runs to convergence)",
    )
    parser.add_argument("--reference", choices=("sampled", "full", "none"), default="sampled")
    parser.add_argument("--reference-states", type=int, default=8)
    parser.add_argument("--progress", action="store_true", help="one line per turn on stderr")
    parser.add_argument(
        "--start-side-by-side",
        type=int,
        default=0,
        metavar="K",
        help="re-solve the restricted challenge MILP of K late turns with and without the "
        "known candidate as HiGHS's start",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="stop the large market's dynamics after this many wall-clock seconds and report "
        "how far they got (no reference then)",
    )
    parser.add_argument("--small", type=int, nargs=2, default=(10, 5), metavar=("T", "N"))
    parser.add_argument(
        "--optimum",
        choices=("highs", "none"),
        default="highs",
        help="the welfare optimum the final welfare is compared with: HiGHS on the whole "
        "encoding, or none (a market too large for it: the makers' own openings still solve "
        "it, through the placement solver)",
    )
    parser.add_argument(
        "--challenge-cycle-rows",
        choices=("on", "off"),
        default="on",
        help="cut each challenge LP by the odd cycles of market conflicts it violates "
        "(posted_price.challenge.CYCLE_ROWS); off: only the welfare LP's cycles, for a "
        "side-by-side run",
    )
    args = parser.parse_args()
    challenge.CYCLE_ROWS = args.challenge_cycle_rows == "on"

    market = random_market(args.seed, args.requests, args.nodes, n_resources=0, conflict_rate=0.01)
    start = time.perf_counter()
    optimum = None if args.optimum == "none" else solve_welfare(market)
    optimum_seconds = time.perf_counter() - start
    if args.progress and optimum is not None:
        print(f"welfare optimum {optimum.welfare:.4f} in {optimum_seconds:.1f} s", file=sys.stderr)

    trace, mechanism, turns, seconds = run(
        market,
        args.tick,
        certify=True,
        rounds=args.rounds,
        progress=args.progress,
        time_limit=args.time_limit,
    )
    result: dict = {
        "benchmark": "posted_price",
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg(),
        },
        "market": {
            "requests": len(market.requests),
            "nodes": len(market.nodes),
            "conflicts": len(market.conflicts),
            "exclusive_groups": len(market.exclusive_nodes),
            "resources": len(market.resources),
            "tick": args.tick,
            "seed": args.seed,
            "rounds_limit": args.rounds,
            "challenge_cycle_rows": args.challenge_cycle_rows,
        },
        "optimum": None
        if optimum is None
        else {
            "welfare": optimum.welfare,
            "proven": optimum.proven,
            "seconds": optimum_seconds,
        },
        "fast": stopped(seconds, turns)
        if trace is None
        else outcome(trace, seconds, turns, None if optimum is None else optimum.welfare),
        "evaluation_submit": summary(mechanism.seconds),
    }

    if args.start_side_by_side:
        result["restricted_milp_start"] = start_side_by_side(
            market, mechanism, args.tick, turns, args.start_side_by_side
        )
    if trace is None:
        pass  # cut off by --time-limit: nothing to compare the reference with
    elif args.reference == "full":
        slow, _, slow_turns, slow_seconds = run(
            market, args.tick, certify=False, rounds=args.rounds, progress=args.progress
        )
        result["reference"] = outcome(
            slow, slow_seconds, slow_turns, None if optimum is None else optimum.welfare
        )
        result["reference"]["identical_traces"] = signature(trace) == signature(slow)
        result["speedup_wall"] = slow_seconds["wall"] / seconds["wall"]
        result["speedup_cpu"] = slow_seconds["cpu"] / seconds["cpu"]
    elif args.reference == "sampled":
        # One reference per maker, its welfare optimum and encoding made before the clock
        # starts (the fast path holds both from earlier turns too).
        step = max(1, len(turns) // args.reference_states)
        sampled = turns[::step][: args.reference_states]
        references: dict[str, BestResponder] = {}
        slow_times, agree = [], True
        for maker_id, standing, fast, *_ in sampled:
            reference = references.get(maker_id)
            if reference is None:
                reference = references[maker_id] = BestResponder(
                    market, trace.mechanism, maker_id, args.tick
                )
                reference.welfare_optimum()
                reference.encoding()
            begin = time.perf_counter()
            slow = reference.exact(standing)
            slow_times.append(time.perf_counter() - begin)
            agree = agree and same(fast, slow)
        result["reference_sampled"] = {
            "turns_compared": len(sampled),
            "fast_same_turns": summary([t[3] for t in sampled]),
            "reference_exact": summary(slow_times),
            "same_gains": agree,
        }

    small_market = random_market(args.seed, *args.small)
    small_fast, _, small_fast_turns, small_fast_s = run(small_market, args.tick, certify=True)
    small_slow, _, small_slow_turns, small_slow_s = run(small_market, args.tick, certify=False)
    result["small_market_full_run"] = {
        "requests": args.small[0],
        "nodes": args.small[1],
        "fast": {
            "wall_s": small_fast_s["wall"],
            "turns": len(small_fast.steps),
            "highs_milp_solves": small_fast.milp_solves,
            "best_response": summary([t[3] for t in small_fast_turns]),
        },
        "reference": {
            "wall_s": small_slow_s["wall"],
            "turns": len(small_slow.steps),
            "highs_milp_solves": small_slow.milp_solves,
            "best_response": summary([t[3] for t in small_slow_turns]),
        },
        "identical_traces": signature(small_fast) == signature(small_slow),
    }
    result["machine"]["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
