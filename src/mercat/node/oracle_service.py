"""An oracle service: watches a node's open tasks, checks each one's SLA, signs a report and
sends it to the node (`mercat oracle`). The node settles a task once a quorum of the
ledger's oracles agrees (seed 002: oracles verify SLA compliance and report on chain).

For each open task it has not reported on, once the task is complete or past its cutoff
(`mercat.node.sla`, on the node's clock):

1. the claims decide success, the SLA (latency within the deadline) and the output CID, the
   same way for every oracle: a missing replica, a failed one, or replicas that disagree
   fail the task;
2. a successful output is fetched from the store and re-hashed against its CID (the client
   does), and must be the workload's kind of output (a model, a dataset, predictions);
3. a fedavg task is held to its privacy budget (Alg. 2 on the request's parameters);
4. on a sampled share of tasks (`sample_rate`), the oracle re-executes the workload in its
   own sandbox and compares the output byte for byte (by CID). Which tasks are sampled is
   decided by a hash of (a secret the market's oracles share, ledger, round, task): every
   honest oracle samples the same tasks, and a provider cannot tell in advance which of
   its outputs will be checked;
5. a sealed task (`mercat.node.sealing`) is checked as far as an oracle without its keys
   can: the output by CID, the replicas' agreement (deterministic encryption gives equal
   ciphertexts for equal outputs), the SLA, a fedavg round's budget (its parameters are in
   the clear), and a sealed output must be in the sealed layout. The oracle cannot read a
   sealed output's kind, nor re-execute a task on sealed inputs: a sampled sealed task is
   counted in `sealed_unchecked`, not re-executed (sealing its keys to the oracles too
   would let every oracle read what the requester sealed);
6. it signs the report (`OracleReport`, bound to the ledger) and sends it to the node.

Behaviours for tests and devnets: `honest`; `liar` (reports the opposite of what it found:
the quorum must outvote it); `silent` (never reports: a minority going silent must not stop
settlement).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from mercat import errors as e
from mercat import validation as check
from mercat.identity import Keypair
from mercat.node.client import NodeClient
from mercat.node.market_schemas import MarketInfo
from mercat.node.sla import Judgement, Timing, judge
from mercat.node.views import TaskListing, ViewCheck
from mercat.oracle.report import OracleReport, SignedReport
from mercat.storage.encryption import is_deterministic
from mercat.workloads import archive, sandbox
from mercat.workloads.spec import parse as parse_workload

log = logging.getLogger("mercat.oracle")
Behaviour = Literal["honest", "liar", "silent"]
BEHAVIOURS = ("honest", "liar", "silent")
OUTPUT_KIND = {"preprocess": "dataset", "infer": "predictions"}  # every other: a model
MAX_OUTPUT_BYTES = 64 << 20
LISTING_LIMIT = 1000  # the most tasks one look at the node lists
# The most looks in one pass: with more open tasks than these pages hold, the next pass
# carries on after the last task read, so every open task is judged within a few passes
# while one pass stays bounded in time and memory.
PAGES_PER_PASS = 10
# The most tasks the oracle remembers having judged; past it, the longest remembered is
# forgotten. Safe to forget: the node keeps every report it accepted (a task it lists with
# this oracle's report is passed over, and a second report is refused as AlreadyExists),
# so a task forgotten early costs at most its checks again, never a second report.
MAX_REMEMBERED = PAGES_PER_PASS * LISTING_LIMIT
TaskKey = tuple[int, str]  # (round, task)


@dataclass
class OracleStats:
    reported: int = 0
    success: int = 0
    failure: int = 0
    re_executed: int = 0
    caught: int = 0  # outputs that failed a check the claims alone passed
    sealed_unchecked: int = 0  # sampled sealed tasks it could not re-execute (no keys)
    errors: list[str] = field(default_factory=list)


def sampled(secret: bytes, ledger: str, round_: int, task: str, rate: float) -> bool:
    """Whether this task is one the oracles re-execute (module docstring, 4)."""
    digest = hashlib.sha256(secret + f"|{ledger}|{round_}|{task}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < rate * 2**64


class OracleService:
    """See the module docstring."""

    def __init__(
        self,
        node: NodeClient,
        key: Keypair,
        *,
        behaviour: Behaviour = "honest",
        sample_rate: float = 0.25,
        secret: bytes | None = None,
        limits: sandbox.Limits | None = None,
        poll_seconds: float = 0.25,
        workdir: str | None = None,
    ) -> None:
        self.node = node
        self.key = key
        self.behaviour = check.choice("behaviour", behaviour, BEHAVIOURS)
        self.sample_rate = float(check.probability("sample rate", sample_rate))
        self.secret = secrets.token_bytes(32) if secret is None else secret
        self.limits = limits or sandbox.Limits()
        self.sandbox = sandbox.Sandbox(self.limits, workdir)
        self.poll_seconds = poll_seconds
        self.workdir = workdir
        self.stats = OracleStats()
        # Reported (or passed over), until the node lists the task settled or with this
        # oracle's report (`forget`), oldest first, at most MAX_REMEMBERED.
        self._done: dict[TaskKey, None] = {}
        self._cursor: TaskKey | None = None  # where the next pass reads on (None: the start)
        self._views = ViewCheck(log)  # what the node answers is checked before it is used

    def run(self, stop: threading.Event) -> OracleStats:
        try:
            if self.sample_rate > 0:
                self.sandbox.start()  # ready before the first sampled task
            return self._run(stop)
        finally:
            self.sandbox.close()

    def _run(self, stop: threading.Event) -> OracleStats:
        timing: Timing | None = None
        while not stop.is_set():
            try:
                if timing is None:
                    what = "the node's market info"
                    info = self._views.one(self.node.market_info(), MarketInfo, what)
                    timing = Timing(info["grace_ms"], info["no_deadline_ms"])
                self.pass_once(timing, stop)
            except e.MercatError as exc:
                self._note(f"{type(exc).__name__}: {exc}")
                stop.wait(1.0)
                continue
            stop.wait(self.poll_seconds)
        return self.stats

    def pass_once(self, timing: Timing, stop: threading.Event | None = None) -> int:
        """Report on the open tasks that are ready; how many reports were sent. The open
        tasks are read oldest first, a page at a time: a task past its cutoff is the one
        that most needs its report, and the newest `LISTING_LIMIT` alone would hide it
        for as long as the market has more open tasks than that. A pass reads at most
        `PAGES_PER_PASS` pages and the next one carries on after them (from the start
        again once it has read the last page)."""
        sent = 0
        for _ in range(PAGES_PER_PASS):
            if stop is not None and stop.is_set():
                break
            start = self._cursor
            filters: dict[str, Any] = {"status": "open", "limit": LISTING_LIMIT, "order": "oldest"}
            if start is not None:
                filters["after"] = f"{start[0]}/{start[1]}"
            answer = self.node.tasks(**filters)
            # a task of the wrong shape is left out (and logged), the others are judged
            listing = self._views.tasks(answer, "the node's list of open tasks")
            self.forget(listing, after=start)
            sent += self._judge(listing, timing, stop)
            if listing.entries < LISTING_LIMIT or not listing.tasks:
                # The last page (or one with no task to carry on from): start again.
                self._cursor = None
                break
            self._cursor = max((t["round"], t["task"]) for t in listing.tasks)
        return sent

    def _judge(self, listing: TaskListing, timing: Timing, stop: threading.Event | None) -> int:
        """Report on the listed tasks that are ready; how many reports were sent."""
        sent = 0
        for task in sorted(listing.tasks, key=lambda t: (t["round"], t["task"])):
            key = (task["round"], task["task"])
            if key in self._done or self.key.public in task["reported_by"]:
                continue
            if stop is not None and stop.is_set():
                break
            servers = [a["asset"] for a in task["assets"] if a["kind"] == "server"]
            claims = {c["asset"]: (c["success"], c["output"], c["received_ms"])
                      for c in task["claims"]}  # fmt: skip
            judgement = judge(servers, claims, task["opened_ms"], task["deadline_ms"], timing,
                              listing.now_ms)  # fmt: skip
            if judgement is None:
                continue
            if self.behaviour == "silent":
                self._remember(key)
                continue
            # A node that cannot be reached now raises out of this pass: the task is not
            # marked done, and the next pass judges it again (the same way).
            report = self.verify(task, judgement)
            if self.behaviour == "liar":
                report = lie(report, judgement)
            try:
                self.node.report(SignedReport.sign(report, self.key))
            except e.AlreadyExistsError:  # sent before, by this oracle before a restart
                self._remember(key)
                continue
            self._remember(key)
            sent += 1
            self.stats.reported += 1
            self.stats.success += report.success
            self.stats.failure += not report.success
        return sent

    def _remember(self, key: TaskKey) -> None:
        self._done[key] = None
        if len(self._done) > MAX_REMEMBERED:  # a node that lists ever more open tasks
            del self._done[next(iter(self._done))]

    def forget(self, listing: TaskListing, after: TaskKey | None = None) -> None:
        """Forget the tasks done that the node lists settled or with this oracle's report
        (the node remembers those for it), so that a market that runs for months does not
        grow the oracle's memory by a key per task: a task leaves the open listing when it
        settles, and a settled task never opens again. `listing` is the page of open tasks,
        oldest first, that follows `after` (None: the first page): a task done in the
        stretch it covers (after `after`, up to its last task, or to the end for a page
        shorter than the limit) that it does not list is settled. An entry left out for its
        shape may hide a task done that is still open: it is forgotten all the same (see
        MAX_REMEMBERED), or one malformed entry that stayed listed would keep every task
        reported in its page's stretch remembered for good."""
        listed = {(t["round"], t["task"]) for t in listing.tasks}
        if listing.entries >= LISTING_LIMIT and not listed:
            return  # no task to tell where the page ends
        last = max(listed) if listing.entries >= LISTING_LIMIT else None
        pending = {(t["round"], t["task"]) for t in listing.tasks
                   if self.key.public not in t["reported_by"]}  # fmt: skip

        def outside(key: TaskKey) -> bool:
            return (after is not None and key <= after) or (last is not None and key > last)

        self._done = {key: None for key in self._done if key in pending or outside(key)}

    def verify(self, task: dict[str, Any], judged: Judgement) -> OracleReport:
        """The honest report on a judged task (module docstring, 1-4)."""
        ledger = self.node.ledger_id
        failure = OracleReport(task["round"], task["task"], False, False, judged.latency_ms,
                               None, ledger)  # fmt: skip
        if not judged.success:
            return failure
        assert judged.output is not None
        try:
            spec = parse_workload(task["workload"])
            sealed = set(task.get("sealed", ()))
            output = self.node.get(judged.output, MAX_OUTPUT_BYTES)
            if "output" in sealed:
                if not is_deterministic(output):
                    raise e.InvalidWorkloadError("a sealed output that is not sealed")
            else:
                kind, _ = archive.load(output)
                if kind != OUTPUT_KIND.get(spec.name, "model"):
                    raise e.InvalidWorkloadError(f"{spec.name} returned a {kind}")
            if spec.name == "fedavg":
                from mercat.workloads.federated import privacy_check

                if not privacy_check(spec).compliant:
                    raise e.InvalidWorkloadError("the round exceeds its privacy budget (Alg. 2)")
            chosen = sampled(self.secret, ledger, task["round"], task["task"], self.sample_rate)
            if chosen and sealed:
                self.stats.sealed_unchecked += 1  # no keys: nothing to re-execute with
            elif chosen:
                self.stats.re_executed += 1
                inputs = [self.node.get(cid, MAX_OUTPUT_BYTES) for cid in task["inputs"]]
                again = self.sandbox.run(task["workload"], inputs)
                if again.output != output:
                    raise e.InvalidWorkloadError("re-execution gives another output")
        except (e.WorkloadError, e.StorageError) as exc:
            self.stats.caught += 1
            log.info("task %s/%s fails its check: %s", task["round"], task["task"], exc)
            return failure
        return OracleReport(task["round"], task["task"], True, judged.sla_met,
                            judged.latency_ms, judged.output, ledger)  # fmt: skip

    def _note(self, text: str) -> None:
        if len(self.stats.errors) < 50:
            self.stats.errors.append(text[:300])


def lie(report: OracleReport, judged: Judgement) -> OracleReport:
    """The opposite verdict: a failed task reported as a success on time with the claimed
    output, a success reported as a failure."""
    if report.success:
        return OracleReport(report.round, report.task, False, False, report.latency_ms, None,
                            report.ledger)  # fmt: skip
    return OracleReport(report.round, report.task, True, True, report.latency_ms,
                        judged.output, report.ledger)  # fmt: skip
