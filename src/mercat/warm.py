"""Compile mercat's largest numba kernels once, into numba's on-disk cache.

The VCG solvers (`clearing/vcg/`: the multiple-knapsack search and its knapsack blocks) take
about a minute of CPU to compile, seed 000's per-run body (`scenarios/collective_body.py`)
about 25 s for each of its two CPU compilations (the fast engine, and the gpu engine's CPU
twin). All are cached on disk (`cache=True`), but a cold cache is compiled by every
process that needs it at the same time: the distributed auctioneer's providers, a node's
workers, a test runner's workers. `make test` runs this first so that they all load the
cache instead; a user who starts many processes at once can do the same:

    python -m mercat.warm
"""

from __future__ import annotations

import time


def warm() -> dict[str, float]:
    """Run each compiled path once on a tiny input; seconds per path."""
    from mercat.clearing.vcg.mechanism import VCGMechanism
    from mercat.market.generators import standard_auction_market
    from mercat.scenarios.collective_config import CollectiveConfig
    from mercat.scenarios.collective_sim import simulate

    seconds = {}
    start = time.perf_counter()
    for solver in ("auto", "colgen"):
        VCGMechanism(workers=0, solver=solver).clear(standard_auction_market(3, 12, 3))
    # a market large enough for the exact path's packing search (`clearing/vcg/packing.py`),
    # which the small one never reaches: without it, the first VCG round of 100 users in a
    # fresh process paid about 5 s of compilation (seen in the distributed auctioneer's Fig. 5)
    VCGMechanism(workers=0).clear(standard_auction_market(0, 60, 8))
    seconds["vcg"] = time.perf_counter() - start
    start = time.perf_counter()
    simulate(CollectiveConfig(assets=10, tasks=50), runs=1, engine="fast")
    seconds["collective_fast"] = time.perf_counter() - start
    start = time.perf_counter()
    warm_collective_gpu_twin()
    seconds["collective_gpu_twin"] = time.perf_counter() - start
    return seconds


def warm_collective_gpu_twin() -> None:
    """The gpu engine's CPU twin (the body over the GPU's streams), for the tests that hold
    the GPU's runs equal to it."""
    from mercat.scenarios import collective_gpu
    from mercat.scenarios.collective_config import CollectiveConfig

    config = CollectiveConfig(assets=10, tasks=50)
    collective_gpu.simulate_runs_twin(config, collective_gpu.gpu_states(0, 1), None)


if __name__ == "__main__":
    for path, taken in warm().items():
        print(f"{path}: {taken:.1f} s")
