"""What a month of seed 002's marketplace measured, and how each metric is defined.

- **Throughput** (Fig. 3): GPU-hours of work attested on time and paid, per hour; jobs
  completed (every GPU-hour of the job paid) per hour.
- **Tokens** (Fig. 4, eq. 2): per provider, the payouts of its paid tasks (P_i·C_i) plus the
  change of its servers' stakes under the collective rule (rewards in, penalties out: eq.
  2's λ_i·R_i, read as P = λ·n for a task the n oracles did not attest on time).
- **Fairness** (Fig. 5): Jain's index J(x) = (Σx)² / (n·Σx²) of the *served share of demand*
  x = GPU-hours served / GPU-hours demanded, over requester groups (`jain_groups`) and over
  single requesters (`jain_requesters`). Jain's index is scale-free: dropping every
  requester's jobs alike leaves it where it was, which is what it should do (equal
  treatment, even if worse for all); serving one group's demand less than another's
  lowers it. With groups that differ in budget, a price mechanism serves the low bidders
  less when capacity is scarce, and the index says so.
- **SLA compliance**: the share of executed tasks attested on time (`sla_compliance`), and
  the share that truly ran on time (`sla_compliance_true`; the oracles' errors separate the
  two).
- **Utilization**: GPU-hours allocated to tasks over GPU-hours offered by active servers.
  `utilization_by_capacity` pools all providers (a GPU-hour counts the same wherever it is:
  the market's utilization); `utilization_mean_over_providers` is the unweighted mean of each
  provider's own utilization (a small community node counts as much as AWS). They differ
  when small providers are busy and large ones idle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mercat.scenarios.cloudchain_config import CloudChainConfig


def jain(x: np.ndarray, include: np.ndarray | None = None) -> float:
    """Jain's fairness index (Σx)² / (n Σx²): 1 when all are equal, 1/n when one has all
    (NaN when there is nothing to compare)."""
    values = np.asarray(x, dtype=float)
    if include is not None:
        values = values[include]
    if values.size == 0 or not np.any(values):
        return math.nan
    return float(values.sum() ** 2 / (values.size * np.square(values).sum()))


def served_share(served: np.ndarray, demanded: np.ndarray) -> np.ndarray:
    """GPU-hours served over GPU-hours demanded, per entry (NaN where nothing was asked)."""
    demanded = np.asarray(demanded, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(demanded > 0, np.asarray(served, dtype=float) / demanded, np.nan)


def jain_of_shares(served: np.ndarray, demanded: np.ndarray) -> float:
    """Jain's index of the served share of demand, over the entries that asked for any."""
    share = served_share(served, demanded)
    return jain(share, ~np.isnan(share))


@dataclass
class CloudChainResult:
    """One run. Arrays are indexed by provider (`config.providers`), requester, or group
    (`config.groups`); GPU-hours and tokens are floats converted from the book's integers."""

    config: CloudChainConfig
    seed: int
    earned: np.ndarray  # per provider: payouts of paid tasks, tokens
    stake_change: np.ndarray  # per provider: rewards - penalties on its servers, tokens
    allocated: np.ndarray  # per provider: GPU-hours of tasks opened on its servers
    delivered: np.ndarray  # per provider: GPU-hours of paid tasks
    offered: np.ndarray  # per provider: GPU-hours its active servers offered
    requester_group: np.ndarray  # per requester: index of its group
    demanded: np.ndarray  # per requester: GPU-hours submitted (dropped jobs included)
    served: np.ndarray  # per requester: GPU-hours paid for
    paid: np.ndarray  # per requester: tokens charged
    hourly_gpu_hours: np.ndarray  # per round: GPU-hours served
    jobs_submitted: int = 0
    jobs_completed: int = 0
    jobs_expired: int = 0  # out of patience before every GPU-hour was served
    jobs_dropped_by_control: int = 0
    jobs_waiting: int = 0  # still waiting when the month ended
    tasks: int = 0
    tasks_paid: int = 0
    tasks_on_time: int = 0  # truly ran within the SLA (what the oracles observed)
    no_quorum: int = 0
    overturned: int = 0  # verdicts that differ from what happened
    removed: list[tuple[str, str, int]] = field(default_factory=list)  # (server, provider, round)
    audit: dict[str, Any] = field(default_factory=dict)

    # --- Fig. 3 ----------------------------------------------------------------------
    @property
    def gpu_hours_per_hour(self) -> float:
        return float(self.hourly_gpu_hours.mean())

    @property
    def jobs_per_hour(self) -> float:
        return self.jobs_completed / self.config.rounds

    @property
    def jobs_completed_share(self) -> float:
        return self.jobs_completed / self.jobs_submitted if self.jobs_submitted else math.nan

    # --- Fig. 4 ----------------------------------------------------------------------
    @property
    def tokens(self) -> np.ndarray:
        """Per provider: eq. 2's profit, payouts plus the stake the collective rule moved."""
        return self.earned + self.stake_change

    @property
    def cloud_token_share(self) -> float:
        clouds = np.array([p.cloud for p in self.config.providers])
        total = self.tokens.sum()
        return float(self.tokens[clouds].sum() / total) if total > 0 else math.nan

    # --- Fig. 5 ----------------------------------------------------------------------
    @property
    def group_demanded(self) -> np.ndarray:
        return np.bincount(self.requester_group, self.demanded, len(self.config.groups))

    @property
    def group_served(self) -> np.ndarray:
        return np.bincount(self.requester_group, self.served, len(self.config.groups))

    @property
    def jain_groups(self) -> float:
        return jain_of_shares(self.group_served, self.group_demanded)

    @property
    def jain_requesters(self) -> float:
        return jain_of_shares(self.served, self.demanded)

    # --- SLA and utilization ---------------------------------------------------------
    @property
    def sla_compliance(self) -> float:
        return self.tasks_paid / self.tasks if self.tasks else math.nan

    @property
    def sla_compliance_true(self) -> float:
        return self.tasks_on_time / self.tasks if self.tasks else math.nan

    @property
    def utilization(self) -> np.ndarray:
        """Per provider: GPU-hours allocated over GPU-hours offered."""
        return served_share(self.allocated, self.offered)

    @property
    def utilization_by_capacity(self) -> float:
        return float(self.allocated.sum() / self.offered.sum())

    @property
    def utilization_mean_over_providers(self) -> float:
        return float(np.nanmean(self.utilization))

    def summary(self) -> dict[str, float | int]:
        return {
            "gpu_hours_per_hour": self.gpu_hours_per_hour,
            "jobs_per_hour": self.jobs_per_hour,
            "jobs_submitted": self.jobs_submitted,
            "jobs_completed": self.jobs_completed,
            "jobs_expired": self.jobs_expired,
            "jobs_dropped_by_control": self.jobs_dropped_by_control,
            "jobs_waiting_at_end": self.jobs_waiting,
            "jain_groups": self.jain_groups,
            "jain_requesters": self.jain_requesters,
            "sla_compliance": self.sla_compliance,
            "sla_compliance_true": self.sla_compliance_true,
            "tasks": self.tasks,
            "tasks_without_quorum": self.no_quorum,
            "verdicts_overturned": self.overturned,
            "utilization_by_capacity": self.utilization_by_capacity,
            "utilization_mean_over_providers": self.utilization_mean_over_providers,
            "cloud_token_share": self.cloud_token_share,
            "servers_removed": len(self.removed),
        }

    def groups_table(self) -> list[dict[str, Any]]:
        sizes = np.bincount(self.requester_group, minlength=len(self.config.groups))
        demanded, served = self.group_demanded, self.group_served
        paid = np.bincount(self.requester_group, self.paid, len(self.config.groups))
        return [
            {
                "group": g.name,
                "requesters": int(sizes[i]),
                "gpu_hours_demanded": float(demanded[i]),
                "gpu_hours_served": float(served[i]),
                "served_share": float(served[i] / demanded[i]) if demanded[i] else math.nan,
                "tokens_paid_per_gpu_hour": float(paid[i] / served[i]) if served[i] else math.nan,
            }
            for i, g in enumerate(self.config.groups)
        ]

    def providers_table(self) -> list[dict[str, Any]]:
        return [
            {
                "provider": p.name,
                "kind": "cloud" if p.cloud else "community",
                "premium": self.config.premium(p),
                "gpus": p.gpus,
                "cost_per_gpu_hour": p.cost,
                "earned": float(self.earned[i]),
                "stake_change": float(self.stake_change[i]),
                "tokens": float(self.tokens[i]),
                "utilization": float(self.utilization[i]),
                "servers_removed": sum(1 for _, owner, _ in self.removed if owner == p.name),
            }
            for i, p in enumerate(self.config.providers)
        ]
