"""Seed 002's month is fast only if it stays the same month: short runs pinned to the base
unit. The pinned values were written by the code before any of its speed-ups (the round
pipeline's snapshot caches, the scenario's loop, the oracles); a change that moves a single
draw, task or token shows here.

- `mercat simulate cloudchain --days 3 --json` (100 requesters, coll-stake, seed 1): the
  whole JSON the command prints (configuration, summary, groups, providers, tokens, audit);
- two smaller runs through `simulate`, every array of the result and every removal: coll-sr
  (stake-weighted admission) with a group control, and signed oracle reports.

A change that is meant to change the runs rewrites the file, and says why in its commit:

    python tests/scenarios/test_cloudchain_pinned.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mercat.scenarios.cloudchain import simulate
from mercat.scenarios.cloudchain_config import CloudChainConfig
from mercat.scenarios.cloudchain_metrics import CloudChainResult

PINNED = Path(__file__).with_name("cloudchain_pinned.json")
COMMAND = ["simulate", "cloudchain", "--days", "3", "--json"]
RUNS = {
    "coll-sr, stakes of 6 tokens, 40 requesters, 2 days, independents dropped at 0.3, seed 5": (
        CloudChainConfig(
            requesters=40,
            days=2,
            mechanism="coll-sr",
            stake=6.0,
            drop="group",
            drop_group="independents",
            drop_probability=0.3,
        ),
        5,
    ),
    "signed reports, 12 requesters, 1 day, seed 2": (
        CloudChainConfig(requesters=12, days=1, signed_reports=True),
        2,
    ),
}


def _command_json() -> dict:
    from typer.testing import CliRunner

    from mercat.cli import app

    out = CliRunner().invoke(app, COMMAND)
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def fingerprint(result: CloudChainResult) -> dict:
    """Everything a run measured: every array (per provider, requester, hour), every count,
    every removal with its round, the audit. As JSON (floats round-trip exactly)."""
    arrays = ("earned", "stake_change", "allocated", "delivered", "offered", "demanded",
              "served", "paid", "hourly_gpu_hours")  # fmt: skip
    counts = ("jobs_submitted", "jobs_completed", "jobs_expired", "jobs_dropped_by_control",
              "jobs_waiting", "tasks", "tasks_paid", "tasks_on_time", "no_quorum",
              "overturned")  # fmt: skip
    out: dict = {name: np.asarray(getattr(result, name)).tolist() for name in arrays}
    out.update({name: getattr(result, name) for name in counts})
    out["removed"] = [list(r) for r in result.removed]
    out["audit"] = result.audit
    return json.loads(json.dumps(out))


def _current() -> dict:
    return {
        "command": {" ".join(COMMAND): _command_json()},
        "runs": {
            label: fingerprint(simulate(cfg, seed=seed)) for label, (cfg, seed) in RUNS.items()
        },
    }


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True)  # NaN compares equal to NaN as text


@pytest.mark.slow
def test_the_runs_are_the_pinned_runs():
    pinned = json.loads(PINNED.read_text())
    current = _current()
    assert pinned.keys() == current.keys()
    for part in pinned:  # compared piece by piece, so that a failure names what moved
        assert pinned[part].keys() == current[part].keys()
        for label, data in pinned[part].items():
            assert data.keys() == current[part][label].keys(), label
            for key, value in data.items():
                assert _canonical(current[part][label][key]) == _canonical(value), (label, key)


if __name__ == "__main__":
    if sys.argv[1:]:
        sys.exit("usage: python tests/scenarios/test_cloudchain_pinned.py  (rewrites the pin)")
    PINNED.write_text(json.dumps(_current(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINNED}")
