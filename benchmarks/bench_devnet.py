"""A live market under load: many provider agents and requesters on loopback, end to end.

The market is `mercat.node.local_market.LocalMarket`: a node (uvicorn, its round loop, the
SQLite ledger, the content store) and every participant as a thread of this process with
its own key and HTTP client; every replica and every sampled re-execution runs for real in
a sandboxed child (one zygote per agent and per oracle). Rounds run back to back.

Bounded: the participant counts are capped (`--providers` + `--requesters` at most 200),
and the run stops at `--timeout` seconds (it reports how far it got).

Prints JSON:
- `devnet`: the setup; `start_s` (genesis, the node, every agent registered and every
  requester's inputs uploaded, one after the other); `wait_s` from then until the last
  settlement; `rounds_span_s` from the first round's start to the last round's end (the
  node's clock: the first requesters post, and rounds run, while later participants still
  register); tasks settled and paid; `tasks_per_s` (settled tasks / rounds_span_s);
  `round_latency_s` (mean, max of the rounds' wall time); `where_the_time_goes`: seconds per
  phase of a round summed over the rounds (clear, open, execute = waiting for the agents'
  claims, attest = waiting for the oracles' quorum, settle, ...) and each phase's share;
- `reference`: the same round pipeline in one process (`mercat market run`'s scenario on the
  same SQL ledger: sampled execution, oracles signing in process, no HTTP, no workload run)
  with the same number of providers and requesters, seconds per round: what the ledger and
  clearing cost alone, side by side with the live market in the same run.

The machine may be shared: timings are noisy, compare the two sides of one run.

Usage: .venv/bin/python benchmarks/bench_devnet.py [--providers 25] [--requesters 25]
       [--oracles 3] [--rounds 3] [--per-round 1] [--timeout 240]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

MAX_PARTICIPANTS = 200


def live(args: argparse.Namespace) -> dict[str, object]:
    from mercat.errors import DevnetError
    from mercat.node.genesis import DevnetSetup
    from mercat.node.local_market import LocalMarket

    setup = DevnetSetup(
        providers=args.providers, servers_per_provider=1, oracles=args.oracles,
        requesters=args.requesters, rounds=args.rounds, per_round=args.per_round,
        round_seconds=0.0, sample_rate=args.sample_rate, seed=args.seed,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mercat-bench-devnet-") as tmp:
        market = LocalMarket(setup, Path(tmp))
        started = time.perf_counter()
        finished = True
        try:
            market.start()
            ready = time.perf_counter()
            try:
                market.wait_done(args.timeout)
            except DevnetError as exc:
                finished = False
                stopped = str(exc)
            done = time.perf_counter()
            client = market.client()
            rounds = sorted(client.rounds(limit=1000), key=lambda r: r["round"])
            summary = client.summary()
        finally:
            market.close()
    phases: dict[str, float] = {}
    for r in rounds:
        for phase, seconds in (r.get("timings") or {}).items():
            if phase != "total":
                phases[phase] = phases.get(phase, 0.0) + float(seconds)
    totals = [float((r.get("timings") or {}).get("total", 0.0)) for r in rounds]
    in_rounds = sum(totals)
    settled = int(summary["tasks"]["settled"])
    # The market's own span: the first round's start to the last one's end, on the node's
    # clock (requesters post while later participants are still registering, so the first
    # round may start before `start_participants` returns).
    stamps = [(r["started_ms"], r["finished_ms"]) for r in rounds if r.get("finished_ms")]
    span = (max(f for _, f in stamps) - min(s for s, _ in stamps)) / 1000 if stamps else 0.0
    result: dict[str, object] = {
        "setup": {
            "providers": setup.providers,
            "requesters": setup.requesters,
            "oracles": setup.oracles,
            "rounds": setup.rounds,
            "requests_per_requester_per_round": setup.per_round,
            "sample_rate": setup.sample_rate,
            "mechanism": setup.mechanism,
        },
        "finished": finished,
        "start_s": round(ready - started, 3),
        "wait_s": round(done - ready, 3),
        "rounds_span_s": round(span, 3),
        "rounds_closed": sum(r["phase"] == "closed" for r in rounds),
        "tasks": summary["tasks"],
        "tasks_per_s": round(settled / span, 3) if span > 0 else None,
        "round_latency_s": {
            "mean": round(in_rounds / len(totals), 3) if totals else None,
            "max": round(max(totals), 3) if totals else None,
        },
        "where_the_time_goes": {
            phase: {"s": round(s, 3), "share": round(s / in_rounds, 3) if in_rounds else None}
            for phase, s in sorted(phases.items(), key=lambda kv: -kv[1])
        },
    }
    if not finished:
        result["stopped"] = stopped
    return result


def reference(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np

    from mercat.clearing import registry
    from mercat.identity import Keypair
    from mercat.incentives.collective import mechanism as collective_mechanism
    from mercat.incentives.integer_rule import IntegerRule
    from mercat.ledger import Ledger, LedgerConfig
    from mercat.ledger.book import LedgerBook
    from mercat.scenarios.marketplace import MarketSetup, build

    unit = 10**6
    spec = collective_mechanism("coll-sr")
    rule = IntegerRule.from_collective(spec.rule(initial_stake=10.0, task_target=0.01), unit)
    setup = MarketSetup(providers=args.providers, servers_per_provider=1,
                        requesters=args.requesters, jobs_per_requester=args.per_round)  # fmt: skip
    operator = Keypair.generate()
    with tempfile.TemporaryDirectory(prefix="mercat-bench-devnet-ref-") as tmp:
        config = LedgerConfig(operator=operator.public, rule=rule, unit=unit, quorum=2)
        book = LedgerBook(Ledger.init(f"sqlite:///{tmp}/ledger.db", config), operator)
        try:
            market = build(book, registry.get("optimal")(), setup, np.random.default_rng(args.seed))
            started = time.perf_counter()
            reports = market.run(args.rounds)
            seconds = time.perf_counter() - started
        finally:
            book.ledger.close()
    tasks = sum(len(r.tasks) for r in reports)
    return {
        "what": "mercat market run's scenario on the SQL ledger (sampled execution, no HTTP)",
        "rounds": args.rounds,
        "round_s": round(seconds / args.rounds, 4),
        "tasks": tasks,
        "tasks_per_s": round(tasks / seconds, 3) if seconds > 0 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", type=int, default=25)
    parser.add_argument("--requesters", type=int, default=25)
    parser.add_argument("--oracles", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=1)
    parser.add_argument("--sample-rate", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.providers + args.requesters > MAX_PARTICIPANTS:
        parser.error(f"at most {MAX_PARTICIPANTS} providers and requesters together")
    print(json.dumps({
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "devnet": live(args),
        "reference": reference(args),
    }, indent=2))  # fmt: skip


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
