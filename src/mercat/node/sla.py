"""When a task's replicas are in, and what they add up to: the rule the node's executor and
every oracle apply alike, so that honest oracles reach the same verdict.

Times are the node's (milliseconds since the epoch, stamped when the node opened the task
and when it received each claim), so no oracle's clock matters. A task with SLA deadline D
(the request's `deadline_ms`) opened at t0:

- its **cutoff** is t0 + D + grace (t0 + `no_deadline_ms` for a request without a deadline):
  claims received after it do not count, so a verdict never depends on when an oracle looked;
- it is **complete** when every server bound to it has a counted claim; an oracle judges a
  task once it is complete or its cutoff has passed, not before;
- it **succeeded** when it is complete, every replica claims success, and the replicas name
  the same output CID (replicas that disagree fail the task: nobody can say which one was
  wrong, and seed 000's collective rule does not need to);
- it **met its SLA** when it succeeded and its latency, the last counted claim's arrival
  minus t0, is at most D. A failed task has not met its SLA.

The oracles check more before they report success (`mercat.node.oracle_service`): that the
output is in the store and hashes to its CID, that it is the workload's kind of output, and
on a sampled share of tasks that re-executing the workload gives the same CID.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Claim = tuple[bool, str | None, int]  # (success, output CID, received_ms)


@dataclass(frozen=True)
class Timing:
    grace_ms: int = 2_000
    no_deadline_ms: int = 120_000

    def cutoff(self, opened_ms: int, deadline_ms: int) -> int:
        if deadline_ms <= 0:
            return opened_ms + self.no_deadline_ms
        return opened_ms + deadline_ms + self.grace_ms


@dataclass(frozen=True)
class Judgement:
    """What the counted claims of one task say."""

    complete: bool
    success: bool
    sla_met: bool
    latency_ms: int
    output: str | None
    reason: str  # why it failed, for people ("" on success)


def judge(
    servers: Sequence[str],
    claims: Mapping[str, Claim],
    opened_ms: int,
    deadline_ms: int,
    timing: Timing,
    now_ms: int,
) -> Judgement | None:
    """The judgement of a task (module docstring), or None while it is neither complete
    nor past its cutoff."""
    cutoff = timing.cutoff(opened_ms, deadline_ms)
    counted = {a: c for a, c in claims.items() if a in servers and c[2] <= cutoff}
    complete = len(counted) == len(servers) and bool(servers)
    if not complete and now_ms <= cutoff:
        return None
    if not complete:
        missing = sorted(set(servers) - set(counted))
        return Judgement(False, False, False, max(0, cutoff - opened_ms), None,
                         f"no claim from {', '.join(missing)} by the cutoff")  # fmt: skip
    latency = max(0, max(c[2] for c in counted.values()) - opened_ms)
    failed = sorted(a for a, c in counted.items() if not c[0])
    if failed:
        return Judgement(True, False, False, latency, None, f"{', '.join(failed)} failed")
    outputs = {c[1] for c in counted.values()}
    if len(outputs) != 1:
        return Judgement(True, False, False, latency, None, "the replicas' outputs differ")
    met = deadline_ms <= 0 or latency <= deadline_ms
    reason = "" if met else f"late: {latency} ms against a deadline of {deadline_ms} ms"
    return Judgement(True, True, met, latency, outputs.pop(), reason)
