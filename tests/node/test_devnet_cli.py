"""`mercat devnet up` as a user runs it: a market of processes that settles every task and
audits clean; stopped by SIGTERM, it stops every child and leaves nothing in the temporary
directory. The participant commands refuse bad input with one line and exit code 2."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mercat.cli import app
from mercat.errors import InvalidParameterError
from mercat.node.genesis import DevnetSetup
from tests.processes import alive

MERCAT = [sys.executable, "-m", "mercat.cli"]
runner = CliRunner()


def _devnet_dirs(tmp: Path) -> set[str]:
    """The devnets' work directories under `tmp`: the tests run each devnet with its own
    TMPDIR, so that another devnet on the machine (a parallel test, a user's) is not seen."""
    return {p.name for p in tmp.glob("mercat-devnet-*")}


@pytest.mark.slow
def test_devnet_up_settles_every_task_and_audits_clean(tmp_path):
    before = _devnet_dirs(tmp_path)
    done = subprocess.run(
        [*MERCAT, "devnet", "up", "--providers", "2", "--servers", "1", "--oracles", "3",
         "--requesters", "2", "--rounds", "2", "--round-seconds", "0", "--sealed-share", "1",
         "--json"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    tasks = report["tasks"]
    assert tasks["opened"] > 0 and tasks["open"] == 0
    assert tasks["settled"] == tasks["claimed_by_every_server"] == tasks["attested_by_a_quorum"]
    assert report["audit"]["ok"] and report["audit"]["problems"] == []
    assert [r["phase"] for r in report["rounds"]] == ["closed", "closed"]
    # every task ran in an agent process (which agents got tasks is the clearing's choice)
    assert len(report["agents"]) == 2
    assert sum(a["replicas"] for a in report["agents"]) >= tasks["opened"]
    # every training and preprocessing request was sealed (how many a requester posts
    # depends on how fast the rounds go); every paid output, sealed ones decrypted, was
    # checked by its requester
    assert sum(r["sealed"] for r in report["requesters"]) >= 1
    assert all(r["outputs_verified"] == r["paid"] for r in report["requesters"])
    assert all(r["sealed_paid"] <= r["sealed"] for r in report["requesters"])
    # Each task settles once a quorum (2 of 3) agrees: the third oracle's report may come
    # after that, or never if it was still checking the task when it settled.
    reported = [o["reported"] for o in report["oracles"]]
    assert all(n <= tasks["settled"] for n in reported), reported
    assert sum(reported) >= report["setup"]["quorum"] * tasks["settled"], reported
    verified = sum(r["outputs_verified"] for r in report["requesters"])
    assert verified == tasks["paid"]  # every paid output fetched and checked by its requester
    assert report["stopped_by"] is None and report["workdir"] is None
    assert _devnet_dirs(tmp_path) == before  # no ledger, store, board, log or key left behind


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [[], ["--mechanism", "distributed-auction", "--auctioneer-processes", "3"]],
    ids=["mechanism-in-node", "auctioneer-processes"],
)
def test_sigterm_stops_every_child_and_leaves_nothing_behind(extra, tmp_path):
    before = _devnet_dirs(tmp_path)
    process = subprocess.Popen(
        [*MERCAT, "devnet", "up", "--providers", "1", "--servers", "1", "--oracles", "1",
         "--requesters", "1", "--rounds", "1000", "--round-seconds", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200", "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    lines = []
    try:
        deadline = time.monotonic() + 300
        while not any(line.startswith("round 1:") for line in lines):
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "".join(lines)
        pids = [int(m) for m in re.findall(r"\(pid (\d+)\)", "".join(lines))]
        assert pids  # the node's
        # the devnet's work directory: the one its node was started in (other devnets may
        # run on this machine meanwhile)
        node_cmdline = Path(f"/proc/{pids[0]}/cmdline").read_bytes().decode(errors="replace")
        [workdir] = [d for d in _devnet_dirs(tmp_path) - before if d in node_cmdline]
        # the node, the oracle, the agent (and the auctioneer's providers) name the work
        # directory on their command lines; the requester's needs none
        children = _commands_mentioning(workdir)
        assert len(children) >= 3 + (3 if extra else 0), children
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "stopped by SIGTERM" in rest
    assert not [pid for pid in pids + children if alive(pid)]
    assert _devnet_dirs(tmp_path) == before


@pytest.mark.parametrize(
    "args",
    [
        ["devnet", "up", "--mechanism", "nope"],
        ["devnet", "up", "--collective", "nope"],
        ["devnet", "up", "--oracles", "3", "--liars", "1", "--silent", "1"],
        ["devnet", "up", "--auctioneer-processes", "3"],  # needs distributed-auction
        ["devnet", "up", "--mechanism", "distributed-auction", "--auctioneer-processes", "2"],
        ["agent", "--node", "ftp://x", "--key", "-", "--server", "s1"],
        ["agent", "--node", "http://127.0.0.1:9", "--key", "/no/such/key", "--server", "s1"],
        ["oracle", "--node", "http://127.0.0.1:9", "--key", "-", "--behaviour", "sneaky"],
        [
            "request",
            "submit",
            "--node",
            "http://127.0.0.1:9",
            "--key",
            "/no/such/key",
            "--workload",
            "train-logreg",
            "--input",
            "x",
            "--max-price",
            "1",
        ],
        ["request", "dataset", "--out", "/no/such/dir/data.npz"],
    ],
)
def test_bad_input_gets_one_line_and_exit_code_2(args):
    result = runner.invoke(app, args, input="not a key\n")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("oracles", [{"liars": -1}, {"silent": -1}, {"liars": 0.5}])
def test_a_setup_with_oracles_that_cannot_be_counted_is_refused(oracles):
    # (-1 liars would give 3 oracles 4 behaviours: a traceback when the devnet starts them)
    with pytest.raises(InvalidParameterError, match=r"liars|silent"):
        DevnetSetup(**oracles)


def test_a_key_on_stdin_must_be_a_key():
    result = runner.invoke(app, ["agent", "--node", "http://127.0.0.1:9", "--key", "-",
                                 "--server", "s1"], input="nope\n")  # fmt: skip
    assert result.exit_code == 2
    assert "64 hex digits" in result.output


def _commands_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_devnet_rounds_are_cleared_by_auctioneer_processes(tmp_path):
    """Every round the node cleared went to the three provider processes, and the node
    cleared it with the outcome seed 003 defines: the one all three output, or nothing (⊥).

    Whether a round trades depends on which requests have reached it when it runs: the
    double auction's trade reduction gives up the marginal pair, and with few bidders that
    can be every trade. So this checks the clearing against what the processes agreed on,
    round by round, never that some task was paid."""
    from mercat.auctioneer.outcome import Outcome
    from mercat.auctioneer.result_log import ResultLog
    from mercat.node.board import TaskBoard

    workdir = tmp_path / "net"
    done = subprocess.run(
        [*MERCAT, "devnet", "up", "--providers", "2", "--servers", "1", "--oracles", "1",
         "--requesters", "4", "--rounds", "4", "--round-seconds", "0", "--failure-prone", "0",
         "--sample-rate", "0", "--seed", "4", "--mechanism", "distributed-auction",
         "--auctioneer-processes", "3", "--workdir", str(workdir), "--json"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["tasks"]["open"] == 0 and report["audit"]["ok"]
    assert _commands_mentioning(str(workdir / "auctioneer")) == []  # stopped with the rest

    # What each provider process output, round by round (⊥ included).
    logs = {}
    for i in (1, 2, 3):
        with ResultLog(f"sqlite:///{workdir}/auctioneer/auctioneer{i}.results.db") as log:
            logs[i] = {r.round: r for r in log.rounds(limit=10_000)}
    assert set(logs[1]) == set(logs[2]) == set(logs[3])  # each ran every auction round
    # The node's clearings, in order: one per round that had requests and servers, each
    # one auction round of the processes (whose ids increase with the node's rounds).
    board = TaskBoard(workdir / "board.db")
    events = board.events(limit=100_000)
    cleared = [e for e in events if e["kind"] == "cleared"]
    assert cleared and len(cleared) == len(logs[1])
    assert [e["round"] for e in cleared] == sorted(e["round"] for e in cleared)
    for event, auction_round in zip(cleared, sorted(logs[1]), strict=True):
        records = [logs[i][auction_round] for i in (1, 2, 3)]
        assert event["mechanism"] == "distributed-auction"
        if all(r.ok for r in records) and len({r.outcome for r in records}) == 1:
            outcome = Outcome.decode(records[0].outcome)
            traded = {outcome.bidders[b] for b in outcome.buyer.tolist()}
        else:  # ⊥: the node clears nothing that round
            traded = set()
        assert set(event["prices"]) == traded and event["served"] == len(traded), event
        # the round's tasks serve only requests the agreed outcome allocated
        opened = {e["request"] for e in events
                  if e["kind"] == "task_opened" and e["round"] == event["round"]}  # fmt: skip
        assert opened <= traded


@pytest.mark.slow
def test_a_devnet_moves_a_child_whose_port_was_taken_to_another(tmp_path, monkeypatch):
    """`free_port` picks a port that was free a moment ago: another program can take it
    before the child binds it. The node and the auctioneer's processes are then started
    again on new ports instead of the devnet failing."""
    import socket

    from mercat.node import devnet, devnet_commands
    from mercat.node.genesis import DevnetSetup

    held = [socket.socket() for _ in range(2)]
    try:
        for s in held:
            s.bind(("127.0.0.1", 0))
            s.listen()
        taken = [s.getsockname()[1] for s in held]
        real = devnet_commands.free_port
        # the node's first port, and the first auctioneer process's, are taken
        node_ports = iter([taken[0]])
        auctioneer_ports = iter([taken[1]])
        monkeypatch.setattr(devnet, "free_port", lambda: next(node_ports, None) or real())
        monkeypatch.setattr(
            devnet_commands, "free_port", lambda: next(auctioneer_ports, None) or real()
        )
        said: list[str] = []
        setup = DevnetSetup(providers=1, servers_per_provider=1, oracles=1, requesters=1,
                            rounds=1, mechanism="distributed-auction",
                            auctioneer_processes=3)  # fmt: skip
        with devnet.Devnet(setup, tmp_path / "net", progress=said.append) as net:
            assert net.port != taken[0]
            assert all("READY" in c.output() for c in net.children if c.role == "auctioneer")
            peers = (tmp_path / "net" / devnet_commands.AUCTIONEER_PEERS).read_text()
            assert str(taken[1]) not in peers
        text = "\n".join(said)
        assert "port taken" in text and text.count("node: ") == 2, text
    finally:
        for s in held:
            s.close()
