"""A live market over HTTP on loopback, with the faults a decentralized market must survive:
a lying and a silent oracle, a provider agent killed mid-task (kill -9), the node killed
mid-round and restarted. Every wait polls for what it waits for; nothing sleeps and hopes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mercat.ledger import Ledger
from mercat.node.agent import ProviderAgent
from mercat.node.client import NodeClient, wait_until_up
from mercat.node.genesis import UNIT, DevnetKeys, DevnetSetup, genesis, provider_plan
from mercat.node.local_market import LocalMarket, free_port
from mercat.node.oracle_service import OracleService
from mercat.node.requester import Requester
from mercat.workloads import datasets

pytestmark = pytest.mark.slow
MERCAT = [sys.executable, "-m", "mercat.cli"]


def poll(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def settle_entries(ledger: Ledger) -> int:
    return sum(1 for e in ledger.journal(limit=1000) if e.op in ("settle", "settle_tasks"))


def test_a_lying_oracle_is_outvoted_and_a_silent_one_does_not_stop_settlement(tmp_path):
    setup = DevnetSetup(providers=2, servers_per_provider=1, oracles=5, liars=1, silent=1,
                        requesters=1, rounds=2, per_round=2, failure_prone=0.5,
                        round_seconds=0.0, sample_rate=0.5, seed=3)  # fmt: skip
    with LocalMarket(setup, tmp_path) as market:
        market.wait_done(300)
        tasks = market.client().tasks(limit=100)["tasks"]
        liar, silent = (k.public for k in market.keys.oracles[:2])
        with Ledger(market.ledger_url) as ledger:
            ledger.verify()
            settled = [t for t in ledger.tasks() if t.status == "settled"]
            assert settled and len(settled) == len(tasks)
            for task in settled:
                statuses = {r.oracle: s for r, s in ledger.oracle_reports(task.round, [task.task])}
                assert statuses.get(liar) != "agree"  # never with the quorum
                assert silent not in statuses
                assert sum(s == "agree" for s in statuses.values()) >= setup.quorum
    assert all(t["verdict"] is not None for t in tasks)
    assert any(t["verdict"]["paid"] for t in tasks)


def test_an_agent_killed_mid_task_fails_its_sla_and_the_collective_rule_applies(tmp_path):
    setup = DevnetSetup(providers=1, servers_per_provider=1, oracles=3, requesters=1,
                        rounds=1, round_seconds=0.0, grace_ms=500, failure_prone=0.0,
                        steady_failure_rate=0.0, model_asset=False, sample_rate=0.0)  # fmt: skip
    market = LocalMarket(setup, tmp_path)
    market.start(participants=False)
    agent = None
    try:
        node = market.client()
        for key in market.keys.oracles:
            oracle = OracleService(market.client(), key, sample_rate=0.0)
            market.oracles.append(oracle)
            market._spawn("oracle", oracle.run)
        servers, _ = provider_plan(setup, 0)
        work = tmp_path / "agent-work"
        work.mkdir()
        agent = subprocess.Popen(
            [*MERCAT, "agent", "--node", market.url, "--key", "-", "--server", servers[0].asset,
             "--stake", str(setup.stake), "--workdir", str(work), "--seed", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        agent.stdin.write(market.keys.providers[0].seed.hex().encode() + b"\n")
        agent.stdin.close()
        assert b"READY" in agent.stdout.readline()
        requester = Requester(node, market.keys.requesters[0])
        with Ledger(market.ledger_url) as ledger:
            supply = ledger.supply()
        budget = node.available(requester.key.public)
        big = datasets.classification(20_000, 20, seed=1)  # seconds of work, not milliseconds
        name = requester.submit("train-logreg:steps=20000", [big], max_price=3 * UNIT,
                                deadline_ms=4_000)  # fmt: skip
        # Kill it once the replica is running: its run directory holds the job.
        poll(lambda: any(work.glob("mercat-zygote-*")) and any(work.glob("mercat-task-*/job.json")),
             120, "the agent to start the replica")  # fmt: skip
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        outcome = poll(lambda: (o := requester.outcome(name)).status != "open" and o, 120,
                       "the task to settle")  # fmt: skip
        assert outcome.status == "closed" and not outcome.paid
        task = outcome.tasks[0]
        assert task["claims"] == [] and "no claim" in task["note"]
        assert not task["verdict"]["success"] and not task["verdict"]["sla_met"]
        with Ledger(market.ledger_url) as ledger:
            ledger.verify()
            assert ledger.supply() == supply  # nothing lost
            rule = ledger.config.rule
            assert ledger.stake_of(servers[0].asset) == servers[0].stake - rule.penalty
        assert node.available(requester.key.public) == budget  # all of the escrow came back
        # the workload the agent was running died with it (its zygote and the child)
        poll(lambda: not _processes_under(work), 30, "the agent's sandbox to die with it")
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
        market.close()


def _processes_under(path: Path) -> list[int]:
    """Processes whose working directory lies under `path` (a sandbox's runs and zygotes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(path)):
            found.append(int(entry.name))
    return found


def _serve(setup, workdir, keys, port):
    process = subprocess.Popen(
        [*MERCAT, "serve", "--ledger", f"sqlite:///{workdir}/ledger.db", "--store",
         str(workdir / "store"), "--board", str(workdir / "board.db"), "--operator-key", "-",
         "--port", str(port), "--round-seconds", "0", "--until-round", "1", "--grace-ms", "500",
         "--limit", "client_rate=1000", "--limit", "client_burst=10000"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    process.stdin.write(keys.operator.seed.hex().encode() + b"\n")
    process.stdin.close()
    wait_until_up(f"http://127.0.0.1:{port}", 120, process)
    return process


def test_a_node_killed_mid_round_resumes_the_round_and_settles_it_once(tmp_path):
    setup = DevnetSetup(providers=1, servers_per_provider=1, oracles=3, requesters=1,
                        rounds=1, failure_prone=0.0, steady_failure_rate=0.0,
                        model_asset=False, sample_rate=0.0)  # fmt: skip
    keys = DevnetKeys.generate(setup)
    genesis(f"sqlite:///{tmp_path}/ledger.db", setup, keys).close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    node = _serve(setup, tmp_path, keys, port)
    import threading

    stop = threading.Event()
    threads = []
    try:
        client = NodeClient(url)
        servers, _ = provider_plan(setup, 0)
        agent = ProviderAgent(NodeClient(url), keys.providers[0], servers)
        agent.register()  # offered, but not working yet: the round waits for it
        for key in keys.oracles:
            oracle = OracleService(NodeClient(url), key, sample_rate=0.0)
            threads.append(threading.Thread(target=oracle.run, args=(stop,), daemon=True))
        requester = Requester(client, keys.requesters[0])
        requester.submit("train-logreg:steps=50", [datasets.classification(100, 4, 1)],
                         max_price=2 * UNIT, deadline_ms=60_000)  # fmt: skip
        poll(lambda: client.tasks(status="open")["tasks"], 120, "round 1's task to open")
        node.send_signal(signal.SIGKILL)  # mid-round: the task is open on the ledger
        node.wait(10)
        node = _serve(setup, tmp_path, keys, port)
        for thread in threads:
            thread.start()
        threads.append(threading.Thread(target=agent.run, args=(stop,), daemon=True))
        threads[-1].start()
        poll(lambda: (client.summary().get("loop") or {}).get("state") == "done", 180,
             "the resumed round to settle")  # fmt: skip
        record = client.rounds()[-1]
        assert record["round"] == 1 and record["phase"] == "closed" and record["resumed"]
        assert client.market_info()["loop"]["next_round"] == 2
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        node.send_signal(signal.SIGTERM)
        node.wait(30)
    with Ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        ledger.verify()
        assert [t.status for t in ledger.tasks()] == ["settled"]
        assert settle_entries(ledger) == 1


def test_a_server_that_always_fails_loses_its_stake_and_leaves_and_the_penalty_is_collective(
    tmp_path,
):
    # Seed 000's collective rule: a failed task costs every asset bound to it P, whoever
    # failed; an asset whose stake falls to P leaves the market. p2-s1 fails every replica
    # (F_a = 1), p1-s1 never does; with S0 = 3 and P = 1, p2-s1 leaves after 2 failures.
    # Coll-Stake picks servers uniformly (Coll-SR would pick p2-s1 less and less as its stake
    # falls, and take longer to remove it), and six requests a round need both servers.
    setup = DevnetSetup(providers=2, servers_per_provider=1, oracles=3, requesters=3,
                        rounds=8, per_round=2, collective="coll-stake", failure_prone=0.5,
                        prone_failure_rate=1.0,
                        prone_slow_rate=0.0, prone_wrong_rate=0.0, steady_failure_rate=0.0,
                        stake=3.0, penalty=1.0, model_asset=False, sample_rate=0.0,
                        round_seconds=0.0, seed=2)  # fmt: skip
    with LocalMarket(setup, tmp_path) as market:
        market.wait_done(300)
        tasks = market.client().tasks(limit=500)["tasks"]
        with Ledger(market.ledger_url) as ledger:
            ledger.verify()
            rule = ledger.config.rule
            assets = {a.id: a for a in ledger.assets()}
            stakes = {name: ledger.stake_of(name) for name in assets}
    assert all(t["status"] == "settled" for t in tasks)
    served = {name: [t for t in tasks if name in {a["asset"] for a in t["assets"]}]
              for name in ("p1-s1", "p2-s1")}  # fmt: skip
    # every task the failing server ran failed, and only those did
    assert served["p2-s1"] and not any(t["verdict"]["success"] for t in served["p2-s1"])
    failed = [t for t in tasks if not t["verdict"]["success"]]
    assert all("p2-s1" in {a["asset"] for a in t["assets"]} for t in failed)
    # after its second failure its stake was down to P and it left, never to serve again
    assert len(served["p2-s1"]) >= 2
    assert assets["p2-s1"].status == "removed" and rule.is_ruined(stakes["p2-s1"])
    # the ledger removed exactly the ruined (the reliable server too, had it shared enough
    # failures: the rule is blind), and the market went on without the failing one
    ruined = rule.is_ruined(stakes["p1-s1"])
    assert assets["p1-s1"].status == ("removed" if ruined else "active")
    if not ruined:
        last = max(t["round"] for t in served["p2-s1"])
        assert any(t["round"] > last for t in served["p1-s1"])
    # the reliable server paid P for each failed task it shared, blind to who failed
    shared = [t for t in failed if "p1-s1" in {a["asset"] for a in t["assets"]}]
    succeeded = [t for t in served["p1-s1"] if t["verdict"]["success"]]
    start = int(setup.stake * UNIT)
    assert stakes["p1-s1"] <= start - len(shared) * rule.penalty + len(succeeded) * rule.reward
    if not shared:
        assert stakes["p1-s1"] >= start


def test_a_market_clears_with_the_distributed_auctioneer(tmp_path):
    # Seed 003's auctions without a trusted auctioneer, as the round loop's mechanism: the
    # devnet's servers then ask per unit only and requests want one replica.
    setup = DevnetSetup(providers=2, servers_per_provider=1, oracles=3, requesters=2,
                        rounds=2, round_seconds=0.0, mechanism="distributed-auction",
                        failure_prone=0.0, steady_failure_rate=0.0, sample_rate=0.0,
                        seed=4)  # fmt: skip
    assert setup.unit_costs_only and setup.max_replicas == 1
    with LocalMarket(setup, tmp_path) as market:
        summary = market.wait_done(300)
        tasks = market.client().tasks(limit=100)["tasks"]
        assert market.client().market_info()["loop"]["mechanism"] == "distributed-auction"
        with Ledger(market.ledger_url) as ledger:
            ledger.verify()
    assert summary["tasks"]["settled"] == len(tasks) > 0 and summary["tasks"]["open"] == 0
    assert all(len(t["assets"]) == 1 and t["verdict"]["paid"] for t in tasks)


def test_a_market_whose_rounds_keep_failing_stops_with_the_reason(tmp_path, monkeypatch):
    from mercat.errors import DevnetError
    from mercat.node import genesis as genesis_module

    # Servers with a fixed cost, which seed 003's auctions cannot clear: every round fails.
    monkeypatch.setattr(genesis_module, "UNIT_COST_MECHANISMS", ())
    setup = DevnetSetup(providers=1, servers_per_provider=1, oracles=1, requesters=1,
                        rounds=2, round_seconds=0.0, mechanism="double-auction",
                        model_asset=False, sample_rate=0.0)  # fmt: skip
    with LocalMarket(setup, tmp_path) as market, pytest.raises(DevnetError) as stopped:
        market.wait_done(120)
    assert "per-unit costs only" in str(stopped.value)
