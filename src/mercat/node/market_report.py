"""What a market run did, read back from its node and its ledger: the report that
`mercat devnet up` prints (and `--json` writes), and that the tests check.

- rounds: each round's record from the node's board (counts, prices, flows, timings);
- tasks: opened, settled, paid, still open; for every settled task, whether every server
  bound to it claimed an outcome and whether a quorum of oracles reported on it;
- providers: every asset's stake at the start and end, its observed failure rate, and
  whether it was removed; failure-prone ones marked as the setup made them;
- flows and the pool, and the ledger's audit (every balance recomputed from the journal,
  every signature checked, every task within what its owners signed);
- what each participant process said it did (agents, oracles, requesters).
"""

from __future__ import annotations

from typing import Any

from mercat.ledger.ledger import Ledger
from mercat.node.client import NodeClient
from mercat.node.genesis import UNIT, DevnetSetup, provider_plan


def collect(client: NodeClient, setup: DevnetSetup) -> dict[str, Any]:
    """The node's view of the run (ask before the node stops)."""
    rounds = list(reversed(client.rounds(limit=1000)))
    tasks = client.tasks(limit=1000)["tasks"]
    if len(tasks) == 1000:  # a page may not hold them all: read them round by round
        tasks = [t for r in rounds for t in client.tasks(round=r["round"], limit=1000)["tasks"]]
    return {
        "rounds": rounds,
        "tasks": tasks,
        "providers": client.providers(),
        "summary": client.summary(),
        "quorum": client.market_info()["quorum"],
    }


def build(
    seen: dict[str, Any],
    ledger_url: str,
    setup: DevnetSetup,
    participants: dict[str, list[dict[str, Any]]],
    seconds: float,
) -> dict[str, Any]:
    """The report (module docstring) from what `collect` saw and the ledger's audit."""
    with Ledger(ledger_url) as ledger:
        audit = ledger.verify()
        supply, pool = ledger.supply(), ledger.pool()
    tasks = seen["tasks"]
    settled = [t for t in tasks if t["status"] == "settled"]
    paid = [t for t in settled if t["verdict"] and t["verdict"]["paid"]]
    quorum = seen["quorum"]

    def claimed(task: dict[str, Any]) -> bool:
        servers = {a["asset"] for a in task["assets"] if a["kind"] == "server"}
        return servers <= {c["asset"] for c in task["claims"]}

    prone = {
        spec.asset
        for i in range(setup.providers)
        for spec in provider_plan(setup, i)[0]
        if spec.failure_rate > setup.steady_failure_rate
    }
    providers = [
        {
            "asset": p["asset"], "kind": p["kind"], "status": p["status"],
            "failure_prone": p["asset"] in prone, "stake_start": setup.stake,
            "stake_end": p["stake"] / UNIT, "settled": p["settled"], "failed": p["failed"],
            "failure_rate": p["failure_rate"],
        }
        for p in seen["providers"]
    ]  # fmt: skip
    rounds = [
        {key: r.get(key) for key in ("round", "phase", "requests", "servers", "tasks", "paid",
                                     "failed", "unsettled", "mean_price", "charged", "payouts",
                                     "margin", "rewards", "penalties", "pool", "removed",
                                     "timings")}
        for r in seen["rounds"]
    ]  # fmt: skip
    summary = seen["summary"]
    return {
        "setup": {
            "providers": setup.providers, "servers_per_provider": setup.servers_per_provider,
            "oracles": setup.oracles, "requesters": setup.requesters, "rounds": setup.rounds,
            "mechanism": setup.mechanism, "collective": setup.collective,
            "stake": setup.stake, "penalty": setup.penalty, "quorum": quorum,
            "liars": setup.liars, "silent": setup.silent, "sample_rate": setup.sample_rate,
            "sealed_share": setup.sealed_share,
            "auctioneer_processes": setup.auctioneer_processes,
            "failure_prone": sorted(prone),
        },
        "seconds": round(seconds, 2),
        "rounds": rounds,
        "tasks": {
            "opened": len(tasks), "settled": len(settled), "paid": len(paid),
            "failed": len(settled) - len(paid), "open": len(tasks) - len(settled),
            "claimed_by_every_server": sum(claimed(t) for t in settled),
            "attested_by_a_quorum": sum(len(t["reported_by"]) >= quorum for t in settled),
        },
        "sla_compliance": len(paid) / len(settled) if settled else None,
        "why_tasks_failed": why_failed(t for t in settled if t not in paid),
        "providers": providers,
        "removed": sorted(p["asset"] for p in providers if p["status"] == "removed"),
        "flows": {k: v / UNIT for k, v in summary["flows"].items()},
        "pool": pool / UNIT,
        "supply": supply / UNIT,
        "audit": {"ok": audit.ok, "entries": audit.entries,
                  "signatures_checked": audit.signatures_checked,
                  "settled_tasks": audit.settled_tasks, "problems": list(audit.problems)},
        **participants,
    }  # fmt: skip


REASONS = (
    ("no claim", "a replica never answered"),
    ("replicas' outputs differ", "the replicas' outputs differed"),
    ("late", "late (past the SLA deadline)"),
    ("oracles", "the oracles' checks failed it"),
    ("failed", "a replica failed (crashed, refused, ran out of time)"),
)


def why_failed(tasks: Any) -> dict[str, int]:
    """Failed tasks counted by why they failed (the board's notes, in a few kinds)."""
    out: dict[str, int] = {}
    for task in tasks:
        note = task.get("note") or ""
        kind = next((label for key, label in REASONS if key in note), "other")
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items()))
