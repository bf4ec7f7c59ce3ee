"""A local devnet: a market of separate processes on loopback (`mercat devnet up`), as
Akash's and Golem's local networks let protocol builders try a design before it meets the
world.

`Devnet` creates a ledger (`mercat.node.genesis`), then starts, each as its own OS process
(`python -m mercat.cli ...`):

1. the node (`mercat serve --operator-key -`), with its round loop, until round `rounds`;
2. the oracles (`mercat oracle`), some of them lying or silent if the setup says so;
3. the provider agents (`mercat agent`), failure-prone ones among them;
4. the requesters (`mercat request load`), who post workloads every round.

Each child gets its key on standard input (oracles also the sampling secret they share),
never through a file; its output goes to a log file in the devnet's work directory; the
devnet waits for each child's `READY` line (and for the node to answer), never for a fixed
time. It then waits until the round loop has run its rounds and settled every task,
collects the node's view, stops the requesters (who withdraw what is still open), the
agents, the oracles and the node (SIGTERM, SIGKILL after a grace period), audits the ledger
and reports (`mercat.node.market_report`).

Stopping: `close` stops every child however the devnet ends, and removes the work directory
(ledger, store, board, logs) unless it was given (`workdir`, `keep`). Children also get
SIGTERM from Linux if the devnet dies (PR_SET_PDEATHSIG). `run_devnet` turns SIGINT and
SIGTERM into a clean stop that still reports the rounds done so far.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mercat.auctioneer.local import Stopped, stopping_on_signals
from mercat.errors import DevnetError, MercatError
from mercat.lifetime import dying_with_parent
from mercat.node import market_report
from mercat.node.client import NodeClient, wait_until_up
from mercat.node.devnet_commands import Command, commands, piped, write_auctioneer, write_models
from mercat.node.genesis import DevnetKeys, DevnetSetup, genesis
from mercat.node.local_market import FAILED_TRIES, free_port

READY_SECONDS = 120.0
# A port picked free (`free_port`) can be taken by another program before the child binds
# it; the child then exits saying so ("[Errno 98] ... address already in use" from the
# node, "Address already in use" from ZeroMQ), and is started again on new ports.
PORT_TRIES = 3
STOP_GRACE_SECONDS = 10.0


@dataclass
class Child:
    name: str
    role: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    result: dict[str, Any] = field(default_factory=dict)

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") if self.stdout.exists() else ""

    def log_tail(self, chars: int = 1500) -> str:
        text = self.stderr.read_text(errors="replace") if self.stderr.exists() else ""
        return text[-chars:]


class Devnet:
    """See the module docstring. Use as a context manager."""

    def __init__(
        self,
        setup: DevnetSetup,
        workdir: str | Path | None = None,
        *,
        keep: bool = False,
        port: int = 0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.setup = setup
        self.keep = keep or workdir is not None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="mercat-devnet-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keys = DevnetKeys.generate(setup)
        self.port_picked = not port  # picked here: another may be picked if it is taken
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ledger_url = f"sqlite:///{self.workdir / 'ledger.db'}"
        self.children: list[Child] = []
        self.progress = progress or (lambda text: None)
        self.started = time.perf_counter()

    # --- starting ---------------------------------------------------------------------------

    def __enter__(self) -> Devnet:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, name: str, role: str, args: list[str], stdin: list[str]) -> Child:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        stdout, stderr = logs / f"{name}.out", logs / f"{name}.log"
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "mercat.cli", *args],
                stdin=subprocess.PIPE, stdout=out, stderr=err,
                preexec_fn=dying_with_parent(signal.SIGTERM),
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        assert process.stdin is not None
        try:  # secrets through a pipe, never a file
            process.stdin.write("".join(line + "\n" for line in stdin).encode())
            process.stdin.close()
        except BrokenPipeError:  # it died at once: waiting for it says why
            pass
        child = Child(name, role, process, stdout, stderr)
        self.children.append(child)
        return child

    def start(self) -> None:
        setup, keys = self.setup, self.keys
        self.progress(f"genesis: a ledger with {setup.providers} providers, {setup.oracles} "
                      f"oracles, {setup.requesters} requesters")  # fmt: skip
        genesis(self.ledger_url, setup, keys).close()
        write_models(setup, self.workdir)
        (self.workdir / "work").mkdir(exist_ok=True)
        # The auctioneer's processes first: the node reads their peers file when it starts,
        # so a process whose port was taken meanwhile can still be moved to another.
        auctioneers = 0
        if setup.auctioneer_processes:
            auctioneers = self._start_auctioneer()
        listed = self._start_node()
        waiting = [self._spawn(c.name, c.role, c.args, c.stdin)
                   for c in listed if c.role in ("oracle", "agent")]  # fmt: skip
        self._wait_ready(waiting)
        self.progress(f"{len(waiting)} agents and oracles ready"
                      if not setup.auctioneer_processes else
                      f"{len(waiting) + auctioneers} agents, oracles and auctioneer processes "
                      "ready")  # fmt: skip
        waiting = [self._spawn(c.name, c.role, c.args, c.stdin)
                   for c in listed if c.role == "requester"]  # fmt: skip
        self._wait_ready(waiting)
        self.progress(f"{len(waiting)} requesters ready: the rounds begin")

    def _listed(self) -> list[Command]:
        # the commands `mercat devnet init` writes down, with every secret on stdin instead
        return commands(self.setup, self.port, str(self.workdir), piped(self.keys))

    def _start_auctioneer(self) -> int:
        """Write the auctioneer's peers file and start its processes, on new ports while
        one finds its port taken (PORT_TRIES times); the number of processes ready."""
        for attempt in range(PORT_TRIES):
            write_auctioneer(self.setup, self.keys, self.workdir)
            started = [self._spawn(c.name, c.role, c.args, c.stdin)
                       for c in self._listed() if c.role == "auctioneer"]  # fmt: skip
            try:
                self._wait_ready(started)
                return len(started)
            except DevnetError:
                taken = any(_port_taken(c) for c in started)
                if not taken or attempt == PORT_TRIES - 1:
                    raise
                self.progress("an auctioneer process found its port taken: new ports")
                self._forget(started)
        raise AssertionError("unreachable")

    def _start_node(self) -> list[Command]:
        """Start the node on `self.port` (a new one while a port it was given by
        `free_port` is taken); the participants' commands for that port."""
        picked = self.port_picked
        for attempt in range(PORT_TRIES):
            listed = self._listed()
            node = self._spawn("node", "node", listed[0].args, listed[0].stdin)
            self.progress(f"node: {self.url} (pid {node.process.pid})")
            try:
                wait_until_up(self.url, READY_SECONDS, node.process)
                return listed
            except MercatError as exc:
                node.process.wait(timeout=STOP_GRACE_SECONDS)
                if not (picked and _port_taken(node)) or attempt == PORT_TRIES - 1:
                    raise DevnetError(
                        f"the node did not start: {exc}; its log:\n{node.log_tail()}"
                    ) from None
                self._forget([node])
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def _forget(self, children: list[Child]) -> None:
        """Stop and drop children that failed to start (they are started again)."""
        for child in children:
            if child.process.poll() is None:
                child.process.kill()
            child.process.wait()
            self.children.remove(child)

    def _wait_ready(self, children: list[Child], timeout: float = READY_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(children)
        while waiting:
            for child in list(waiting):
                if "READY" in child.output():
                    waiting.remove(child)
                elif child.process.poll() is not None:
                    raise DevnetError(
                        f"{child.name} exited (code {child.process.returncode}) before it was "
                        f"ready; its log:\n{child.log_tail()}"
                    )
            if waiting and time.monotonic() > deadline:
                raise DevnetError(f"{[c.name for c in waiting]} not ready after {timeout:g} s")
            time.sleep(0.1)

    # --- running ----------------------------------------------------------------------------

    def wait_done(self, timeout: float, on_round: Callable[[dict[str, Any]], None] | None = None
                  ) -> None:  # fmt: skip
        """Block until the round loop ran its rounds and settled every task (DevnetError on
        a timeout, a failed loop, or a child that exited)."""
        client = NodeClient(self.url)
        deadline = time.monotonic() + timeout
        reported = 0
        while True:
            for child in self.children:
                if child.process.poll() is not None:
                    raise DevnetError(f"{child.name} exited (code {child.process.returncode}); "
                                      f"its log:\n{child.log_tail()}")  # fmt: skip
            summary = client.summary()
            loop = summary.get("loop") or {}
            if on_round is not None:
                for record in reversed(client.rounds(limit=20)):
                    if record["round"] > reported and record["phase"] in ("closed", "empty"):
                        reported = record["round"]
                        on_round(record)
            if loop.get("state") == "done":
                return
            if loop.get("state") == "failed" or loop.get("failures", 0) >= FAILED_TRIES:
                raise DevnetError(f"the round loop failed: {loop.get('error')}")
            if time.monotonic() > deadline:
                raise DevnetError(f"the devnet did not finish within {timeout:g} s ({loop})")
            time.sleep(0.25)

    def collect(self) -> dict[str, Any]:
        return market_report.collect(NodeClient(self.url), self.setup)

    def stop_children(self, roles: tuple[str, ...]) -> None:
        """SIGTERM to every child of these roles at once; SIGKILL to those still running
        after the grace period; read what each printed."""
        chosen = [c for c in self.children if c.role in roles and c.process.poll() is None]
        for child in chosen:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in chosen:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(5)
        for child in chosen:
            child.result = _last_json(child.output())

    def participants(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {"agents": [], "oracles": [], "requesters": []}
        for child in self.children:
            if child.role in ("agent", "oracle", "requester"):
                out[child.role + "s"].append({"name": child.name, **child.result})
        return out

    def close(self) -> None:
        """Stop every child (requesters first, the node last), remove the work directory
        unless it is kept."""
        for roles in (("requester",), ("agent", "oracle"), ("node",), ("auctioneer",)):
            self.stop_children(roles)
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _port_taken(child: Child) -> bool:
    """Whether `child` exited because the port it was to listen on was in use."""
    return (
        child.process.poll() is not None
        and "address already in use" in (child.log_tail(4000) + child.output()[-4000:]).lower()
    )


def _last_json(text: str) -> dict[str, Any]:
    """The JSON object a child printed last (after its READY line), or {}."""
    import json

    start = text.find("{")
    if start < 0:
        return {}
    try:
        value = json.loads(text[start:])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def run_devnet(
    setup: DevnetSetup,
    *,
    timeout: float = 600.0,
    workdir: str | Path | None = None,
    keep: bool = False,
    progress: Callable[[str], None] | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Start a devnet, run its rounds, stop it, audit and report (module docstring). SIGINT
    or SIGTERM stops it cleanly; the report then says so (`stopped_by`) and covers the
    rounds done."""
    started = time.perf_counter()
    stopped_by = None
    seen: dict[str, Any] | None = None
    devnet = Devnet(setup, workdir, keep=True, progress=progress)
    try:
        with stopping_on_signals() as hold:
            try:
                try:
                    devnet.start()
                    devnet.wait_done(timeout, on_round)
                    seen = devnet.collect()
                finally:
                    hold()  # a second Ctrl-C must not cut the cleanup short
                    if seen is None:
                        with contextlib.suppress(MercatError):
                            seen = devnet.collect()
                    for roles in (("requester",), ("agent", "oracle"), ("node",),
                                  ("auctioneer",)):  # fmt: skip
                        devnet.stop_children(roles)
            except Stopped as stopped:
                stopped_by = signal.Signals(stopped.signum).name
        if seen is None:
            raise DevnetError("the devnet stopped before its node answered")
        report = market_report.build(seen, devnet.ledger_url, setup, devnet.participants(),
                                     time.perf_counter() - started)  # fmt: skip
    finally:
        if not keep and workdir is None:
            shutil.rmtree(devnet.workdir, ignore_errors=True)
    report["stopped_by"] = stopped_by
    report["workdir"] = str(devnet.workdir) if (keep or workdir is not None) else None
    return report
