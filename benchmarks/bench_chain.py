"""Gas per settlement and settlement throughput of the market contracts.

Prints JSON:
- `gas`: gas used per operation from web3 receipts (intrinsic 21,000 + calldata +
  execution, after refunds), on eth-tester (py-evm) and, when node/npm are present, on a
  ganache node started here; settlements of 1, 4, 8 and 16 assets, success and failure,
  with and without payouts, the first task of a settled-bitmap word against the following
  ones, a settlement that removes its asset, and a 2-of-3 oracle quorum (summed over
  its reports); deposit, escrow, registration and refund for scale. boa reports no gas:
  its figure leaves out the intrinsic and calldata cost.
- `throughput`: 4-asset settlements per second on boa, web3 over eth-tester and web3 over
  ganache (HTTP), side by side, each on a fresh market; the best of `--repeats` batches
  (the machine is shared: the best batch is the one least slowed by other work), with
  every batch's time listed.

Usage: .venv/bin/python benchmarks/bench_chain.py [--settlements 100] [--repeats 3]
       [--no-ganache]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from mercat.chain.boa_backend import BoaBackend
from mercat.chain.ganache import GanacheNode, node_tools_missing
from mercat.chain.market import ChainMarket, integer_rule
from mercat.chain.web3_backend import Web3Backend

UNIT = 10_000
PENALTY, S0 = 99 * UNIT, 990 * UNIT
RULE = integer_rule("coll-stake", S0, "0.01", PENALTY)
REPO = Path(__file__).resolve().parents[1]


def _market(backend, oracles: int = 0) -> tuple[ChainMarket, str, str]:
    market = ChainMarket.deploy(backend, RULE, oracles=oracles)
    owner, requester = market.new_account(), market.new_account()
    market.fund(owner, 10**15)
    market.fund(requester, 10**15)
    market.fund_pool(owner, 10**12)
    for asset in range(1, 17):
        market.register_asset(owner, asset, S0)
    market.escrow(requester, 1, 10**12)
    return market, owner, requester


def gas_table(backend_factory) -> dict:
    market, owner, requester = _market(backend_factory())
    table: dict[str, int | None] = {}
    task = iter(range(10**6))
    # Task 0 of round 0 writes a fresh bitmap word; the next ones share it.
    table["settle_4_assets_success_first_in_word"] = market.settle(
        0, next(task), [1, 2, 3, 4], True
    ).gas_used
    for n in (1, 4, 8, 16):
        assets = list(range(1, n + 1))
        table[f"settle_{n}_assets_success"] = market.settle(0, next(task), assets, True).gas_used
        table[f"settle_{n}_assets_failure"] = market.settle(0, next(task), assets, False).gas_used
        table[f"settle_{n}_assets_success_with_payouts"] = market.settle(
            0, next(task), assets, True, request=1, payouts=[100] * n
        ).gas_used
    # Removal: an asset two penalties from ruin, failed twice.
    market.register_asset(owner, 100, 2 * PENALTY + 5)
    market.settle(0, next(task), [100], False)
    table["settle_1_asset_failure_with_removal"] = market.settle(
        0, next(task), [100], False
    ).gas_used
    table["mint"] = market.mint(owner, 1).gas_used
    table["deposit_approve_plus_deposit"] = market.deposit(owner, 1).gas_used
    table["escrow_new_request"] = market.escrow(requester, 2, 1000).gas_used
    table["register_asset"] = market.register_asset(owner, 200, S0).gas_used
    table["refund"] = market.refund(2).gas_used
    quorum, *_ = _market(backend_factory(), oracles=3)
    quorum.settle(0, 0, [1, 2, 3, 4], True)  # warm the bitmap word
    table["settle_4_assets_quorum_2_of_3_total"] = quorum.settle(0, 1, [1, 2, 3, 4], True).gas_used
    return table


def throughput(backend, settlements: int, repeats: int) -> dict:
    market, *_ = _market(backend)
    batches = []
    for batch in range(repeats):
        start = time.perf_counter()
        for i in range(settlements):
            first = 1 + i % 13
            market.settle(batch, i, [first, first + 1, first + 2, first + 3], True)
        batches.append(time.perf_counter() - start)
    best = min(batches)
    return {
        "backend": backend.name,
        "settlements": settlements,
        "batch_seconds": batches,
        "settlements_per_second": settlements / best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settlements", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-ganache", action="store_true")
    args = parser.parse_args()

    result: dict = {
        "benchmark": "chain",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "rule": {"mechanism": "coll-stake", "penalty": PENALTY, "reward": RULE.reward, "S0": S0},
        "evm_version": "shanghai",
        "gas": {"eth-tester": gas_table(Web3Backend.eth_tester)},
        "throughput": [
            throughput(BoaBackend(), args.settlements, args.repeats),
            throughput(Web3Backend.eth_tester(), args.settlements, args.repeats),
        ],
    }
    why = "--no-ganache" if args.no_ganache else node_tools_missing()
    if why:
        result["ganache"] = f"skipped: {why}"
    else:
        cache = REPO / ".cache" / "ganache"
        with GanacheNode(cache, accounts=30, log_path=cache / "bench.log") as node:
            result["gas"]["ganache"] = gas_table(lambda: Web3Backend.http(node.url))
            result["throughput"].append(
                throughput(Web3Backend.http(node.url), args.settlements, args.repeats)
            )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
