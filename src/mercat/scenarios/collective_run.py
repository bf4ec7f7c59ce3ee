"""What one simulated run of a collective-incentive market leaves behind.

Both engines return a `RunRecord`; the differential test compares them field by field.
Asset ids are creation indices (0 .. assets_created-1). Tasks are numbered 1..N_t; an
asset created before task t (initial assets: t = 0 is replaced by 0, top-ups: t) or after
task t (periodic replacement) has `created_at = t`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class RunRecord:
    failed: np.ndarray  # bool[N_t]: did task t+1 fail
    live_assets: np.ndarray  # int32[N_t]: assets in the market after task t+1
    failure_rate: np.ndarray  # float64[n_assets]: Fa of every asset ever created
    created_at: np.ndarray  # int32[n_assets]
    removed_at: np.ndarray  # int32[n_assets]: task after which it was removed, -1 if never
    stake: np.ndarray  # float64[n_assets]: final stake (at removal for removed ones)
    tasks_run: np.ndarray  # int32[n_assets]
    tasks_failed: np.ndarray  # int32[n_assets]
    true_positives: int  # removed with Fa > F_a^target
    false_positives: int  # removed with Fa <= F_a^target
    combination_members: np.ndarray  # int32[n_combinations, size]
    combination_rates: np.ndarray  # float64[n_combinations]
    picks: np.ndarray | None = None  # int32[N_t, |A_t|] asset ids in pick order, if recorded

    @property
    def removal_precision(self) -> float:
        """TP / (TP + FP), and 1 when nothing was removed (the simulator's convention)."""
        removed = self.true_positives + self.false_positives
        return self.true_positives / removed if removed else 1.0

    def differences(self, other: RunRecord) -> list[str]:
        """Names of the fields that differ (empty when the runs are identical)."""
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if a is None or b is None or a.shape != b.shape or not np.array_equal(a, b):
                    out.append(f.name)
            elif a != b:
                out.append(f.name)
        return out
