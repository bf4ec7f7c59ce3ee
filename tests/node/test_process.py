"""`mercat serve` as a real process on a TCP port: it answers, stores, and refuses a bad
ledger or board URL before it listens."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.processes import alive

MERCAT = [sys.executable, "-m", "mercat.cli"]


def free_port() -> int:
    """A port that was free a moment ago: another program may take it before a child binds
    it, so `serve` starts the node again on another one when that happens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(args: list[str], log: Path, tries: int = 3) -> tuple[subprocess.Popen[bytes], int]:
    """`mercat serve ARGS --port P` answering /health, and P. P is picked free; if it was
    taken before the node bound it (the node exits: "address already in use"), a new one
    is picked, up to `tries` times. The node's output goes to `log` (a pipe nobody reads
    could fill up and stall it)."""
    for attempt in range(tries):
        port = free_port()
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [*MERCAT, "serve", *args, "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while process.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                return process, port
            except OSError:
                if time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    output = log.read_text(errors="replace")
                    raise AssertionError(f"mercat serve did not come up: {output}") from None
                time.sleep(0.2)
        output = log.read_text(errors="replace")
        if "address already in use" not in output.lower() or attempt == tries - 1:
            raise AssertionError(f"mercat serve exited ({process.returncode}): {output}")
    raise AssertionError("unreachable")


@pytest.fixture
def served(tmp_path: Path):
    process, port = serve(["--store", str(tmp_path / "store")], tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=5) as reply:
            assert json.load(reply)["store"] is True
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_node_stores_and_returns_content_over_tcp(served):
    request = urllib.request.Request(f"{served}/storage/content", data=b"x" * 2_000_000)
    with urllib.request.urlopen(request, timeout=10) as reply:
        cid = json.load(reply)["cid"]
    with urllib.request.urlopen(f"{served}/storage/content/{cid}", timeout=10) as reply:
        assert reply.read() == b"x" * 2_000_000


def test_a_bad_ledger_url_fails_before_listening(tmp_path):
    done = subprocess.run(
        [*MERCAT, "serve", "--ledger", f"sqlite:///{tmp_path}/missing.db", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "error:" in done.stderr


def test_the_board_is_taken_by_url_and_a_bad_one_fails_before_listening(tmp_path):
    process, _ = serve(["--board", f"sqlite:///{tmp_path}/board.db"], tmp_path / "log")
    process.terminate()
    process.wait(timeout=10)
    assert (tmp_path / "board.db").exists()
    done = subprocess.run(
        [*MERCAT, "serve", "--board", "mysql://node@db/board", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: not a usable task board: mysql://node@db/board")
    assert len(done.stderr.strip().splitlines()) == 1


def test_concurrent_clients_of_one_node_all_land_in_the_ledger(tmp_path):
    import threading

    from mercat.ledger import IntegerRule, Keypair, Ledger, LedgerConfig, OpenAccount, Signer

    url = f"sqlite:///{tmp_path}/ledger.db"
    rule = IntegerRule(penalty=99, reward=1, removal=True)
    ledger = Ledger.init(url, LedgerConfig(operator=Keypair.generate().public, rule=rule, unit=1))
    ledger_id = ledger.id
    ledger.close()
    # The 24 clients all connect from 127.0.0.1: one address, whose share of the request
    # slots (client_in_flight, 16) would refuse some of them with 503.
    limits = ["--limit", "account_burst=30", "--limit", "client_in_flight=32"]
    process, port = serve(["--ledger", url, *limits], tmp_path / "log")
    base = f"http://127.0.0.1:{port}"
    try:
        failures: list[str] = []

        def open_account(key: Keypair) -> None:
            try:
                body = Signer(key, ledger_id).sign(OpenAccount()).to_json().encode()
                urllib.request.urlopen(
                    urllib.request.Request(f"{base}/ledger/messages", data=body), timeout=20
                ).close()
                urllib.request.urlopen(f"{base}/ledger/accounts", timeout=20).close()
            except OSError as exc:
                failures.append(repr(exc))

        threads = [
            threading.Thread(target=open_account, args=(Keypair.generate(),)) for _ in range(24)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        with urllib.request.urlopen(f"{base}/ledger/accounts", timeout=10) as reply:
            assert len(json.load(reply)) == 25  # the operator and 24 clients
        with urllib.request.urlopen(f"{base}/ledger/verify", timeout=10) as reply:
            assert json.load(reply)["ok"] is True
    finally:
        process.terminate()
        process.wait(timeout=10)


def _descendants(pid: int) -> set[int]:
    """Processes under `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_sigterm_stops_the_node_and_its_workers_with_a_request_in_flight(tmp_path):
    """A client that asks for a million solver threads is refused; one that sends half a
    body and stalls does not keep the node from stopping; no worker outlives it."""
    import signal

    from mercat.market.generators import running_example
    from mercat.market.market_io import dumps_market

    process, port = serve([], tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        market = json.loads(dumps_market(running_example()))
        for threads, status in ((1_000_000, 422), (1, 200)):
            body = json.dumps({"market": market, "options": {"threads": threads}}).encode()
            request = urllib.request.Request(f"{base}/clearing/optimal", data=body)
            try:
                with urllib.request.urlopen(request, timeout=60) as reply:
                    assert reply.status == status
            except urllib.error.HTTPError as refused:
                assert refused.code == status
                assert "threads" in json.load(refused)["detail"]
        workers = _descendants(process.pid)
        assert workers  # the fork server and the worker that solved
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(b"POST /privacy/check HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        stalled.close()
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.slow
def test_serve_moves_to_another_port_when_its_port_is_taken(tmp_path, monkeypatch):
    import tests.node.test_process as helpers

    with socket.socket() as squatter:  # takes the port between the pick and the bind
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports, real = iter([taken]), helpers.free_port
        monkeypatch.setattr(helpers, "free_port", lambda: next(ports, None) or real())
        process, port = helpers.serve([], tmp_path / "serve.log")
        try:
            assert port != taken
        finally:
            process.terminate()
            process.wait(timeout=10)
