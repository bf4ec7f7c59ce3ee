"""A small market on a real ledger for the node's market tests: an operator, a provider with
two servers, a requester with one request, three oracles, and round 1's task opened by the
operator (as the round loop would) and put on a task board."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mercat.identity import Keypair
from mercat.ledger import (
    AddAsset,
    AddOracle,
    Deposit,
    FundPool,
    IntegerRule,
    Ledger,
    LedgerConfig,
    Offer,
    OpenAccount,
    OpenTasks,
    PostOffer,
    PostRequest,
    RequestTerms,
    Signer,
    TaskTerms,
)
from mercat.node.board import BoardTask, BoundAsset, TaskBoard, now_ms
from mercat.workloads import datasets

DATA = datasets.classification(60, 3, seed=5)


@dataclass
class SmallMarket:
    url: str
    ledger_id: str
    operator: Keypair
    alice: Keypair  # the provider: gpu-1, gpu-2
    bob: Keypair  # the requester
    oracles: list[Keypair]
    input_cid: str
    task: BoardTask


def small_market(
    tmp_path, *, deadline_ms: int = 5_000, open_task: bool = True, sealed: tuple[str, ...] = ()
) -> SmallMarket:
    from mercat.storage.content import content_cid

    op, alice, bob = (Keypair.generate() for _ in range(3))
    oracles = [Keypair.generate() for _ in range(3)]
    url = f"sqlite:///{tmp_path}/ledger.db"
    rule = IntegerRule(penalty=100, reward=1, removal=True)
    config = LedgerConfig(operator=op.public, rule=rule, unit=100, quorum=2)
    ledger = Ledger.init(url, config, durable=False)
    OP, A, B = (Signer(k, ledger.id) for k in (op, alice, bob))
    cid = content_cid(DATA)
    terms = RequestTerms("job1", max_price=500, demand={"cpu": 1}, replicas=2, inputs=[cid],
                         workload="train-logreg:steps=20", deadline_ms=deadline_ms,
                         sealed=sealed)  # fmt: skip
    messages = [
        A.sign(OpenAccount()), B.sign(OpenAccount()),
        *(OP.sign(AddOracle(oracle=k.public)) for k in oracles),
        OP.sign(Deposit(account=alice.public, amount=10_000)),
        OP.sign(Deposit(account=bob.public, amount=10_000)),
        OP.sign(Deposit(account=op.public, amount=5_000)), OP.sign(FundPool(amount=2_000)),
        A.sign(AddAsset(asset="gpu-1", stake=400)), A.sign(AddAsset(asset="gpu-2", stake=400)),
        A.sign(PostOffer(offer=Offer("gpu-1", capacity={"cpu": 2}, cost=10))),
        A.sign(PostOffer(offer=Offer("gpu-2", capacity={"cpu": 2}, cost=10))),
        B.sign(PostRequest(terms=terms)),
    ]  # fmt: skip
    task = BoardTask(1, "t1", "job1", bob.public, terms.workload, (cid,), deadline_ms, 300,
                     (BoundAsset("gpu-1", alice.public, "server", 100),
                      BoundAsset("gpu-2", alice.public, "server", 100)), sealed)  # fmt: skip
    if open_task:
        messages.append(OP.sign(OpenTasks(round=1, tasks=(
            TaskTerms("t1", "job1", ("gpu-1", "gpu-2"), (100, 100), 300),))))  # fmt: skip
    for message in messages:
        ledger.submit(message)
    ledger_id = ledger.id
    ledger.close()
    return SmallMarket(url, ledger_id, op, alice, bob, oracles, cid, task)


def board_with_task(path, market: SmallMarket, opened_ms: int | None = None) -> TaskBoard:
    board = TaskBoard(path)
    board.set_round(1, "executing")
    board.record_tasks([market.task], now_ms() if opened_ms is None else opened_ms)
    return board


@contextmanager
def served_copy(template: Path, built: SmallMarket, tmp_path: Path, **app_options) -> Iterator:
    """A test's own copy of a module's template ledger (creating one costs a second or more),
    with round 1's task on a fresh board, served by the node's app (`m.client`, `m.board`)."""
    from fastapi.testclient import TestClient

    from mercat.node.app import create_app

    shutil.copy(template / "ledger.db", tmp_path / "ledger.db")
    m = dataclasses.replace(built, url=f"sqlite:///{tmp_path}/ledger.db")
    board_with_task(tmp_path / "board.db", m).close()
    app = create_app(m.url, tmp_path / "store", board=tmp_path / "board.db", **app_options)
    with TestClient(app) as client:
        m.client = client
        m.board = app.state.board
        yield m
