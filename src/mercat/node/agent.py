"""A provider agent: the process that puts a provider's assets on the market and runs the
tasks the market gives them (`mercat agent`).

It holds its owner's key (and no other) and talks to one node over HTTP:

1. **register**: opens its account if it has none, stakes each asset it does not have yet
   (`AddAsset`) and signs its offer (`PostOffer`: capacity, capabilities, fixed cost, unit
   costs; a model or dataset asset also uploads its content and offers it by CID);
2. **work**: polls the tasks assigned to its servers (`GET /market/tasks?assignee=KEY`),
   and for each replica it owes, fetches the inputs by CID (each re-hashed against its
   CID), runs the workload in the sandbox (`mercat.workloads.sandbox`: a child process
   with time, memory and output limits, killed on timeout; as many at once as its servers
   promise capacity, up to `MAX_WORKERS`, with at most `MAX_WAITING` more queued: the rest
   wait for a later poll), stores the output by CID and
   sends a signed outcome claim (`mercat.node.claims`): success or failure, the output's
   CID, the run's time;
3. a sealed task (`mercat.node.sealing`) waits for the key grant its requester signs when
   the task opens, checks it, opens the boxes with the agent's own key, decrypts its inputs
   and stores its output encrypted under the request's output key, deterministically, so
   replicas agree by CID; no grant by the deadline, or a key that does not open, is a
   failed claim that says so;
4. a fedavg task is first held to its privacy budget (Alg. 2 on the request's own
   parameters): a task that would overspend is refused with that reason, not run.

**Failure injection** (what a devnet needs to show seed 000 at work), per server, drawn
independently for each replica from a generator seeded by (seed, round, task, server), so
a run is reproducible: `failure_rate` (F_a: the workload process dies mid-task and the
claim says so), `slow_rate` (the claim arrives after the SLA deadline), `wrong_rate` (the
output is altered slightly: replicas and the oracles' re-execution catch it, a single
unsampled replica does not).

The agent keeps no state of its own: after a restart it reads which replicas it has
claimed from the node and carries on with the rest.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mercat import errors as e
from mercat import validation as check
from mercat.identity import Keypair
from mercat.ledger import messages as m
from mercat.node.claims import OutcomeClaim, SignedClaim
from mercat.node.client import NodeClient
from mercat.node.market_schemas import MarketInfo
from mercat.node.schemas import Asset
from mercat.node.sealing import OpenedKeys, SignedGrant, open_grant
from mercat.node.views import TaskListing, ViewCheck
from mercat.runtime.terms import Offer
from mercat.storage.encryption import MAGIC, decrypt_pieces, encrypt_deterministic
from mercat.untrusted import shown
from mercat.workloads import sandbox
from mercat.workloads.spec import parse as parse_workload

log = logging.getLogger("mercat.agent")
MAX_INPUT_BYTES = 64 << 20
MAX_WORKERS = 4
# Replicas waiting for a worker, beyond those running: a node listing endless tasks (fake
# ones, or more than the agent can run) must not fill the agent's memory with queued work.
# Those beyond it are left for a later poll, which offers them again while they are open.
MAX_WAITING = 16
LISTING_LIMIT = 500  # the most tasks one look at the node lists
# The most replicas the agent remembers having started (`forget`); past it, those neither
# queued nor running are forgotten, the ones whose claim the node took first, then the
# oldest. After `forget`, an honest node leaves remembered the replicas queued or running
# (at most MAX_WORKERS + MAX_WAITING), those of the tasks its last listing showed without
# their claim (at most LISTING_LIMIT tasks), and those whose claim never reached the node
# of tasks not yet seen to settle: ten listings' worth (about a megabyte) is far above
# that, so the cap bites only on a node that lists or hides ever more tasks (fake ones, an
# entry of the wrong shape that stays listed). Forgetting a replica whose claim the node
# took costs nothing (the node lists the claim with its task: `owed` passes it over); one
# whose claim never reached the node is run again if its task is still open, as a
# restarted agent would, and its claim is the one the market still waits for.
MAX_REMEMBERED = 10 * LISTING_LIMIT
ReplicaKey = tuple[int, str, str]  # (round, task, server)
# What fails one replica (its claim says why) rather than the agent: the workload, the
# store, the node, and a key grant that is not its requester's or is malformed (as a key
# that does not open).
REPLICA_FAILURES = (e.WorkloadError, e.StorageError, e.NodeUnavailableError,
                    e.UnauthorizedError, e.BadSignatureError, e.MalformedMessageError)  # fmt: skip


def _decrypted(data: bytes, key: bytes, cid: str) -> bytes:
    """A sealed task's input in the clear: the requester's uploads are encrypted; an input it
    names by CID that is not (a provider's model offered in the clear) is taken as it is."""
    if not data.startswith(MAGIC):
        return data
    return b"".join(decrypt_pieces([data], key, what=f"input {cid}"))


def _newest_first(task: tuple[int, str]) -> tuple[int, str]:
    """Where a (round, task) comes in the node's listing: newest round first, each round's
    tasks by id (in byte order: as Python compares them)."""
    return (-task[0], task[1])


class _Stopping(Exception):  # a signal between two methods, not an error
    """The agent is stopping while a replica waits for its keys."""


@dataclass(frozen=True)
class ServerSpec:
    """A server the agent offers and runs tasks on, with its failure injection."""

    asset: str
    stake: int  # base units
    capacity: dict[str, int] = field(default_factory=lambda: {"cpu": 2})
    cost: int = 0  # base units per round it is used
    unit_costs: dict[str, int] = field(default_factory=dict)  # base units per unit served
    capabilities: tuple[str, ...] = ()
    failure_rate: float = 0.0
    slow_rate: float = 0.0
    wrong_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("failure_rate", "slow_rate", "wrong_rate"):
            check.probability(f"{self.asset} {name}", getattr(self, name))

    def offer(self) -> Offer:
        return Offer(self.asset, "server", self.capacity, self.capabilities, self.cost,
                     self.unit_costs)  # fmt: skip


@dataclass(frozen=True)
class ContentSpec:
    """A model or dataset the agent offers: its content goes to the store, the offer names
    it by CID, and requests that name the CID bind (and pay) the asset."""

    asset: str
    kind: str
    stake: int
    cost: int
    content: bytes


@dataclass
class AgentStats:
    replicas: int = 0
    succeeded: int = 0
    failed: int = 0
    injected_failures: int = 0
    injected_slow: int = 0
    injected_wrong: int = 0
    refused_privacy: int = 0
    seconds_running: float = 0.0
    errors: list[str] = field(default_factory=list)


class ProviderAgent:
    """See the module docstring."""

    def __init__(
        self,
        node: NodeClient,
        key: Keypair,
        servers: Sequence[ServerSpec],
        content: Sequence[ContentSpec] = (),
        *,
        seed: int = 0,
        limits: sandbox.Limits | None = None,
        workers: int | None = None,
        poll_seconds: float = 0.25,
        workdir: str | None = None,
    ) -> None:
        self.node = node
        self.key = key
        self.servers = {s.asset: s for s in servers}
        self.content = tuple(content)
        self.seed = seed
        self.limits = limits or sandbox.Limits()
        # As many replicas at once as the servers promise to take in a round (the most units
        # of any resource each offers), at most MAX_WORKERS.
        promised = sum(max(s.capacity.values(), default=1) for s in servers)
        self.workers = check.integer("workers", workers or min(MAX_WORKERS, promised), 1)
        self.max_pending = self.workers + MAX_WAITING  # replicas queued or running at once
        self.sandbox = sandbox.Sandbox(self.limits, workdir)
        self.poll_seconds = poll_seconds
        self.workdir = workdir
        self.stats = AgentStats()
        # Replicas queued or running: their claim is still to come, so nothing but this
        # guards against starting them a second time; never forgotten until they end. It
        # also counts them against `max_pending`.
        self._running: set[ReplicaKey] = set()
        # Replicas started (a superset of `_running`), oldest first, each with whether the
        # node took its claim: between a replica's end and the node listing its claim (a
        # listing read before the claim arrived), and for one whose claim never reached
        # the node, this is what keeps the agent from running it again while its task is
        # open. Once the node lists the claim, the node's memory does that (`owed` passes
        # over a claimed server), and the key is forgotten (`forget`).
        self._started: dict[ReplicaKey, bool] = {}
        self._views = ViewCheck(log)  # what the node answers is checked before it is used
        self._lock = threading.Lock()
        self.grace_ms = 2_000
        self._stop = threading.Event()  # run()'s: a replica waiting for its keys gives up

    # --- registration ----------------------------------------------------------------------

    def register(self) -> dict[str, str]:
        """Account, stakes and offers (module docstring); asset -> its status."""
        node, key = self.node, self.key
        self.sandbox.start()  # its zygote imports numpy while the agent registers
        if not node.has_account(key.public):
            node.submit(key, m.OpenAccount())
        assets = self._views.entries(node.get_json("/ledger/assets"), Asset, "the ledger's assets")
        mine = {a["id"]: a for a in assets if a["owner"] == key.public}
        offers = node.get_json("/ledger/offers")
        if not isinstance(offers, dict):  # asset -> its offer's wire form
            raise e.MalformedMessageError(
                f"the ledger's offers are not an object: the node answered {shown(offers)}"
            )
        wanted: list[tuple[str, int, Offer]] = [(s.asset, s.stake, s.offer())
                                                for s in self.servers.values()]  # fmt: skip
        for c in self.content:
            cid = node.put(c.content)
            wanted.append((c.asset, c.stake, Offer(c.asset, c.kind, cost=c.cost, cid=cid)))  # type: ignore[arg-type]
        status = {}
        for asset, stake, offer in wanted:
            if asset not in mine:
                node.submit(key, m.AddAsset(asset=asset, stake=stake))
            elif mine[asset]["status"] != "active":
                status[asset] = mine[asset]["status"]
                continue
            if offers.get(asset) != offer.to_wire():
                node.submit(key, m.PostOffer(offer=offer))
            status[asset] = "active"
        info = self._views.one(node.market_info(), MarketInfo, "the node's market info")
        self.grace_ms = info["grace_ms"]
        return status

    # --- work ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> AgentStats:
        """Poll for owed replicas and run them until `stop` is set."""
        self._stop = stop
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="replica")
        try:
            while not stop.is_set():
                try:
                    answer = self.node.tasks(assignee=self.key.public, status="open",
                                             limit=LISTING_LIMIT)  # fmt: skip
                    # a task of the wrong shape is left out (and logged), the others are run
                    listing = self._views.tasks(answer, "the node's list of this agent's tasks")
                except e.MercatError as exc:
                    self._note(f"listing tasks: {exc}")
                    stop.wait(1.0)
                    continue
                offset = listing.now_ms - time.time() * 1000
                for task in listing.tasks:
                    for asset in self.owed(task):
                        pool.submit(self._guarded, task, asset, offset)
                # Only after the listing's tasks are offered: `forget` may drop a replica
                # whose claim arrived after this listing was read; a later one shows it.
                self.forget(listing)
                stop.wait(self.poll_seconds)
        finally:
            # Replicas not started are dropped; one running is killed with its zygote: its
            # task fails its SLA, as a provider that left would.
            pool.shutdown(wait=False, cancel_futures=True)
            self.sandbox.close()
        return self.stats

    def owed(self, task: dict[str, Any]) -> list[str]:
        """This agent's servers bound to the task that have not claimed (nor started), as
        many as there is room for among the replicas queued or running (`max_pending`)."""
        claimed = {c["asset"] for c in task["claims"]}
        out = []
        for a in task["assets"]:
            key = (task["round"], task["task"], a["asset"])
            if a["kind"] != "server" or a["asset"] not in self.servers or a["asset"] in claimed:
                continue
            with self._lock:
                if key in self._started:
                    continue
                if len(self._running) >= self.max_pending:  # full: a later poll offers it
                    break
                self._started[key] = False
                self._running.add(key)
            out.append(a["asset"])
        return out

    def forget(self, listing: TaskListing) -> None:
        """Forget the replicas started that the node remembers for the agent, so that a
        market that runs for months does not grow the agent's memory by a key per replica.
        `listing` is the page of open tasks just offered (`owed`), newest first as the node
        lists them; a replica queued or running is kept whatever it says. Forgotten:

        - a replica whose task the page lists with its claim: the node keeps the claim
          while the task is open, and `owed` passes over a claimed server;
        - a replica whose claim the node took (`send_claim`) and whose task the page does
          not list: any later listing is read after the claim arrived, so it lists the
          task with the claim, or not at all once the task settled;
        - any other replica whose task has settled: a task leaves the open listing when it
          settles and never opens again, so one the page does not list in the stretch it
          covers (to its last task, or to the end for a page shorter than the limit) is
          settled. A page with entries left out for their shape may hide an open task:
          such a replica (its claim never reached the node) is kept, or the agent would
          run it again once the node lists the task well-formed. MAX_REMEMBERED bounds
          them, or one malformed entry that stayed listed would keep them all for good.
        """
        claimed = {(t["round"], t["task"]): {c["asset"] for c in t["claims"]}
                   for t in listing.tasks}  # fmt: skip
        full = listing.entries >= LISTING_LIMIT
        last = max(map(_newest_first, claimed), default=None) if full else None

        def settled(key: ReplicaKey) -> bool:
            if listing.left_out or (full and last is None):  # may hide the task
                return False
            return last is None or _newest_first(key[:2]) <= last

        def kept(key: ReplicaKey, claim_taken: bool) -> bool:
            if key in self._running:
                return True
            if key[:2] in claimed:  # listed: kept until it shows the claim
                return key[2] not in claimed[key[:2]]
            return not claim_taken and not settled(key)

        with self._lock:
            self._started = {k: taken for k, taken in self._started.items() if kept(k, taken)}
            over = len(self._started) - MAX_REMEMBERED
            if over > 0:  # a node that lists or hides ever more tasks: MAX_REMEMBERED
                idle = [k for k in self._started if k not in self._running]
                idle.sort(key=lambda k: not self._started[k])  # stable: oldest first
                for key in idle[:over]:
                    del self._started[key]

    def _guarded(self, task: dict[str, Any], asset: str, offset_ms: float) -> None:
        try:
            self.work(task, asset, offset_ms)
        except _Stopping:  # no claim: a restarted agent runs the replica (it keeps no state)
            return
        except Exception as exc:  # a worker thread must never die silently
            log.exception("replica %s/%s on %s", task["round"], task["task"], asset)
            self._note(f"{task['task']} on {asset}: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:  # `forget` may drop it once the node no longer lists its task
                self._running.discard((task["round"], task["task"], asset))

    def _note(self, text: str) -> None:
        with self._lock:
            if len(self.stats.errors) < 50:
                self.stats.errors.append(text[:300])

    def keys_for(self, task: dict[str, Any], asset: str, offset_ms: float) -> OpenedKeys:
        """The sealed task's keys, once its requester has granted them to this replica
        (`mercat.node.sealing`), waiting for the grant until the task's deadline on the
        node's clock: `KeyNotGrantedError` then."""
        deadline = task["opened_ms"] + task["deadline_ms"]
        while True:
            grants = self.node.get_json(
                f"/market/tasks/{task['round']}/{task['task']}/keys", asset=asset
            )
            if not isinstance(grants, list):  # the replica fails with this reason
                raise e.MalformedMessageError(
                    f"the key grants for task {task['task']} are not a list: the node "
                    f"answered {shown(grants)}"
                )
            if grants:
                return open_grant(SignedGrant.from_wire(grants[0]), task, self.key)
            if time.time() * 1000 + offset_ms > deadline:
                raise e.KeyNotGrantedError(
                    f"task {task['task']} is sealed and its requester granted {asset} no key "
                    "before the deadline"
                )
            if self._stop.wait(self.poll_seconds):
                raise _Stopping

    def injections(self, task: dict[str, Any], asset: str) -> tuple[bool, bool, bool]:
        """(crash, slow, wrong) for this replica (module docstring)."""
        spec = self.servers[asset]
        rng = np.random.default_rng(
            [
                self.seed,
                task["round"],
                zlib.crc32(task["task"].encode()),
                zlib.crc32(asset.encode()),
            ]
        )
        crash, slow, wrong = rng.random(3)
        return (bool(crash < spec.failure_rate), bool(slow < spec.slow_rate),
                bool(wrong < spec.wrong_rate))  # fmt: skip

    def send_claim(self, claim: OutcomeClaim) -> SignedClaim:
        """Sign and send a replica's claim; once the node has it, the agent need not
        remember the replica (`forget`)."""
        signed = SignedClaim.sign(claim, self.key)
        # AlreadyExistsError: sent before a restart, or the task settled meanwhile
        with contextlib.suppress(e.AlreadyExistsError):
            self.node.claim(signed)
        key = (claim.round, claim.task, claim.asset)
        with self._lock:
            if key in self._started:
                self._started[key] = True
        return signed

    def work(self, task: dict[str, Any], asset: str, offset_ms: float = 0.0) -> SignedClaim:
        """Run one replica and send its claim (module docstring)."""
        crash, slow, wrong = self.injections(task, asset)
        started = time.perf_counter()
        output: str | None = None
        error = ""
        try:
            spec = parse_workload(task["workload"])
            if spec.name == "fedavg":
                from mercat.workloads.federated import privacy_check

                verdict = privacy_check(spec)
                if not verdict.compliant:
                    with self._lock:
                        self.stats.refused_privacy += 1
                    raise e.InvalidWorkloadError(
                        f"Alg. 2: this round spends ε = {verdict.epsilon_actual:.3f} > "
                        f"{verdict.epsilon_budget:g}; privacy parameters need adjustment"
                    )
            keys = self.keys_for(task, asset, offset_ms) if task.get("sealed") else None
            inputs = [self.node.get(cid, MAX_INPUT_BYTES) for cid in task["inputs"]]
            if keys is not None and keys.inputs is not None:
                inputs = [_decrypted(data, keys.inputs, cid)
                          for data, cid in zip(inputs, task["inputs"], strict=True)]  # fmt: skip
            run = self.sandbox.run(task["workload"], inputs, crash=crash, corrupt=wrong)
            result = run.output
            if keys is not None and keys.output is not None:
                result = encrypt_deterministic(result, keys.output)
            output = self.node.put(result)
        except REPLICA_FAILURES as exc:
            error = str(exc)[:200].encode("ascii", "replace").decode()
        run_ms = int((time.perf_counter() - started) * 1000)
        if slow:  # arrive after the deadline, before the cutoff: late, not missing
            deadline = task["opened_ms"] + task["deadline_ms"] + min(self.grace_ms // 2, 500)
            time.sleep(max(0.0, (deadline - (time.time() * 1000 + offset_ms)) / 1000))
        claim = OutcomeClaim(self.node.ledger_id, task["round"], task["task"], asset,
                             output is not None, output, run_ms, error)  # fmt: skip
        signed = self.send_claim(claim)
        with self._lock:
            self.stats.replicas += 1
            self.stats.succeeded += output is not None
            self.stats.failed += output is None
            self.stats.injected_failures += crash
            self.stats.injected_slow += slow
            self.stats.injected_wrong += wrong
            self.stats.seconds_running += run_ms / 1000
        return signed
