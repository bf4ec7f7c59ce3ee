"""A cluster of provider processes on this machine (`mercat auctioneer local`, the tests, the
benchmark).

`LocalCluster` writes a peers file into a work directory, starts each provider as its own
OS process (`python -m mercat.auctioneer.process`) listening on TCP, hands it its key on
its standard input (no key ever touches the disk), waits for every `READY` line, and
drives rounds as the sealing bidder client: it sends the whole market to every provider as
one final batch, so bidding closes as soon as the batch arrives, then collects the m
Results. A round's time runs from the moment the bids are generated to the last Result
received, as in the seed's §6.1.

Processes are stopped with SIGTERM (SIGKILL after a grace period) when the cluster closes,
and on Linux they also receive SIGTERM if the launching process dies. `run_local` (what
`mercat auctioneer local` runs) turns SIGTERM and SIGINT into a clean stop: the round in
flight is abandoned, the providers are stopped, the temporary directory (logs, result
databases) is removed, and the rounds finished so far are returned.

`commands` lets a caller wrap each provider's command line (the network-namespace test runs
each provider under `ip netns exec`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.client import BidderClient, ClientOutcome
from mercat.auctioneer.config import Peer, PeersFile, ProtocolParams, dump_peers
from mercat.errors import AuctioneerConfigError, ProtocolError
from mercat.identity import Keypair
from mercat.lifetime import dying_with_parent

READY_TIMEOUT = 60.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalCluster:
    """m provider processes and a bidder client; use as a context manager."""

    params: ProtocolParams
    hosts: Sequence[str] | None = None  # one per provider (default 127.0.0.1)
    workdir: Path | None = None
    commands: Callable[[str, list[str]], list[str]] | None = None
    client_host: str | None = None  # unused by ZeroMQ (the client only connects)
    log_level: str = "WARNING"
    result_log: bool = True  # each provider keeps <workdir>/<id>.results.db
    # The cluster's client opens and closes every round (opening = "sealed"), so rounds run
    # back to back as the measurements need; False: the params' own opening rule.
    sealed: bool = True
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sealed:
            self.params = self.params.with_(opening="sealed")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mercat-auctioneer-")
            self.workdir = Path(self._tmp.name)
        self.workdir = Path(self.workdir)
        self.client_key = Keypair.generate()
        self.keys = {p: Keypair.generate() for p in self.params.providers}
        hosts = list(self.hosts or ["127.0.0.1"] * self.params.m)
        if len(hosts) != self.params.m:
            raise AuctioneerConfigError(f"{len(hosts)} hosts for {self.params.m} providers")
        self.peers = PeersFile(
            self.params,
            tuple(
                Peer(
                    p,
                    f"tcp://{h}:{free_port(h if self.hosts is None else '0.0.0.0')}",
                    self.keys[p].public,
                )
                for p, h in zip(self.params.providers, hosts, strict=True)
            ),
            (self.client_key.public,) if self.params.opening == "sealed" else (),
        )
        self.peers_path = self.workdir / "peers.toml"
        self.client: BidderClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        assert self.workdir is not None
        self.peers_path.write_text(dump_peers(self.peers), encoding="utf-8")
        for p in self.params.providers:
            self.start_provider(p)
        self.wait_ready(self.params.providers)
        self._loop = asyncio.new_event_loop()
        self.client = BidderClient(self.peers, self.client_key)

    def provider_command(self, provider: str) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "mercat.auctioneer.process",
            "--id",
            provider,
            "--peers",
            str(self.peers_path),
            "--key",
            "-",  # on stdin: see start_provider
            "--log-level",
            self.log_level,
        ]
        if not self.result_log:
            command += ["--results", "none"]
        return self.commands(provider, command) if self.commands else command

    def start_provider(self, provider: str) -> None:
        """(Re)start one provider process; its log goes to `<workdir>/<id>.log`."""
        assert self.workdir is not None
        old = self.processes.get(provider)
        if old is not None and old.poll() is None:
            raise ProtocolError(f"provider {provider} is running already")
        log = open(self.workdir / f"{provider}.log", "ab")  # noqa: SIM115 - the child owns it
        try:
            process = subprocess.Popen(
                self.provider_command(provider),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                preexec_fn=dying_with_parent(signal.SIGTERM),
            )
        finally:
            log.close()
        self.processes[provider] = process
        # The key goes through a pipe, never a file: a launcher killed at any moment
        # leaves no secret behind in its work directory.
        assert process.stdin is not None
        try:
            process.stdin.write(self.keys[provider].seed.hex().encode() + b"\n")
            process.stdin.close()
        except BrokenPipeError:  # it died at once; wait_ready reports its log
            pass

    def wait_ready(self, providers: Sequence[str], timeout: float = READY_TIMEOUT) -> None:
        """Block until each provider printed READY; raise ProtocolError with its log if one
        exits or stays silent."""
        deadline = time.monotonic() + timeout
        waiting = {self.processes[p].stdout.fileno(): p for p in providers}  # type: ignore[union-attr]
        buffers = {fd: b"" for fd in waiting}
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProtocolError(
                    f"providers {sorted(waiting.values())} not ready after {timeout:.0f} s"
                    + self._log_tail(next(iter(waiting.values())))
                )
            ready, _, _ = select.select(list(waiting), [], [], min(remaining, 0.5))
            for fd in ready:
                chunk = os.read(fd, 4096)
                provider = waiting[fd]
                if not chunk:
                    raise ProtocolError(
                        f"provider {provider} exited before it was ready" + self._log_tail(provider)
                    )
                buffers[fd] += chunk
                if b"READY" in buffers[fd]:
                    del waiting[fd]

    def _log_tail(self, provider: str) -> str:
        assert self.workdir is not None
        path = self.workdir / f"{provider}.log"
        text = path.read_text(errors="replace")[-2000:] if path.exists() else ""
        return f"; its log:\n{text}" if text else ""

    def stop_provider(self, provider: str, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
        process = self.processes.get(provider)
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)

    def stop_providers(self, providers: Sequence[str], grace: float = 5.0) -> None:
        """SIGTERM to all of them at once, then SIGKILL to those still running after
        `grace` seconds: stopping m providers takes one grace period, not m."""
        running = [self.processes[p] for p in providers if p in self.processes]
        running = [process for process in running if process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(grace)

    def close(self) -> None:
        """Stop every provider, close the client and its event loop, remove the temporary
        directory; also after a round was interrupted half-way (by a signal)."""
        self.stop_providers(list(self.processes))
        for process in self.processes.values():
            if process.stdout is not None:
                process.stdout.close()
        if self._loop is not None:
            # A round interrupted by a signal leaves its tasks pending: finish them here,
            # on the loop that owns them, before anything closes it under them.
            pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        if self.client is not None:
            if self._loop is not None:
                self._loop.run_until_complete(self.client.aclose())
            else:
                self.client.close()
            self.client = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # --- rounds -------------------------------------------------------------------------

    def run_round(self, round_id: int, bids: BidVector, timeout: float) -> ClientOutcome:
        """Send `bids` to every provider and wait (at most `timeout` s) for the outcome."""
        if self.client is None or self._loop is None:
            raise ProtocolError("the cluster is not started")
        return self._loop.run_until_complete(self.client.run_round(round_id, bids, timeout))

    def round_timeout(self) -> float:
        """Long enough for a round that ends in ⊥ by the providers' own timeouts."""
        p = self.params
        return p.bid_window + 3 * p.phase_timeout + p.task_timeout + 5.0


@dataclass(frozen=True)
class LocalRound:
    """One round of `run_local`: the outcome at the client and how long it took."""

    round: int
    ok: bool
    reason: str
    seconds: float  # from generating the bids to the last Result
    matches_centralized: bool | None  # None: not checked
    winners: int
    note: str = ""
    # When the slowest provider reached each milestone (round.PHASES), seconds.
    phases: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalRun:
    """What `run_local` finished: its rounds, and the signal that stopped it, if one did."""

    rounds: list[LocalRound]
    stopped_by: str | None = None  # "SIGINT" or "SIGTERM"
    signal_number: int | None = None


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived. A KeyboardInterrupt, so that asyncio re-raises it out of
    a running loop as it does Ctrl-C, and no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[Callable[[], None]]:
    """Inside, SIGINT and SIGTERM raise `Stopped` in the main thread, wherever it is (in the
    event loop, waiting for a process, computing the centralized outcome). Yields `hold`:
    call it before cleaning up, and further signals are ignored until the block ends (the
    cleanup is bounded: providers get a grace period, then SIGKILL). A signal ignored on
    entry (SIGINT in a shell's background job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None  # only the main thread may install handlers (and get signals)
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def hold() -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)

    def stop(signum: int, frame: object) -> None:
        hold()
        raise Stopped(signum)

    for sig in signals:
        if previous[sig] is not signal.SIG_IGN:
            signal.signal(sig, stop)
    try:
        yield hold
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


EXACT_VCG_USERS = 125  # the largest n whose VCG proof takes seconds (docs/vcg.md)
EXACT_VCG_BAND = (1000, 2000)  # many users per provider: proofs cheap again (measured)
LARGE_VCG_GAP = 0.01


def default_vcg_gap(users: int) -> float:
    """`mercat auctioneer local`'s VCG gap when none is given: proven optima (0) up to
    EXACT_VCG_USERS users and from 1,000 to 2,000 users, a certified 1% elsewhere.

    Measured (docs/vcg.md, "Measured"): at n = 1000 every allocation and every Clarke
    payment is proven on seeds 0-9, nine markets under a second and seed 2 in about 20 s
    (payments in a 2-process pool); at n = 2000 seeds 0-2 in under a second each. Between
    the two bands (two to six users per provider) a proof can still take minutes: at
    n = 500, seed 2 leaves a payment unproven in 20 s. Above 2,000 users, the payments of
    seed 0 at n = 5000 did not finish in 250 s."""
    low, high = EXACT_VCG_BAND
    return 0.0 if users <= EXACT_VCG_USERS or low <= users <= high else LARGE_VCG_GAP


def run_local(
    *,
    sellers: int,
    executing: int,
    k: int,
    users: int,
    mechanism: str,
    rounds: int,
    groups: int = 0,
    seed: int = 0,
    verify: bool = True,
    crash_round: int | None = None,
    vcg_gap: float = 0.0,
    tie_break: str = "index",
    phase_timeout: float = 5.0,
    task_timeout: float = 600.0,
    on_round: Callable[[LocalRound], None] | None = None,
) -> LocalRun:
    """Start `executing` providers as processes on loopback and run `rounds` rounds of the
    seed-003 market (`users` users, `sellers` providers in the auction).

    `crash_round`: before that round the last provider is killed (SIGKILL); the round must
    end in ⊥ within the providers' timeouts; the provider is then restarted and the next
    round must work again.

    SIGINT or SIGTERM (from the main thread's point of view) stops the run cleanly: the
    round in flight is abandoned, the providers are stopped, the temporary directory is
    removed, and the rounds finished so far come back with the signal's name."""
    from mercat.auctioneer.instances import instance_for

    params = ProtocolParams(
        providers=tuple(f"p{i + 1}" for i in range(executing)),
        k=k,
        mechanism=mechanism,
        groups=groups,
        vcg_gap=vcg_gap,
        tie_break=tie_break,
        opening="sealed",  # the cluster's client opens and closes each round
        bid_window=phase_timeout,
        phase_timeout=phase_timeout,
        task_timeout=task_timeout,
    )
    instance = instance_for(mechanism)
    victim = params.providers[-1]
    out: list[LocalRound] = []
    with stopping_on_signals() as hold:
        try:
            cluster = LocalCluster(params)
            try:
                cluster.start()
                for r in range(rounds):
                    entry = _local_round(cluster, r, instance, seed, users, sellers, verify,
                                         crash_round, victim)  # fmt: skip
                    out.append(entry)
                    if on_round is not None:
                        on_round(entry)
            finally:
                hold()  # a second Ctrl-C must not cut the cleanup short
                cluster.close()
        except Stopped as stopped:
            name = signal.Signals(stopped.signum).name
            return LocalRun(out, name, stopped.signum)
    return LocalRun(out)


def _local_round(
    cluster: LocalCluster,
    r: int,
    instance: Any,
    seed: int,
    users: int,
    sellers: int,
    verify: bool,
    crash_round: int | None,
    victim: str,
) -> LocalRound:
    """One round of `run_local`."""
    from mercat.auctioneer.client import slowest_phases
    from mercat.auctioneer.instances import published_seed
    from mercat.auctioneer.workloads import bids_for

    mechanism = cluster.params.mechanism
    note = ""
    if crash_round is not None and r == crash_round:
        cluster.stop_provider(victim, signal.SIGKILL)
        note = f"{victim} killed before this round"
    started = time.perf_counter()
    bids = bids_for(mechanism, seed + r, users, sellers)
    result = cluster.run_round(r, bids, cluster.round_timeout())
    seconds = time.perf_counter() - started
    matches = None
    if verify and result.outcome is not None:
        # The trusted auctioneer on the same bids and, where ties are broken by the common
        # coin, the same coin (the outcome publishes it).
        coin_seed = published_seed(result.outcome)
        matches = result.outcome == instance.centralized(bids, coin_seed, cluster.params)
    winners = len(set(result.outcome.buyer.tolist())) if result.outcome else 0
    phases = slowest_phases(result.results.values())
    if crash_round is not None and r == crash_round:
        cluster.start_provider(victim)
        cluster.wait_ready([victim])
    return LocalRound(r, result.ok, result.reason, seconds, matches, winners, note, phases)
