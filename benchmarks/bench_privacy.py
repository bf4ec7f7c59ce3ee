"""Private federated learning: the fast FedAvg beside its readable twin, and what privacy adds.

Prints one JSON object. For each federation size: the training loop's wall time (median of
`--repeats`) of the vectorized path and of the per-client reference on the same seed (and
whether their models agree), and, on the fast path, the time with central and with local noise
against the same run without noise (seed 002's Fig. 6 says privacy adds about 15-20 % to task
time). Then the accountant's cost: ε of a sampled run by PLD and by RDP.

    .venv/bin/python benchmarks/bench_privacy.py [--clients 1000 10000] [--rounds 50]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace

import numpy as np

from mercat.privacy.accountant import GaussianRuns, epsilon_spent
from mercat.privacy.fedavg import FedAvgConfig, make_federation, train, train_reference


def timed(engine, federation, cfg, seed, repeats):
    runs = [engine(federation, cfg, np.random.default_rng(seed)) for _ in range(repeats)]
    return runs[0], statistics.median(r.seconds for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--dim", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sizes = []
    for clients in args.clients:
        federation = make_federation(clients, args.dim, np.random.default_rng(args.seed))
        base = FedAvgConfig(rounds=args.rounds, noise="none", noise_multiplier=0.0)
        fast, fast_s = timed(train, federation, base, args.seed, args.repeats)
        slow, slow_s = timed(
            train_reference, federation, base, args.seed, max(1, args.repeats // 2)
        )
        row = {
            "clients": clients,
            "examples": int(sum(len(y) for y in federation.client_y)),
            "fast_seconds": fast_s,
            "reference_seconds": slow_s,
            "speedup": slow_s / fast_s,
            "agree": bool(np.allclose(fast.weights, slow.weights, rtol=1e-10, atol=1e-12)),
            "privacy_overhead_percent": {},
        }
        for placement in ("central", "local", "example"):
            private = replace(base, noise=placement, noise_multiplier=1.0)
            ratios = []
            for _ in range(args.repeats):  # alternate, so a slow spell hits both sides
                plain = train(federation, base, np.random.default_rng(args.seed)).seconds
                noisy = train(federation, private, np.random.default_rng(args.seed)).seconds
                ratios.append(noisy / plain)
            row["privacy_overhead_percent"][placement] = 100 * (statistics.median(ratios) - 1)
        sizes.append(row)

    accountant = {}
    runs = GaussianRuns(1.0, args.rounds, 0.2)
    for name in ("pld", "rdp"):
        start = time.perf_counter()
        eps = epsilon_spent(runs, 1e-5, name)
        accountant[name] = {"epsilon": eps, "seconds": time.perf_counter() - start}

    print(
        json.dumps(
            {
                "benchmark": "privacy",
                "machine": {"python": platform.python_version(), "processor": platform.machine()},
                "rounds": args.rounds,
                "dim": args.dim,
                "sizes": sizes,
                "seed_fig6_overhead_percent": [15, 20],
                "accountant_z1_q0.2": accountant,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
