"""Double auction at scale: the vectorised rule against its readable twin, in one run.

Seed 003's set-up (bids U[0.75, 1.25], demands U(0, 1], unit costs U(0, 1], capacities the
even share of demand scaled by U[0.5, 1.5]); the bar is n = 10^6 users, m = 8 providers in
at most 0.5 s. Prints one JSON object: timings of the fast path (median and best of
`--repeats`, after one warm-up), of the reference (once), and whether the two agree.

    .venv/bin/python benchmarks/bench_double_auction.py [--users 1000000] [--providers 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

from mercat.clearing.double_auction import trade_reduction
from mercat.clearing.double_auction_reference import trade_reduction_reference
from mercat.market.generators import double_auction_arrays

BAR_SECONDS = 0.5


def agree(fast, slow) -> bool:
    return (
        fast.marginal_user == slow.marginal_user
        and fast.marginal_provider == slow.marginal_provider
        and fast.buyer_price == slow.buyer_price
        and fast.seller_price == slow.seller_price
        and np.allclose(fast.user_amount, slow.user_amount, rtol=0, atol=1e-9)
        and np.allclose(fast.provider_amount, slow.provider_amount, rtol=1e-12, atol=1e-9)
        and abs(fast.welfare - slow.welfare) <= 1e-9 * max(1.0, abs(slow.welfare))
        and len(fast.plan_amounts) == len(slow.plan_amounts)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--providers", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    arrays = double_auction_arrays(args.seed, args.users, args.providers)
    inputs = (arrays.bids, arrays.demands, arrays.costs, arrays.capacities)
    fast = trade_reduction(*inputs)  # warm-up (page faults, caches)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fast = trade_reduction(*inputs)
        times.append(time.perf_counter() - start)

    result = {
        "benchmark": "double_auction",
        "users": args.users,
        "providers": args.providers,
        "seed": args.seed,
        "fast_seconds_median": statistics.median(times),
        "fast_seconds_min": min(times),
        "bar_seconds": BAR_SECONDS,
        "meets_bar": statistics.median(times) <= BAR_SECONDS,
        "traded_quantity": fast.traded_quantity,
        "efficient_quantity": fast.efficient_quantity,
        "welfare": fast.welfare,
        "efficient_welfare": fast.efficient_welfare,
        "welfare_gap": 1 - fast.welfare / fast.efficient_welfare if fast.efficient_welfare else 0,
        "margin": fast.margin,
        "buyer_price": fast.buyer_price,
        "seller_price": fast.seller_price,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    if not args.skip_reference:
        start = time.perf_counter()
        slow = trade_reduction_reference(*inputs)
        result["reference_seconds"] = time.perf_counter() - start
        result["speedup"] = result["reference_seconds"] / result["fast_seconds_median"]
        result["agree"] = agree(fast, slow)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
