"""Market-maker dynamics (seed 001, attempt 4) on a 200-request, 50-node market.

Two perfect-information makers best-respond for `--rounds` rounds (or until a round changes
nothing, whichever comes first: with a price tick of 0.01 on a market of this size the
descent to a zero margin takes thousands of proposals, and single best responses took up to
212 s here). Measured per proposal: the maker's best response (the certified fast path:
near-optimal pool and undercut rays, `CertifiedResponder`) and the mechanism's evaluation
(`submit`: V check and IMPROVEMENT). The readable reference (`BestResponder.exact`: one
HiGHS solve per response) is timed on states sampled from the same run, side by side, and
must give the same gains. A small market (`--small`) is also run to the end with both
responders, and their traces must be identical.

The large market has no resource dimensions (capacities unlimited): with the generator's
two binding resources, HiGHS does not prove the welfare optimum of a 200 x 50 market within
a minute, and a best response must be exact. Every other constraint kind is there: replicas,
capabilities, node and state conflicts, exclusive node groups, fixed costs.

    .venv/bin/python benchmarks/bench_posted_price.py [--requests 200] [--nodes 50]
        [--tick 0.01] [--rounds 3]

`--rounds 100000` runs the dynamics to convergence: 214 rounds, 426 proposals, about 14 min
here (2026-11-23, 2 cores); the default 3 rounds take about a minute (63 s on 2026-11-24).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time

from mercat.clearing.optimal import solve_welfare
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


class TimedMaker(PerfectInformation):
    """A perfect-information maker, timing every decision; the makers of one run share
    `turns`, so it lists every decision in the order of the turns."""

    def __init__(self, turns: list, certify: bool = True) -> None:
        super().__init__(certify)
        self.turns = turns  # (maker id, standing seen, offer made or None, seconds)

    def propose(self, view: MakerView):
        start = time.perf_counter()
        offer = self.responder(view).respond(view.standing)
        self.turns.append((view.maker, view.standing, offer, time.perf_counter() - start))
        return None if offer is None else offer.proposal


def summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "mean_ms": 1e3 * statistics.fmean(values),
        "median_ms": 1e3 * statistics.median(values),
        "max_ms": 1e3 * max(values),
        "total_s": sum(values),
    }


def run(market, tick: float, certify: bool, rounds: int = 1_000_000):
    mechanism = TimedMechanism()
    turns: list = []
    makers = [TimedMaker(turns, certify), TimedMaker(turns, certify)]
    start = time.perf_counter()
    trace = run_dynamics(market, makers, attempt=mechanism, rounds=rounds, tick=tick)
    return trace, mechanism, turns, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--tick", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the large market's dynamics (each maker proposes once per round)",
    )
    parser.add_argument("--reference-states", type=int, default=8)
    parser.add_argument("--small", type=int, nargs=2, default=(10, 5), metavar=("T", "N"))
    args = parser.parse_args()

    market = random_market(args.seed, args.requests, args.nodes, n_resources=0, conflict_rate=0.01)
    start = time.perf_counter()
    optimum = solve_welfare(market)
    optimum_seconds = time.perf_counter() - start

    trace, mechanism, turns, seconds = run(market, args.tick, certify=True, rounds=args.rounds)
    final = trace.steps[-1]
    decision_seconds = [t[3] for t in turns]
    proposals = trace.proposals

    # The reference on turns of the same run, evenly spaced, timed side by side with the
    # certified path's time on the very same turns; it must find the same gains. One
    # reference per maker, its welfare optimum and encoding made before the clock starts
    # (the certified path holds both from earlier turns too).
    step = max(1, len(turns) // args.reference_states)
    sampled = turns[::step][: args.reference_states]
    references: dict[str, BestResponder] = {}
    slow_times, agree = [], True
    for maker_id, standing, fast, _ in sampled:
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
        same = (fast is None and slow is None) or (
            fast is not None
            and slow is not None
            and math.isclose(fast.gain, slow.gain, rel_tol=1e-7, abs_tol=1e-7)
        )
        agree = agree and same

    small_market = random_market(args.seed, *args.small)
    small_fast, _, small_fast_turns, small_fast_s = run(small_market, args.tick, certify=True)
    small_slow, _, small_slow_turns, small_slow_s = run(small_market, args.tick, certify=False)

    def signature(t):
        return [(s.maker, s.outcome, s.standing.allocation, round(s.margin, 7)) for s in t.steps]

    result = {
        "benchmark": "posted_price",
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "market": {
            "requests": len(market.requests),
            "nodes": len(market.nodes),
            "conflicts": len(market.conflicts),
            "exclusive_groups": len(market.exclusive_nodes),
            "resources": len(market.resources),
            "tick": args.tick,
            "seed": args.seed,
        },
        "optimum": {
            "welfare": optimum.welfare,
            "proven": optimum.proven,
            "seconds": optimum_seconds,
        },
        "dynamics": {
            "seconds": seconds,
            "rounds_limit": args.rounds,
            "rounds_played": trace.rounds,
            "turns": len(trace.steps),
            "proposals": proposals,
            "converged": trace.converged,
            "final_welfare": final.welfare,
            "welfare_ratio": final.welfare / optimum.welfare,
            "final_margin": final.margin,
            "participants": len(final.standing.allocation.served_requests)
            + len(final.standing.allocation.used_nodes),
            "highs_solves": trace.milp_solves,
            "certified_responses": trace.details.get("certified_responses"),
            "seconds_per_proposal": seconds / max(1, proposals),
        },
        "per_proposal": {
            "best_response_certified": summary(decision_seconds),
            "best_response_seconds_by_turn": [round(t, 4) for t in decision_seconds],
            "evaluation_submit": summary(mechanism.seconds),
        },
        "reference_side_by_side": {
            "turns_compared": len(sampled),
            "certified_same_turns": summary([t[3] for t in sampled]),
            "reference_exact": summary(slow_times),
            "same_gains": agree,
        },
        "small_market_full_run": {
            "requests": args.small[0],
            "nodes": args.small[1],
            "certified": {
                "seconds": small_fast_s,
                "turns": len(small_fast.steps),
                "highs_solves": small_fast.milp_solves,
                "best_response": summary([t[3] for t in small_fast_turns]),
            },
            "reference": {
                "seconds": small_slow_s,
                "turns": len(small_slow.steps),
                "highs_solves": small_slow.milp_solves,
                "best_response": summary([t[3] for t in small_slow_turns]),
            },
            "identical_traces": signature(small_fast) == signature(small_slow),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
