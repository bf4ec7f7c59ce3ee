"""What the node's protections cost, side by side with the work they protect.

Prints JSON:
- `worker_start`: seconds to start the fork server (once per node) and then one worker;
- `clearing`: seconds per `optimal` clearing of the running example, in the node's worker pool
  (pickling the body and the answer, a pipe round trip) and called in process, best of
  `--repeats` batches of `--solves` each (the machine is shared: the best batch is the one
  least slowed by other work);
- `nesting_depth`: seconds to measure the nesting of a market body of `--market-mib` MiB with
  the byte scan of `mercat.untrusted` and a character-by-character twin.

Usage: .venv/bin/python benchmarks/bench_node.py [--solves 20] [--repeats 3] [--market-mib 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import anyio


def best_batch(run, solves: int, repeats: int) -> dict[str, object]:
    batches = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(solves):
            run()
        batches.append((time.perf_counter() - start) / solves)
    return {"best_s": min(batches), "batches_s": batches}


def depth_reference(text: str) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--solves", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--market-mib", type=float, default=4.0)
    args = parser.parse_args()

    from mercat.market.generators import running_example, standard_auction_market
    from mercat.market.market_io import dumps_market
    from mercat.node.jobs import clear_market
    from mercat.node.limits import NodeLimits
    from mercat.node.workers import WorkerPool
    from mercat.untrusted import json_depth

    limits = NodeLimits()
    body = json.dumps({"market": json.loads(dumps_market(running_example()))}).encode()
    pool = WorkerPool(workers=1, queue=0, time_limit=60)
    results: dict[str, object] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
    }
    try:

        async def first() -> None:
            await pool.call(len, b"")

        start = time.perf_counter()
        anyio.run(first)
        cold = time.perf_counter() - start
        pool.close()
        start = time.perf_counter()
        anyio.run(first)
        results["worker_start"] = {"fork_server_and_worker_s": cold,
                                   "worker_s": time.perf_counter() - start}  # fmt: skip

        async def solves_in_pool() -> None:
            for _ in range(args.solves):
                await pool.call(clear_market, "optimal", body, 0, limits)

        batches = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            anyio.run(solves_in_pool)
            batches.append((time.perf_counter() - start) / args.solves)
        in_process = best_batch(
            lambda: clear_market("optimal", body, 0, limits), args.solves, args.repeats
        )
        results["clearing"] = {
            "market": "running example, optimal",
            "worker_pool": {"best_s": min(batches), "batches_s": batches},
            "in_process": in_process,
        }
    finally:
        pool.close()

    unit = dumps_market(standard_auction_market(0, 200, 8))
    copies = max(1, int(args.market_mib * 2**20 / len(unit)))
    text = "[" + ",".join([unit] * copies) + "]"
    start = time.perf_counter()
    fast = json_depth(text.encode())
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    reference = depth_reference(text)
    reference_s = time.perf_counter() - start
    assert fast == reference
    results["nesting_depth"] = {
        "bytes": len(text),
        "depth": fast,
        "vectorized_s": fast_s,
        "reference_s": reference_s,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
