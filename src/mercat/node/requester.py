"""A requester: submits workloads with their terms, watches them, fetches the results
(`mercat request`), and the devnet's load of requesters (`RequesterLoad`).

`Requester.submit` uploads the inputs (content by CID, each CID recomputed here), then
posts the request, signed with the requester's key: its workload, inputs, bid
(`max_price`, escrowed at once), demand per replica, replicas, SLA deadline and expiry.
`watch` polls the node until the request is closed (every task settled) or expired;
`result` fetches the output the oracles' quorum attested, re-hashed against its CID.

A **sealed** request (`seal_inputs`, `seal_output`: `mercat.node.sealing`) encrypts every
input it uploads under the request's inputs key before it leaves this process, and asks
for the output encrypted under the request's output key; `hand_over_keys` seals both keys
to each provider its tasks are assigned to (`watch` does it on every look), and `result`
decrypts the sealed output. The keys come from the requester's identity and the request's
id: nothing else needs keeping.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mercat import errors as e
from mercat.identity import Keypair
from mercat.ledger import messages as m
from mercat.node.client import NodeClient
from mercat.node.market_schemas import RequestView, TaskView
from mercat.node.sealing import grant_for, request_keys
from mercat.node.views import ViewCheck
from mercat.runtime.terms import RequestTerms
from mercat.storage.encryption import decrypt_deterministic, encrypt_pieces
from mercat.untrusted import shown
from mercat.workloads import archive, datasets
from mercat.workloads.spec import parse as parse_workload

log = logging.getLogger("mercat.requester")
# The requests whose key grants a requester remembers sending, the least recently looked at
# forgotten first: a grant sent again is refused as sent already (and costs one request),
# so forgetting is safe, and memory stays bounded however many requests it watches.
GRANTED_REQUESTS = 1024


@dataclass(frozen=True)
class Outcome:
    """How a request ended: its status, and per task the verdict and output."""

    request: str
    status: str  # closed (served and settled), open (waiting), expired (closed unserved)
    paid: bool
    tasks: list[dict[str, Any]]
    output: str | None  # the CID the oracles attested for a paid task
    sealed: tuple[str, ...] = ()  # what the request keeps encrypted
    owner: str = ""  # the requester's public key


class Requester:
    def __init__(self, node: NodeClient, key: Keypair) -> None:
        self.node = node
        self.key = key
        # request -> the (round, task, server) its keys were sent to, while its tasks are
        # open: a task's marks go when it settles, a request's when it closes.
        self._granted: OrderedDict[str, set[tuple[int, str, str]]] = OrderedDict()
        self._views = ViewCheck(log)  # what the node answers is checked before it is used

    def ensure_account(self) -> None:
        if not self.node.has_account(self.key.public):
            self.node.submit(self.key, m.OpenAccount())

    def submit(
        self,
        workload: str,
        inputs: Sequence[bytes | str],
        *,
        max_price: int,
        demand: Mapping[str, int] | None = None,
        replicas: int = 1,
        deadline_ms: int = 30_000,
        expires_in: int = 3,
        assets: Sequence[str] = (),
        request: str | None = None,
        seal_inputs: bool = False,
        seal_output: bool = False,
    ) -> str:
        """Post a request (module docstring); its id. `inputs`: archives' bytes (uploaded)
        or CIDs already in the store; `expires_in`: rounds after the current one.
        `seal_inputs`: the bytes given are uploaded encrypted (CIDs are taken as they are);
        `seal_output`: the output is stored encrypted to this requester."""
        parse_workload(workload)  # refuse a bad workload before anything is uploaded
        name = request or f"req-{secrets.token_hex(6)}"
        keys = request_keys(self.key, name)
        if seal_inputs and all(isinstance(item, str) for item in inputs):
            raise e.InvalidParameterError(
                "sealed inputs are the ones uploaded with the request: give their bytes"
            )

        def upload(data: bytes) -> str:
            if seal_inputs:  # encrypted here: the node receives ciphertext only
                data = b"".join(encrypt_pieces([data], keys.inputs))
            return self.node.put(data)

        cids = [item if isinstance(item, str) else upload(item) for item in inputs]
        sealed = [part for part, on in (("inputs", seal_inputs), ("output", seal_output)) if on]
        round_now = self.node.round()
        terms = RequestTerms(
            name, max_price=max_price, demand=dict(demand or {"cpu": 1}), replicas=replicas,
            assets=list(assets), inputs=cids, workload=workload, deadline_ms=deadline_ms,
            expires=round_now + expires_in, sealed=sealed,
        )  # fmt: skip
        self.node.submit(self.key, m.PostRequest(terms=terms))
        return name

    def outcome(self, request: str) -> Outcome:
        """The request's state as the node shows it; MalformedMessageError if the node's
        view of it is not of the declared shape (a task of the wrong shape is left out)."""
        answer = self.node.request_view(request)
        what = f"the node's view of request {request}"
        # The envelope is checked without its tasks, then each task on its own, so that one
        # malformed task does not hide the others (whose keys may be due).
        view = self._views.one({**answer, "tasks": []} if isinstance(answer, dict) else answer,
                               RequestView, what)  # fmt: skip
        raw = answer.get("tasks") if isinstance(answer, dict) else None
        tasks = self._views.entries(raw, TaskView, f"{what} (tasks)")
        settled = [t for t in tasks if t["verdict"] is not None]
        paid = [t for t in settled if t["verdict"]["paid"]]
        # A closed request that no task served expired (or was withdrawn) unserved. One whose
        # tasks settled on the ledger is still "open" here until the node has recorded every
        # task's verdict: read in between, it would look closed and unpaid. A task left out
        # for its shape may be one not settled yet: the request reads open while there is one.
        left_out = isinstance(raw, list) and len(raw) > len(tasks)
        if view["status"] != "closed" or len(settled) < len(tasks) or left_out:
            status = "open"
        else:
            status = "closed" if tasks else "expired"
        output = paid[0]["verdict"]["output"] if paid else None
        if status != "open":  # closed for good: no task of it needs keys again
            self._granted.pop(request, None)
        parts = (view["terms"] or {}).get("sealed", [])  # the terms are free-form: checked
        if not isinstance(parts, list) or not all(isinstance(part, str) for part in parts):
            raise e.MalformedMessageError(
                f"{what}: what the request seals is not a list of names: {shown(parts)}"
            )
        return Outcome(request, status, bool(paid), tasks, output, tuple(parts), view["owner"])

    def hand_over_keys(self, outcome: Outcome) -> int:
        """Seal a sealed request's keys to the owner of every server of its open tasks that
        has none yet, and post the grants (`mercat.node.sealing`); how many were sent (none
        for another requester's request: only its owner holds the keys)."""
        if not outcome.sealed or outcome.owner != self.key.public:
            return 0
        if outcome.status != "open":
            self._granted.pop(outcome.request, None)
            return 0
        marks = self._granted.pop(outcome.request, set())
        settled = {(t["round"], t["task"]) for t in outcome.tasks if t["status"] != "open"}
        marks = {mark for mark in marks if mark[:2] not in settled}
        sent = 0
        try:
            for task in outcome.tasks:
                if task["status"] != "open":
                    continue
                for asset in task["assets"]:
                    mark = (task["round"], task["task"], asset["asset"])
                    if asset["kind"] != "server" or asset["asset"] in task["granted"]:
                        continue
                    if mark in marks:
                        continue
                    grant = grant_for(self.key, self.node.ledger_id, task, asset["asset"],
                                      frozenset(outcome.sealed))  # fmt: skip
                    # granted meanwhile (by this key in another process), or the task settled
                    with contextlib.suppress(e.AlreadyExistsError):
                        self.node.post_json("/market/keys", grant.to_wire())
                        sent += 1
                    marks.add(mark)
        finally:  # what was sent is remembered, whatever stopped the loop
            if marks:
                self._granted[outcome.request] = marks  # the most recently looked at: last
                if len(self._granted) > GRANTED_REQUESTS:
                    self._granted.popitem(last=False)
        return sent

    def watch(self, request: str, timeout: float = 300.0, poll: float = 0.5) -> Outcome:
        """Poll until the request is closed, or `timeout` seconds pass (its state then),
        handing a sealed request's keys to its providers as its tasks open."""
        deadline = time.monotonic() + timeout
        while True:
            outcome = self.outcome(request)
            if outcome.status != "open" or time.monotonic() > deadline:
                return outcome
            self.hand_over_keys(outcome)
            time.sleep(poll)

    def result(self, outcome: Outcome) -> bytes:
        """The attested output's bytes (checked against its CID; a sealed output decrypted
        with the request's output key)."""
        if outcome.output is None:
            raise e.ContentNotFoundError(f"request {outcome.request} has no attested output")
        data = self.node.get(outcome.output)
        if "output" in outcome.sealed:
            key = request_keys(self.key, outcome.request).output
            return decrypt_deterministic(data, key, what=f"the output {outcome.output}")
        return data

    def withdraw(self, request: str) -> int:
        """Close an open request; what came back from its escrow."""
        receipt = self.node.submit(self.key, m.Refund(request=request))
        return int(receipt["result"].get("refunded", 0))


# --- the devnet's load --------------------------------------------------------------------

FOLLOW_SECONDS = 5.0  # the longest a requester goes without looking at its requests

# (workload, replicas) in the order the load cycles through them; fedavg and infer chain on
# earlier results (the latest global model, the latest trained model).
MIX: tuple[tuple[str, int], ...] = (
    ("train-logreg", 1),
    ("infer", 1),
    ("preprocess", 1),
    ("fedavg", 1),
    ("train-mlp:steps=150", 2),
    ("train-logreg:steps=100,l2=0.01", 2),
)


@dataclass
class LoadStats:
    posted: int = 0
    closed: int = 0
    paid: int = 0
    failed: int = 0
    expired: int = 0
    withdrawn: int = 0
    refunded: int = 0  # base units back from withdrawn requests
    outputs_verified: int = 0
    fedavg_rounds: int = 0
    spent: int = 0  # base units charged for paid tasks
    sealed: int = 0  # requests posted with sealed inputs and output
    sealed_paid: int = 0  # of them, paid with an output this requester decrypted
    errors: list[str] = field(default_factory=list)


class RequesterLoad:
    """Posts `per_round` requests each time the ledger's round moves, until `until_round`;
    follows them, verifies every attested output (fetched, re-hashed, of the workload's
    kind), chains fedavg rounds and inference on its own earlier results, and on stop
    withdraws what is still open."""

    def __init__(
        self,
        requester: Requester,
        *,
        per_round: int = 2,
        until_round: int | None = None,
        seed: int = 0,
        bid_per_unit: tuple[float, float] = (0.8, 2.0),
        deadline_ms: int = 20_000,
        model_cid: str | None = None,
        poll_seconds: float = 0.5,
        max_replicas: int = 16,
        sealed_share: float = 0.0,
    ) -> None:
        self.requester = requester
        self.node = requester.node
        self.per_round = per_round
        self.until_round = until_round
        self.rng = np.random.default_rng(seed)
        self.bid_per_unit = bid_per_unit
        self.deadline_ms = deadline_ms
        self.model_cid = model_cid  # a model asset offered by a provider, named by CID
        self.poll_seconds = poll_seconds
        # 1 where the mechanism clears one replica per request (seed 003's auctions)
        self.max_replicas = max_replicas
        # The share of requests that seal their inputs and output (only those that need no
        # earlier result: a sealed output is not chained into later requests).
        self.sealed_share = sealed_share
        self.sealed: set[str] = set()  # of the pending requests, those sealed
        self.raw: dict[str, bytes] = {}
        self.stats = LoadStats()
        self.pending: dict[str, str] = {}  # request -> workload
        self.next = 0
        self.seed = seed
        self.data: dict[str, str] = {}
        self.latest_model: str | None = None
        self.global_model: str | None = None

    def prepare(self) -> None:
        self.requester.ensure_account()
        self.raw["dataset"] = datasets.classification(400, 8, self.seed)
        self.data["dataset"] = self.node.put(self.raw["dataset"])
        self.data["federated"] = self.node.put(
            datasets.classification(400, 8, self.seed + 1, clients=8)
        )
        self.data["model0"] = self.node.put(datasets.initial_model(8))
        if self.model_cid is None:  # a model a provider offers, if any: requests name it
            offers = self.node.get_json("/ledger/offers")
            if not isinstance(offers, dict):  # asset -> its offer's wire form
                raise e.MalformedMessageError(
                    f"the ledger's offers are not an object: the node answered {shown(offers)}"
                )
            # an offer of another shape is not one of a model this load can name
            models = sorted(o["cid"] for o in offers.values()
                            if isinstance(o, dict) and o.get("kind") == "model"
                            and isinstance(o.get("cid"), str) and o["cid"])  # fmt: skip
            self.model_cid = models[0] if models else None

    def run(self, stop: threading.Event) -> LoadStats:
        posted_for: int | None = None
        followed_at = time.monotonic()
        unit = int(self.node.ledger_info()["unit"])
        while not stop.is_set():
            try:
                current = self.node.round()
                if current != posted_for:
                    # A request's fate changes when rounds do: look at them then (and now
                    # and then besides), not on every poll.
                    self.follow()
                    followed_at = time.monotonic()
                    if self.until_round is None or current < self.until_round:
                        for _ in range(self.per_round):
                            self.post(unit)
                    posted_for = current
                elif time.monotonic() - followed_at > FOLLOW_SECONDS:
                    self.follow()
                    followed_at = time.monotonic()
                for name in self.sealed & set(self.pending):  # their providers need keys
                    outcome = self._outcome(name)
                    if outcome is not None:
                        self.requester.hand_over_keys(outcome)
            except e.MercatError as exc:
                if len(self.stats.errors) < 50:
                    self.stats.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            stop.wait(self.poll_seconds)
        with contextlib.suppress(e.MercatError):
            self.follow()  # what settled since the last look counts
        self.withdraw_open()
        return self.stats

    def post(self, unit: int) -> str:
        workload, replicas = MIX[self.next % len(MIX)]
        replicas = min(replicas, self.max_replicas)
        self.next += 1
        inputs = [self.data["dataset"]]
        assets: list[str] = []
        if workload == "infer":
            # every other inference uses the model a provider offers (binding its asset)
            offered = self.model_cid if (self.next // len(MIX)) % 2 == 0 else None
            model = offered or self.latest_model or self.data["model0"]
            inputs.append(model)
            if model == self.model_cid:
                assets.append(model)  # binds (and pays) the provider's model asset
        elif workload == "fedavg":
            done = self.stats.fedavg_rounds
            workload = f"fedavg:round={done + 1},seed={done}"
            inputs = [self.data["federated"], self.global_model or self.data["model0"]]
        low, high = self.bid_per_unit
        price = int(float(self.rng.uniform(low, high)) * replicas * unit) + (unit if assets else 0)
        # drawn only when asked for: a load without sealing keeps its random stream
        seal = (self.sealed_share > 0 and workload.startswith(("train-", "preprocess"))
                and float(self.rng.random()) < self.sealed_share)  # fmt: skip
        if seal:
            inputs = [self.raw["dataset"]]  # uploaded again, encrypted under its own key
        name = self.requester.submit(workload, inputs, max_price=price, replicas=replicas,
                                     deadline_ms=self.deadline_ms, assets=assets,
                                     seal_inputs=seal, seal_output=seal)  # fmt: skip
        self.pending[name] = workload
        self.stats.posted += 1
        if seal:
            self.sealed.add(name)
            self.stats.sealed += 1
        return name

    def _outcome(self, name: str) -> Outcome | None:
        """The request's outcome, or None (and the reason noted) when the node's view of it
        is malformed: that request waits for a better answer, the others go on."""
        try:
            return self.requester.outcome(name)
        except e.MalformedMessageError as exc:
            if len(self.stats.errors) < 50:
                self.stats.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            return None

    def follow(self) -> None:
        """Look at pending requests; verify and use what settled."""
        for name, workload in list(self.pending.items()):
            outcome = self._outcome(name)
            if outcome is None or outcome.status == "open":
                continue
            del self.pending[name]
            sealed = name in self.sealed
            self.sealed.discard(name)  # only the pending ones are looked at again
            if outcome.status == "expired":
                self.stats.expired += 1
                continue
            self.stats.closed += 1
            self.stats.spent += sum(t["charge"] for t in outcome.tasks
                                    if t["verdict"] and t["verdict"]["paid"])  # fmt: skip
            if not outcome.paid:
                self.stats.failed += 1
                continue
            self.stats.paid += 1
            kind, _ = archive.load(self.requester.result(outcome))  # decrypted when sealed
            self.stats.outputs_verified += 1
            if sealed:
                self.stats.sealed_paid += 1
                continue  # its output's CID names ciphertext: nothing to chain on
            name_of = workload.partition(":")[0]
            if name_of.startswith("train-logreg") and kind == "model":
                self.latest_model = outcome.output
            if name_of == "fedavg":
                self.global_model = outcome.output
                self.stats.fedavg_rounds += 1

    def withdraw_open(self) -> None:
        for name in list(self.pending):
            try:
                self.stats.refunded += self.requester.withdraw(name)
                self.stats.withdrawn += 1
                self.pending.pop(name)
                self.sealed.discard(name)
            except e.MercatError:  # served meanwhile (assigned): it settles on its own
                continue
