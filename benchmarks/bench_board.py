"""What the node's task board costs per operation, on a SQLite file as a node keeps it.

The hottest write is a provider's outcome claim: `POST /market/claims` reads the task's view
(is it open, is the asset its server), puts the claim on the board and logs one event
(`task`, `add_claim`, `add_events`). Prints JSON, the best of `--repeats` batches (the
machine may be shared: the best batch is the one least slowed by other work):

- `claims_per_s`: claims received, as the endpoint records them (the view read, the claim
  and its event);
- `events_per_s`: events written by round flushes of `--flush` events each (`BoardLog`);
- `record_tasks_ms`: opening a round of `--tasks` tasks of two servers each;
- `task_page_ms`: one page of 100 task views with their claims (what an agent's poll and
  the dashboard read);
- `endpoint_claims_per_s`: the same claims sent to a node's `POST /market/claims` in process
  (FastAPI's test client: parsing, the signature's check, the board's work), all the node
  does for a claim but the network.

Usage: .venv/bin/python benchmarks/bench_board.py [--claims 2000] [--tasks 1000]
       [--flush 20] [--repeats 3] [--board URL]
(`--board`: a board URL to measure instead of a fresh SQLite file, e.g. a PostgreSQL
database: it must be empty.)
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def best_s(run: Callable[[int], object], repeats: int) -> float:
    batches = []
    for batch in range(repeats):
        start = time.perf_counter()
        run(batch)
        batches.append(time.perf_counter() - start)
    return min(batches)


def served_claims(folder: Path, claims: int, repeats: int) -> float:
    """Seconds for the best of `repeats` batches of `claims` claims sent to a node's
    `POST /market/claims` (a fresh ledger and board in `folder`)."""
    from fastapi.testclient import TestClient

    from mercat.identity import Keypair
    from mercat.ledger import IntegerRule, Ledger, LedgerConfig, OpenAccount, Signer
    from mercat.node.app import create_app
    from mercat.node.board import BoardTask, BoundAsset, TaskBoard, now_ms
    from mercat.node.claims import OutcomeClaim, SignedClaim
    from mercat.node.limits import NodeLimits

    operator, provider = Keypair.generate(), Keypair.generate()
    url = f"sqlite:///{folder}/ledger.db"
    config = LedgerConfig(
        operator=operator.public, rule=IntegerRule(100, 1, True), unit=100, quorum=1
    )
    ledger = Ledger.init(url, config, durable=False)
    ledger.submit(Signer(provider, ledger.id).sign(OpenAccount()))
    ledger_id = ledger.id
    ledger.close()
    board = TaskBoard(folder / "node-board.db")
    for batch in range(repeats):
        board.record_tasks(
            [BoardTask(1 + batch, f"t{k}", f"r{k}", None, "w", (), 0, 10,
                       (BoundAsset("s1", provider.public, "server", 4),))
             for k in range(claims)],
            now_ms(),
        )  # fmt: skip
    board.close()
    bodies = [
        [
            json.dumps(
                SignedClaim.sign(
                    OutcomeClaim(ledger_id, 1 + batch, f"t{k}", "s1", False), provider
                ).to_wire()
            ).encode()
            for k in range(claims)
        ]
        for batch in range(repeats)
    ]
    unlimited = NodeLimits(client_rate=1e9, client_burst=10**9)  # one client sends them all
    app = create_app(url, None, board=folder / "node-board.db", limits=unlimited)
    with TestClient(app) as client:

        def send(batch: int) -> None:
            for body in bodies[batch]:
                answer = client.post("/market/claims", content=body)
                assert answer.status_code == 200, answer.text

        return best_s(send, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--flush", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--board", default=None)
    args = parser.parse_args()
    if not (1 <= args.claims <= 10**6 and 100 <= args.tasks <= 10**5 and args.repeats >= 1):
        parser.error("--claims in [1, 10^6], --tasks in [100, 10^5], --repeats >= 1")

    from mercat.identity import Keypair
    from mercat.node.board import BoardTask, BoundAsset, TaskBoard, now_ms
    from mercat.node.claims import OutcomeClaim, SignedClaim

    key = Keypair.generate()
    ledger = "ab" * 16
    with tempfile.TemporaryDirectory() as folder:
        board = TaskBoard(args.board or Path(folder) / "board.db")
        try:
            # Claims: each batch on a round of its own; signed before the clock starts.
            batches = [
                [
                    SignedClaim.sign(
                        OutcomeClaim(ledger, 1000 + b, f"t{k}", "s1", True, "bafy" + "a" * 20),
                        key,
                    )
                    for k in range(args.claims)
                ]
                for b in range(args.repeats)
            ]

            for b in range(args.repeats):  # the tasks claimed, two servers each
                board.record_tasks(
                    [BoardTask(1000 + b, f"t{k}", f"r{k}", key.public, "w", ("bafyin",), 0, 10,
                               (BoundAsset("s1", key.public, "server", 4),
                                BoundAsset("s2", key.public, "server", 4)))
                     for k in range(args.claims)],
                    now_ms(),
                )  # fmt: skip

            def claims(batch: int) -> None:
                for signed in batches[batch]:
                    view = board.task(signed.claim.round, signed.claim.task)
                    assert view is not None and view["status"] == "open"
                    board.add_claim(signed, now_ms())
                    c = signed.claim
                    board.add_events([{"kind": "claim_received", "round": c.round,
                                       "task": c.task, "asset": c.asset,
                                       "success": c.success}])  # fmt: skip

            claim_s = best_s(claims, args.repeats)

            flushes = max(1, args.claims // args.flush)
            events = [{"kind": "stage", "round": 7, "stage": f"s{k}"} for k in range(args.flush)]
            event_s = best_s(lambda _: [board.add_events(events) for _ in range(flushes)],
                             args.repeats)  # fmt: skip

            def record(batch: int) -> None:
                board.record_tasks(
                    [
                        BoardTask(1 + batch, f"t{k}", f"r{k}", key.public, "w", ("bafyin",),
                                  0, 10, (BoundAsset(f"s{k % 50}", key.public, "server", 4),
                                          BoundAsset(f"s{(k + 1) % 50}", key.public,
                                                     "server", 4)))
                        for k in range(args.tasks)
                    ],
                    now_ms(),
                )  # fmt: skip

            record_s = best_s(record, args.repeats)
            for k in range(args.tasks):  # claims on the first round's tasks, for the views
                board.add_claim(
                    SignedClaim.sign(OutcomeClaim(ledger, 1, f"t{k}", "s1", False), key), 0
                )
            page_s = best_s(lambda _: board.tasks(round_=1, limit=100), max(3, args.repeats))
            assert len(board.tasks(round_=1, limit=100)) == 100
        finally:
            board.close()
        endpoint_s = served_claims(Path(folder), args.claims, args.repeats)
    print(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": platform.python_version(),
                "board": args.board or "sqlite file",
                "claims": args.claims,
                "claims_per_s": round(args.claims / claim_s),
                "events_per_s": round(flushes * args.flush / event_s),
                "record_tasks_ms": round(1000 * record_s, 2),
                "tasks": args.tasks,
                "task_page_ms": round(1000 * page_s, 2),
                "endpoint_claims_per_s": round(args.claims / endpoint_s),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
