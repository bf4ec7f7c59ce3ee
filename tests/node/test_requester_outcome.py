"""What a requester reads of its request: closed only once every task's verdict is known."""

from __future__ import annotations

from mercat.identity import Keypair
from mercat.node.requester import Requester

from .test_agents_listings import request_view, task_view


class _Node:
    def __init__(self, view):  # type: ignore[no-untyped-def]
        self.view = view

    def request_view(self, request):  # type: ignore[no-untyped-def]
        return self.view


def _view(status, verdicts):  # type: ignore[no-untyped-def]
    tasks = [task_view(f"t{i}", verdict=v, charge=5) for i, v in enumerate(verdicts)]
    return request_view("r1", status, tasks)


PAID = {"paid": True, "output": "bafy-output", "success": True, "sla_met": True,
        "latency_ms": 10}  # fmt: skip


def test_a_request_settled_on_the_ledger_reads_open_until_its_verdicts_are_recorded():
    # The ledger closed the request, the node has not yet recorded the verdict: a requester
    # reading then must not conclude that its request closed unpaid.
    requester = Requester(_Node(_view("closed", [None])), Keypair.generate())
    outcome = requester.outcome("r1")
    assert outcome.status == "open" and not outcome.paid

    requester.node.view = _view("closed", [PAID])
    outcome = requester.outcome("r1")
    assert outcome.status == "closed" and outcome.paid and outcome.output == "bafy-output"


def test_a_closed_request_without_tasks_expired_and_an_open_one_stays_open():
    assert Requester(_Node(_view("closed", [])), Keypair.generate()).outcome("r").status == (
        "expired"
    )
    assert Requester(_Node(_view("open", [PAID])), Keypair.generate()).outcome("r").status == (
        "open"
    )


class _Sealed:
    """A node holding sealed requests (one open task each, bound to one server); records
    the key grants posted."""

    ledger_id = "ab" * 16

    def __init__(self, owner: str, requester: str) -> None:
        self.owner, self.requester = owner, requester
        self.views: dict[str, dict] = {}
        self.grants: list[tuple[int, str, str]] = []  # (round, task, server)

    def add(self, name: str, tasks: int = 1) -> None:
        asset = {"asset": "gpu-1", "owner": self.owner, "kind": "server", "payout": 100}
        views = [task_view(f"{name}-t{i}", request=name, assets=[asset],
                           sealed=["inputs", "output"]) for i in range(tasks)]  # fmt: skip
        self.views[name] = request_view(name, "open", views, owner=self.requester,
                                        terms={"sealed": ["inputs", "output"]})  # fmt: skip

    def settle(self, name: str, task: str | None = None) -> None:
        view = self.views[name]
        for t in view["tasks"]:
            if task is None or t["task"] == task:
                t["status"], t["verdict"] = "settled", PAID
        if task is None:
            view["status"] = "closed"

    def request_view(self, request):  # type: ignore[no-untyped-def]
        return self.views[request]

    def post_json(self, path, body):  # type: ignore[no-untyped-def]
        assert path == "/market/keys"
        self.grants.append((body["round"], body["task"], body["asset"]))
        return {}


def test_a_requester_forgets_the_grants_of_settled_tasks_and_closed_requests(monkeypatch):
    from mercat.node import requester as requester_module

    key = Keypair.generate()
    node = _Sealed(Keypair.generate().public, key.public)
    requester = Requester(node, key)  # type: ignore[arg-type]
    names = [f"r{i}" for i in range(20)]
    for name in names:
        node.add(name, tasks=2)
        assert requester.hand_over_keys(requester.outcome(name)) == 2
        assert requester.hand_over_keys(requester.outcome(name)) == 0  # sent already
    assert len(node.grants) == 40 and len(requester._granted) == 20
    node.settle("r0", "r0-t0")  # one task of r0 settled: its mark goes, the other's stays
    assert requester.hand_over_keys(requester.outcome("r0")) == 0
    assert requester._granted["r0"] == {(1, "r0-t1", "gpu-1")}
    for name in names:  # every request closes: nothing is remembered of any
        node.settle(name)
        assert requester.outcome(name).status == "closed"
    assert requester._granted == {} and len(node.grants) == 40
    # However many requests it watches without seeing them close, it keeps a bounded few.
    monkeypatch.setattr(requester_module, "GRANTED_REQUESTS", 5)
    for i in range(12):
        node.add(f"s{i}")
        requester.hand_over_keys(requester.outcome(f"s{i}"))
    assert list(requester._granted) == [f"s{i}" for i in range(7, 12)]


def test_a_load_remembers_only_its_pending_requests_as_sealed():
    from mercat.node.requester import RequesterLoad

    key = Keypair.generate()
    node = _Sealed(Keypair.generate().public, key.public)
    node.submit = lambda signer, message: {"result": {"refunded": 5}}  # type: ignore[attr-defined]
    load = RequesterLoad(Requester(node, key))  # type: ignore[arg-type]
    for i in range(30):
        node.add(f"r{i}")
        load.pending[f"r{i}"] = "train-logreg"
        load.sealed.add(f"r{i}")
    for i in range(20):  # expired unserved
        node.views[f"r{i}"] = request_view(f"r{i}", "closed", [])
    load.follow()
    assert load.stats.expired == 20 and load.sealed == set(load.pending) and len(load.sealed) == 10
    load.withdraw_open()
    assert load.stats.withdrawn == 10 and load.pending == {} and load.sealed == set()
