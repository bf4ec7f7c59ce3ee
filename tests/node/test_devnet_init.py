"""`mercat devnet init DIR`: a ledger, key files and the commands to start each participant
by hand. The test does what its README says: starts the node, an agent and an oracle as
separate processes by those commands, submits a sealed request by the README's command,
and the task settles (paid, its output decrypted by the requester)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mercat.ledger import Ledger
from mercat.node.client import wait_until_up
from mercat.node.local_market import free_port
from mercat.workloads import archive

MERCAT = [sys.executable, "-m", "mercat.cli"]


def _init(directory: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MERCAT, "devnet", "init", str(directory), "--providers", "1", "--servers", "1",
         "--oracles", "1", "--requesters", "1", "--rounds", "1", "--round-seconds", "0",
         "--failure-prone", "0", "--sample-rate", "0", "--port", str(port), *extra],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _readme_commands(directory: Path) -> list[list[str]]:
    """The `mercat ...` lines of the README, in order, as argv."""
    text = (directory / "README.md").read_text()
    return [MERCAT + shlex.split(line)[1:] for line in text.splitlines()
            if line.startswith("mercat ")]  # fmt: skip


def _tree(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}  # fmt: skip


def test_init_writes_keys_0600_and_refuses_to_overwrite(tmp_path):
    directory = tmp_path / "net"
    done = _init(directory, free_port())
    assert done.returncode == 0, done.stderr
    keys = sorted(p.name for p in (directory / "keys").iterdir())
    assert keys == ["agent1.key", "operator.key", "oracle1.key", "requester1.key",
                    "sample.secret"]  # fmt: skip
    for path in (directory / "keys").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "keys").stat().st_mode) == 0o700
    with Ledger(f"sqlite:///{directory / 'ledger.db'}") as ledger:
        roles = {role for _, role, _ in ledger.accounts()}
        assert "oracle" in roles and ledger.verify() is not False
    before = _tree(directory)
    again = _init(directory, free_port())
    assert again.returncode == 2
    assert again.stderr.startswith("error: ") and again.stderr.count("\n") == 1
    assert "refusing to overwrite" in again.stderr
    assert _tree(directory) == before  # nothing changed
    bad = _init(tmp_path / "other", free_port(), "--mechanism", "no-such-mechanism")
    assert bad.returncode == 2 and not (tmp_path / "other").exists()


@pytest.mark.slow
def test_participants_started_by_hand_settle_a_sealed_task(tmp_path):
    directory = tmp_path / "net"
    port = free_port()
    assert _init(directory, port).returncode == 0
    lines = _readme_commands(directory)
    node_cmd, oracle_cmd, agent_cmd = lines[0], lines[1], lines[2]
    dataset_cmd, submit_cmd = lines[-2], lines[-1]
    assert "--encrypt" in submit_cmd
    processes: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, cwd=directory, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        processes.append(process)
        return process

    try:
        node = start(node_cmd)
        wait_until_up(f"http://127.0.0.1:{port}", 120, node)
        for process in (start(oracle_cmd), start(agent_cmd)):
            assert process.stdout is not None
            assert b"READY" in process.stdout.readline()
        subprocess.run(dataset_cmd, cwd=directory, check=True, timeout=120,
                       capture_output=True)  # fmt: skip
        submitted = subprocess.run([*submit_cmd, "--json", "--timeout", "240"], cwd=directory,
                                   capture_output=True, text=True, timeout=300)  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        assert '"paid": true' in submitted.stdout
        kind, _ = archive.load((directory / "model.npz").read_bytes())  # decrypted by its owner
        assert kind == "model"
        # fetched later: only with the requester's key (its output is sealed to it)
        request = json.loads(submitted.stdout)["request"]
        fetch = [*MERCAT, "request", "fetch", request, "--node", f"http://127.0.0.1:{port}",
                 "--out", "again.npz"]  # fmt: skip
        refused = subprocess.run(fetch, cwd=directory, capture_output=True, text=True,
                                 timeout=120)  # fmt: skip
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1
        assert "sealed to its requester" in refused.stderr
        assert not (directory / "again.npz").exists()
        fetched = subprocess.run([*fetch, "--key", "keys/requester1.key"], cwd=directory,
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        assert (directory / "again.npz").read_bytes() == (directory / "model.npz").read_bytes()
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
    with Ledger(f"sqlite:///{directory / 'ledger.db'}") as ledger:
        ledger.verify()
        assert [t.status for t in ledger.tasks()] == ["settled"]
    assert os.listdir(directory / "store")  # the node kept its store where the README says


def test_init_writes_the_auctioneer_processes_and_serve_refuses_a_bad_peers_file(tmp_path):
    directory = tmp_path / "net"
    done = _init(directory, free_port(), "--mechanism", "distributed-auction",
                 "--auctioneer-processes", "3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = _readme_commands(directory)
    providers = [argv for argv in lines if "provider" in argv]
    assert len(providers) == 3 and (directory / "auctioneer" / "peers.toml").exists()
    assert stat.S_IMODE((directory / "keys" / "auctioneer-client.key").stat().st_mode) == 0o600
    node = lines[0]
    assert "--auctioneer-peers" in node and "--auctioneer-key" in node

    def serve(*changes: tuple[str, str | None]) -> subprocess.CompletedProcess[str]:
        argv = list(node)
        for option, value in changes:
            at = argv.index(option)
            argv[at : at + 2] = [] if value is None else [option, value]
        return subprocess.run(argv, cwd=directory, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)  # fmt: skip

    for changes, message in [
        ((("--auctioneer-peers", "nope.toml"),), "does not exist"),
        ((("--auctioneer-key", "keys/agent1.key"),), "sealing client"),  # not the node's key
        ((("--auctioneer-key", None),), "together"),
    ]:
        refused = serve(*changes)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert message in refused.stderr
