"""One scenario, three EVMs: titanoboa in process, web3.py over eth-tester (py-evm) in
process, and web3.py over a real ganache JSON-RPC node that the suite installs from npm
and starts on 127.0.0.1 (see conftest.py). On each, `ChainBook` replays the same random
scenario (offers, requests, task batches, settlements, the stake life cycle, refusals):
all three must end with the same balances and statuses, refuse the same operations and
agree with the Python reference; the two web3 backends must charge the same gas for the
market's operations (same fork, same code; the token's calls carry the chain's own
addresses, whose zero bytes cost less calldata gas, so those differ by a few gas)."""

from __future__ import annotations

import os
import time

import pytest

from mercat.chain.boa_backend import BoaBackend
from mercat.chain.book import ChainBook, nonzero
from mercat.chain.contracts import compile_contract
from mercat.chain.ganache import GanacheNode, node_tools_missing
from mercat.chain.market import integer_rule
from mercat.chain.reference import ReferenceBook
from mercat.chain.scenario import ScenarioConfig, random_scenario, replay
from mercat.chain.web3_backend import Web3Backend
from mercat.errors import ChainUnavailableError
from mercat.incentives.integer_rule import IntegerRule
from tests.chain.conftest import GANACHE_DIR
from tests.processes import alive, ends_with_sigtermed_parent, wait_for_file

RULE = IntegerRule(**integer_rule("coll-sr", 2500, "0.01", 990).__dict__)
CONFIG = ScenarioConfig(
    servers=3, rounds=2, requests_per_round=3, stake=2500, refusals=0.7, failure_rate=0.4
)
OPS = random_scenario(RULE, seed=11, config=CONFIG)


SELECTORS = {f.selector: f.name for f in compile_contract("Market").functions.values()}
COMPARED = {"register_asset", "post_offer", "post_request", "open_tasks", "settle_tasks"}


class GasRecorder:
    """A backend that notes the gas of every accepted transaction (web3 receipts), by the
    market function it called."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.gas: list[tuple[str, int | None]] = []

    def new_account(self) -> str:
        return self.backend.new_account()

    def deploy(self, init_code, sender):
        address, receipt = self.backend.deploy(init_code, sender)
        self.gas.append(("deploy", receipt.gas_used))
        return address, receipt

    def transact(self, to, data, sender):
        receipt = self.backend.transact(to, data, sender)
        self.gas.append((SELECTORS.get(data[:4], "other"), receipt.gas_used))
        return receipt

    def call(self, to, data):
        return self.backend.call(to, data)

    def close(self) -> None:
        self.backend.close()


def _run(backend):
    recorder = GasRecorder(backend)
    book = ChainBook(RULE, backend=recorder, unit=1000, unstake_delay_rounds=2)
    raised = replay(book, OPS)
    book.verify()
    return {
        "books": nonzero(book.books()),
        "statuses": book.statuses(),
        "raised": raised,
        "gas": [(fn, gas) for fn, gas in recorder.gas if fn in COMPARED],
        "all_gas": [gas for _, gas in recorder.gas],
    }


@pytest.fixture(scope="module")
def boa_run():
    return _run(BoaBackend())


@pytest.fixture(scope="module")
def tester_run():
    return _run(Web3Backend.eth_tester())


def test_scenario_exercises_tasks_and_refusals():
    kinds = {type(op).__name__ for op in OPS}
    assert {"PostOffer", "PostRequest", "OpenTasks", "SettleTasks", "Unstake"} <= kinds
    assert any(op.expect for op in OPS)


def test_boa_matches_the_reference(boa_run):
    reference = ReferenceBook(RULE, unit=1000, unstake_delay_rounds=2)
    raised = replay(reference, OPS)
    assert boa_run["books"] == nonzero(reference.books())
    assert boa_run["statuses"] == reference.statuses()
    assert boa_run["raised"] == raised
    assert set(boa_run["all_gas"]) == {None}  # boa has no receipts: no gas figure from it


@pytest.mark.slow
def test_eth_tester_runs_the_same_scenario(boa_run, tester_run):
    for key in ("books", "statuses", "raised"):
        assert tester_run[key] == boa_run[key], key
    assert len(tester_run["all_gas"]) == len(boa_run["all_gas"])
    assert all(21_000 < gas < 25_000_000 for gas in tester_run["all_gas"])
    assert {fn for fn, _ in tester_run["gas"]} == COMPARED


@pytest.mark.slow
def test_ganache_node_runs_the_same_scenario(boa_run, tester_run, ganache):
    backend = Web3Backend.http(ganache.url)
    assert backend.w3.eth.chain_id > 0  # a real node answered over HTTP
    run = _run(backend)
    for key in ("books", "statuses", "raised"):
        assert run[key] == boa_run[key], key
    assert run["gas"] == tester_run["gas"]  # same code, same fork rules: same gas


@pytest.mark.slow
def test_ganache_is_stopped_by_its_pid(tmp_path):
    if node_tools_missing():
        pytest.skip(f"ganache needs node and npm: {node_tools_missing()}")
    node = GanacheNode(GANACHE_DIR, accounts=2, log_path=tmp_path / "ganache.log")
    node.start()
    pid = node.process.pid
    os.kill(pid, 0)  # alive
    node.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ChainUnavailableError):
        Web3Backend.http(node.url, timeout=2)


def _fake_node(tmp_path, monkeypatch):
    """GanacheNode with a Python script standing in for node + ganache: it writes its pid
    and waits to be stopped (it never answers JSON-RPC)."""
    import sys
    import types

    from mercat.chain import ganache

    script = tmp_path / "cli.py"
    script.write_text(
        "import os, sys, time\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(600)\n"
    )
    monkeypatch.setattr(ganache, "install_ganache", lambda directory: script)
    monkeypatch.setattr(ganache, "shutil", types.SimpleNamespace(which=lambda _: sys.executable))
    return GanacheNode(tmp_path, accounts=1, log_path=tmp_path / "node.log")


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, ValueError])
def test_a_node_whose_start_is_interrupted_is_stopped(tmp_path, monkeypatch, interruption):
    node = _fake_node(tmp_path, monkeypatch)

    def answers(self):
        assert wait_for_file(tmp_path / "pid"), "the node did not start"
        while not (tmp_path / "pid").read_text():
            time.sleep(0.01)  # written, not yet flushed
        raise interruption  # Ctrl-C while waiting, or an answer that is not JSON-RPC

    monkeypatch.setattr(GanacheNode, "_answers", answers)
    with pytest.raises(interruption):
        node.start()
    assert node.process is None
    assert not alive(int((tmp_path / "pid").read_text()))


def test_a_node_ends_with_the_process_that_started_it(tmp_path):
    """A run stopped by SIGTERM runs no clean-up; the node is stopped all the same."""
    import subprocess
    import sys

    (tmp_path / "cli.py").write_text(
        "import os, time\n"
        f"open({str(tmp_path / 'pid')!r} + '.tmp', 'w').write(str(os.getpid()))\n"
        f"os.rename({str(tmp_path / 'pid')!r} + '.tmp', {str(tmp_path / 'pid')!r})\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, types\n"
            "from pathlib import Path\n"
            "from mercat.chain import ganache\n"
            f"ganache.install_ganache = lambda directory: Path({str(tmp_path / 'cli.py')!r})\n"
            "ganache.shutil = types.SimpleNamespace(which=lambda _: sys.executable)\n"
            f"ganache.GanacheNode({str(tmp_path)!r}, log_path={str(tmp_path / 'log')!r}).start()\n"
        )],
    )  # fmt: skip
    try:
        assert wait_for_file(tmp_path / "pid", parent), "the node did not start"
        pid = int((tmp_path / "pid").read_text())
        assert alive(pid)
        assert ends_with_sigtermed_parent(parent, pid), "the node outlived its parent"
    finally:
        parent.kill()
        parent.wait()
