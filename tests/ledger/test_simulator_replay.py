"""The ledger replays a simulated market run and ends with the simulator's stakes.

The simulator (reference engine, which settles with `incentives.collective.settle`) runs a
small seed-000 market and records every pick and outcome; the ledger then settles the same
tasks, one signed message each, on the same assets. Every removal and every final stake
must agree. Parameters are whole numbers of base units (P = 99, R = 1, S0 = 990 tokens), so
the agreement is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from mercat.ledger import IntegerRule
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_reference import simulate_run
from mercat.scenarios.collective_sim import failure_rate_pool
from mercat.scenarios.rng import run_states
from tests.ledger.market import Market

UNIT = 1000


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", ["coll-stake", "coll-sr", "coll-rep"])
def test_ledger_replays_a_simulated_run_event_for_event(sqlite_url, mechanism):
    config = CollectiveConfig(
        mechanism=mechanism, assets=8, tasks=160, penalty=99.0, stake=990.0, target=0.01,
        alpha=0.5, replacement_interval=20,
    )  # fmt: skip
    run = simulate_run(config, run_states(3, 1)[0], failure_rate_pool(config, 3), record_picks=True)
    assert run.removed_at.max() > 0 or mechanism == "coll-rep", "the run should exercise removal"

    m = Market(sqlite_url, rule=IntegerRule.from_collective(config.rule, UNIT), users=2)
    owner, requester = m.users
    m.fund(owner, 10**13)
    m.fund(requester, 10**12)
    m.fund_pool(10**13)
    request = m.request(requester, 10**9)
    registered: set[int] = set()
    for task, (picks, failed) in enumerate(zip(run.picks, run.failed, strict=True), start=1):
        for asset in sorted(set(picks.tolist()) - registered):  # assets enter as first needed
            m.asset(owner, int(config.stake) * UNIT, f"a{asset}")
            registered.add(asset)
        name = m.task(request, [f"a{a}" for a in picks], [0] * len(picks))
        receipt = m.settle(1, name, not failed)
        expected = [f"a{a}" for a in picks if run.removed_at[a] == task]
        assert receipt.result["removed"] == expected, f"task {task}"
    for asset in registered:
        assert m.ledger.stake_of(f"a{asset}") == round(run.stake[asset] * UNIT), asset
    removed_on_ledger = {a.id for a in m.ledger.assets() if a.status != "active"}
    assert removed_on_ledger == {f"a{a}" for a in np.flatnonzero(run.removed_at >= 0)}
    m.ledger.verify()
    m.ledger.close()
