"""The distributed auctioneer against the trusted one: seed 003's Fig. 4 and Fig. 5, in one run.

Every provider is its own OS process talking ZeroMQ over TCP on loopback; the client sends
the market, and a round's time runs from generating the bids to holding every provider's
result. Prints one JSON object (and writes it to --out if given):

- fig4: the double auction, 8 providers in the auction; the trusted auctioneer (1 process)
  and k = 1, 2, 3 with 3, 5, 8 providers executing, for n up to 10^4 users; `fig4_bar` is the
  goal at n = 1000 (distributed ≤ 2× centralized and under 1 s; `busiest_cpu_ratio`: the
  busiest provider's CPU per round over the trusted auctioneer's);
  `fig4_protocol_cpu` the same configurations in one process without sockets (what the
  protocol itself costs, apart from transport and contention), taking turns of 10 rounds
  so that load hits all alike, each row's CPU per provider over the trusted auctioneer's
  (`cpu_over_trusted`);
- fig5: the VCG auction, 8 providers, p = 1 (trusted auctioneer), 2 (k = 3), 4 (k = 1) groups
  computing the Clarke payments; `fig5_speedups.headline` is the speed-up at the largest n
  whose centralized run took ≥ 10 s.

Each row also holds the CPU seconds of the provider processes: this machine may have fewer
cores than providers (`cpus` says how many), and then the busiest provider's CPU time, not
the wall time, is what a round takes with one core per provider.

    .venv/bin/python benchmarks/bench_auctioneer.py [--quick] [--out FILE]
        [--fig4-users 100,300,1000,3000,10000] [--fig5-users 100,125] [--fig5-gap 0.001]
        [--fig5-seeds 0] [--part fig4|fig5]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

from mercat.auctioneer import measure


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "fig4", "fig5"), default="all")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few rounds")
    parser.add_argument("--fig4-users", type=ints, default=None)
    parser.add_argument("--fig4-rounds", type=int, default=None)
    parser.add_argument("--fig5-users", type=ints, default=None)
    parser.add_argument("--fig5-seeds", type=ints, default=None)
    parser.add_argument(
        "--fig5-gap",
        type=float,
        default=0.0,
        help="VCG to this certified relative gap (0: proven optima), for n beyond 125",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    fig4_users = args.fig4_users or (
        [100, 1000, 3000] if args.quick else [100, 300, 1000, 3000, 10000]
    )
    # 100 rounds: CPU is read in 10 ms ticks, so per-round CPU resolves to 0.1 ms.
    fig4_rounds = args.fig4_rounds or (5 if args.quick else 100)
    fig5_users = args.fig5_users or ([30, 40] if args.quick else [100, 125])
    fig5_seeds = args.fig5_seeds or [0]

    result: dict[str, object] = {
        "benchmark": "auctioneer",
        "cpus": measure.usable_cpus(),  # the affinity mask: what the processes may use
        "python": platform.python_version(),
        "machine": platform.machine(),
        "transport": "zeromq over tcp, loopback, one OS process per provider",
    }
    started = time.perf_counter()
    if args.part in ("all", "fig4"):
        rows = measure.fig4(fig4_users, rounds=fig4_rounds)
        result["fig4"] = rows
        result["fig4_bar"] = measure.fig4_bar(rows, 1000) if 1000 in fig4_users else None
        # The protocol's own CPU, without sockets or other processes (same n as the bar).
        result["fig4_protocol_cpu"] = measure.protocol_cpu(1000, rounds=fig4_rounds)
        print(f"fig4 done after {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.part in ("all", "fig5"):
        rows = measure.fig5(fig5_users, seeds=fig5_seeds, vcg_gap=args.fig5_gap)
        result["fig5"] = rows
        result["fig5_vcg_gap"] = args.fig5_gap
        result["fig5_speedups"] = measure.fig5_speedups(rows)
    result["seconds"] = time.perf_counter() - started
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
