"""A whole live market in one process, over real HTTP on loopback: a node (uvicorn in a
thread, with its round loop), and provider agents, oracles and requesters as threads of
this process, each with its own key and its own client. The multi-process devnet
(`mercat.node.devnet`) runs the same participants as separate processes; this one starts in
a second and is what the tests, the browser test and the benchmark use.

Workloads still run for real: every replica and every re-execution is a sandboxed child
process (`mercat.workloads.sandbox`).
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mercat.errors import DevnetError
from mercat.node.agent import MAX_WORKERS, ProviderAgent
from mercat.node.client import NodeClient, wait_until_up
from mercat.node.genesis import DevnetKeys, DevnetSetup, genesis, provider_plan
from mercat.node.limits import NodeLimits
from mercat.node.oracle_service import OracleService
from mercat.node.requester import Requester, RequesterLoad
from mercat.node.round_loop import LoopSettings
from mercat.node.sla import Timing
from mercat.workloads import sandbox

FAILED_TRIES = 3
"""A devnet stops when its round loop fails the same round this many times in a row: a node
retries a failed round for ever (the cause may pass), but a devnet's rounds fail again for
the same reason (a mechanism that cannot clear its market, say), and waiting out its
timeout would only hide why."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


IN_FLIGHT_PER_PARTICIPANT = MAX_WORKERS + 1
"""The most requests one participant has open at once: a provider agent's replica workers
each hold one (fetching inputs, storing the output, claiming) while its loop polls for
tasks; an oracle or a requester holds one at a time."""


def devnet_limits(participants: int) -> NodeLimits:
    """A node's limits for a devnet: every participant shares 127.0.0.1, so the per-address
    rates and the per-address cap on open requests are raised to what all of them need
    together; everything else keeps its bound."""
    in_flight = IN_FLIGHT_PER_PARTICIPANT * participants
    return replace(
        NodeLimits(),
        client_rate=max(200.0, 40.0 * participants),
        client_burst=max(1000, 100 * participants),
        account_burst=max(3, 2 * participants),
        node_account_burst=max(30, 2 * participants),
        max_in_flight=max(64, in_flight),
        # At most max_in_flight: the address is every participant, not one of many.
        client_in_flight=max(16, in_flight),
        max_connections=max(256, 8 * participants),
    )


def loop_settings(setup: DevnetSetup) -> LoopSettings:
    return LoopSettings(
        mechanism=setup.mechanism, round_seconds=setup.round_seconds, until_round=setup.rounds,
        timing=Timing(grace_ms=setup.grace_ms), attest_seconds=setup.attest_seconds,
        seed=setup.seed,
    )  # fmt: skip


@dataclass
class _Running:
    name: str
    thread: threading.Thread
    result: dict[str, Any] = field(default_factory=dict)


class LocalMarket:
    """See the module docstring. Use as a context manager; `run()` waits for the rounds."""

    def __init__(self, setup: DevnetSetup, workdir: str | Path | None = None) -> None:
        self.setup = setup
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mercat-market-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.keys = DevnetKeys.generate(setup)
        self.ledger_url = f"sqlite:///{self.workdir / 'ledger.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stop_event = threading.Event()
        self.threads: list[_Running] = []
        self.agents: list[ProviderAgent] = []
        self.oracles: list[OracleService] = []
        self.loads: list[RequesterLoad] = []
        self._server: Any = None
        self._server_thread: threading.Thread | None = None

    def __enter__(self) -> LocalMarket:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, *, participants: bool = True) -> None:
        genesis(self.ledger_url, self.setup, self.keys).close()
        self.start_node()
        if participants:
            self.start_participants()

    def start_node(self) -> None:
        import uvicorn

        from mercat.node.app import create_app

        setup = self.setup
        app = create_app(
            self.ledger_url, self.workdir / "store", board=self.workdir / "board.db",
            operator=self.keys.operator, market=loop_settings(setup),
            limits=devnet_limits(setup.providers + setup.oracles + setup.requesters),
        )  # fmt: skip
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=5)  # fmt: skip
        self._server = uvicorn.Server(config)
        self._server_thread = threading.Thread(target=self._server.run, name="node", daemon=True)
        self._server_thread.start()
        wait_until_up(self.url, 60)
        self.app = app

    def stop_node(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._server_thread is not None:
            self._server_thread.join(30)
        self._server = self._server_thread = None

    def client(self) -> NodeClient:
        return NodeClient(self.url)

    def _spawn(self, name: str, target: Any) -> None:
        running = _Running(name, threading.Thread(name=name, daemon=True, target=lambda: None))

        def body() -> None:
            try:
                running.result["stats"] = target(self.stop_event)
            except Exception as exc:  # the test or the report says which participant died
                running.result["error"] = f"{type(exc).__name__}: {exc}"

        running.thread = threading.Thread(target=body, name=name, daemon=True)
        running.thread.start()
        self.threads.append(running)

    def start_participants(self) -> None:
        setup, keys = self.setup, self.keys
        limits = sandbox.Limits(seconds=60)
        secret = keys.sample_secret
        for i, (key, behaviour) in enumerate(zip(keys.oracles, setup.behaviours(), strict=True)):
            oracle = OracleService(self.client(), key, behaviour=behaviour,  # type: ignore[arg-type]
                                   sample_rate=setup.sample_rate, secret=secret, limits=limits,
                                   workdir=str(self.workdir))  # fmt: skip
            self.oracles.append(oracle)
            self._spawn(f"oracle{i + 1}", oracle.run)
        for i, key in enumerate(keys.providers):
            servers, content = provider_plan(setup, i)
            agent = ProviderAgent(self.client(), key, servers, content, seed=setup.seed,
                                  limits=limits, workdir=str(self.workdir))  # fmt: skip
            agent.register()
            self.agents.append(agent)
            self._spawn(f"agent{i + 1}", agent.run)
        for i, key in enumerate(keys.requesters):
            load = RequesterLoad(Requester(self.client(), key), per_round=setup.per_round,
                                 until_round=setup.rounds, seed=setup.seed * 1000 + i,
                                 deadline_ms=setup.deadline_ms,
                                 max_replicas=setup.max_replicas,
                                 sealed_share=setup.sealed_share)  # fmt: skip
            load.prepare()
            self.loads.append(load)
        # Every requester's inputs are uploaded before any posts: they all start with round 1
        # (a requester posts for the rounds still to come, so a late one would post less).
        for i, load in enumerate(self.loads):
            self._spawn(f"requester{i + 1}", load.run)

    def wait_done(self, timeout: float = 300.0) -> dict[str, Any]:
        """Block until the round loop ran its rounds and settled every task; the node's
        summary. DevnetError on a timeout or a participant that died."""
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            for running in self.threads:
                if "error" in running.result:
                    raise DevnetError(f"{running.name} stopped: {running.result['error']}")
            summary = client.summary()
            loop = summary.get("loop") or {}
            if loop.get("state") == "done":
                return summary
            if loop.get("state") == "failed" or loop.get("failures", 0) >= FAILED_TRIES:
                raise DevnetError(f"the round loop failed: {loop.get('error')}")
            if time.monotonic() > deadline:
                raise DevnetError(f"the market did not finish within {timeout:g} s: {loop}")
            time.sleep(0.25)

    def stop_participants(self) -> None:
        self.stop_event.set()
        for running in self.threads:
            running.thread.join(60)

    def close(self) -> None:
        self.stop_participants()
        self.stop_node()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None
