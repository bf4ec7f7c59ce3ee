"""In-process simulation: m providers and a bidder client in one event loop.

The providers are the real `ProviderNode`s with real signatures and encodings; only the
network (an `InProcessHub`) and, by default, the clock (`VirtualClockLoop`) are simulated.
The client sends each provider its own bid vector (so a bidder may send different bids to
different providers) as a final batch. How the round opens follows `params.opening`:

- "sealed": the client is the sealing client, so its batch opens the round and closes
  bidding at once; the rounds are numbered 0, 1, 2, ...
- "schedule": each market goes to the next round whose window opens on the simulated wall
  clock (which starts at `schedule_start`), and the client bids `bids_delay` seconds after
  that opening; bidding closes by the clock.

Before the client bids, every provider's `Behavior.before_bids` frames are delivered (a
deviator naming rounds ahead of the clients), `bids_delay` seconds ahead of the bids in
the sealed opening. A provider that outputs nothing for a round (it never ran it) is given
⊥ with the reason "no output", as a client waiting for it would see.

`simulate_rounds` returns every provider's output for every round; `outcome_of` applies the
seed's definition: the outcome is (x, p) if every provider output that pair, else ⊥.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mercat.auctioneer.bids import BidVector
from mercat.auctioneer.config import ProtocolParams
from mercat.auctioneer.messages import BidBatch, Message, Result, decode, encode
from mercat.auctioneer.node import ProviderNode
from mercat.auctioneer.opening import Schedule
from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.round import HONEST, Behavior, RoundResult
from mercat.auctioneer.transport import InProcessHub
from mercat.auctioneer.virtual_clock import VirtualClockLoop
from mercat.identity import Keypair

CLIENT = "client"
OUTSIDER = "outsider"  # where frames a deviator sends as a client of its own come from


@dataclass(frozen=True)
class SimulatedRound:
    """Each provider's output for one round, and the Results the client received."""

    round: int
    outputs: dict[str, RoundResult]
    client_results: dict[str, Result]

    def outcome(self, providers: Sequence[str] | None = None) -> Outcome | None:
        """(x, p) if every provider in `providers` (default all) output it, else None (⊥)."""
        return outcome_of(self.outputs, providers)


def outcome_of(
    outputs: Mapping[str, RoundResult], providers: Sequence[str] | None = None
) -> Outcome | None:
    chosen = list(outputs) if providers is None else list(providers)
    first = outputs[chosen[0]].outcome
    if first is None:
        return None
    for p in chosen[1:]:
        if outputs[p].outcome != first:
            return None
    return first


def simulate_rounds(
    params: ProtocolParams,
    rounds: Sequence[Mapping[str, BidVector] | BidVector],
    *,
    behaviors: Mapping[str, Behavior] | None = None,
    seed: int = 0,
    virtual_time: bool = True,
    cache: dict[tuple[bytes, str], Any] | None = None,
    between: Callable[[int, dict[str, ProviderNode]], None] | None = None,
    bids_delay: float = 0.0,
) -> list[SimulatedRound]:
    """Run the rounds one after the other. Each round's bids are one vector for every
    provider, or a mapping provider -> the vector the bidders sent to it. `between(i,
    nodes)` runs before the i-th round; `bids_delay`: see the module docstring."""
    runner = asyncio.Runner(loop_factory=VirtualClockLoop if virtual_time else None)
    with runner:
        return runner.run(
            _simulate(params, rounds, behaviors or {}, seed, cache, between, bids_delay)
        )


async def _simulate(
    params: ProtocolParams,
    rounds: Sequence[Mapping[str, BidVector] | BidVector],
    behaviors: Mapping[str, Behavior],
    seed: int,
    cache: dict[tuple[bytes, str], Any] | None,
    between: Callable[[int, dict[str, ProviderNode]], None] | None,
    bids_delay: float,
) -> list[SimulatedRound]:
    rng = np.random.default_rng(seed)
    loop = asyncio.get_running_loop()
    sealed = params.opening == "sealed"
    schedule = None if sealed else Schedule.of(params)
    started = loop.time()

    def wall(skew: float = 0.0) -> Callable[[], float]:
        """The simulated wall clock (ahead by `skew`): `schedule_start` when it starts."""
        return lambda: params.schedule_start + (loop.time() - started) + skew

    hub = InProcessHub()
    keys = {p: Keypair(rng.bytes(32)) for p in params.providers}
    client_key = Keypair(rng.bytes(32))
    peer_keys = {p: k.public for p, k in keys.items()}
    outputs: dict[int, dict[str, RoundResult]] = {}
    done: dict[int, asyncio.Event] = {}

    def recorder(provider: str) -> Callable[[RoundResult], None]:
        def record(result: RoundResult) -> None:
            outputs.setdefault(result.round, {})[provider] = result
            if len(outputs[result.round]) == params.m:
                done.setdefault(result.round, asyncio.Event()).set()

        return record

    def sealing(p: str) -> list[str]:
        """The client opens and closes the rounds; a deviator may configure its own node
        with sealing clients of its own instead."""
        if not sealed:
            return []
        return list(behaviors.get(p, HONEST).sealing_clients) or [client_key.public]

    nodes = {
        p: ProviderNode(
            p,
            params,
            keys[p],
            peer_keys,
            hub.endpoint(p),
            sealing_clients=sealing(p),
            wall_clock=wall(behaviors.get(p, HONEST).clock_skew),
            behavior=behaviors.get(p, HONEST),
            rng=np.random.default_rng(rng.integers(2**63)),
            # Honest providers share task results (their inputs are the honest ones, which is
            # what the data transfer guarantees); a deviator computes on its own inputs.
            task_cache=cache if p not in behaviors else None,
            on_result=recorder(p),
        )
        for p in params.providers
    }
    client = hub.endpoint(CLIENT)
    hub.endpoint(OUTSIDER)  # replies to a deviator's own client land here, unread

    def signer(p: str) -> Callable[[Message], list[bytes]]:
        return lambda message: encode(message, p, keys[p])

    serving = [asyncio.ensure_future(node.serve()) for node in nodes.values()]
    simulated = []
    try:
        for i, bids in enumerate(rounds):
            if between is not None:
                between(i, nodes)
            if schedule is None:
                r = i
            else:  # the next round to open on the simulated wall clock; wait for it
                r = math.ceil((wall()() - schedule.start) / schedule.period)
                await asyncio.sleep(max(0.0, schedule.opens(r) - wall()()))
            done.setdefault(r, asyncio.Event())
            for p, behavior in behaviors.items():
                for target, frames in behavior.before_bids(r, signer(p)):
                    hub.deliver(OUTSIDER, target, frames)
            if bids_delay > 0:
                await asyncio.sleep(bids_delay)
            for p in params.providers:
                vector = bids if isinstance(bids, BidVector) else bids.get(p, BidVector.empty())
                frames = encode(BidBatch(r, vector, final=True), client_key.public, client_key)
                client.send(p, frames)
            # Every wait inside a round has a deadline, so a provider that runs the round
            # outputs within this bound; one that never opened it outputs nothing.
            horizon = params.bid_window + 4 * params.phase_timeout + params.task_timeout + 1.0
            try:
                async with asyncio.timeout(horizon):
                    await done[r].wait()
            except TimeoutError:
                for p in params.providers:
                    outputs.setdefault(r, {}).setdefault(
                        p, RoundResult(r, None, "no output: the round never ran here")
                    )
            simulated.append(SimulatedRound(r, outputs[r], _drain(client, peer_keys, r)))
    finally:
        for node in nodes.values():
            node.stop()
        await asyncio.gather(*serving, return_exceptions=True)
    return simulated


def _drain(client: Any, peer_keys: Mapping[str, str], r: int) -> dict[str, Result]:
    """The signed Results the client holds for round r, by provider."""
    results: dict[str, Result] = {}
    queue = client.hub.queue(client.endpoint)
    while not queue.empty():
        received = queue.get_nowait()
        signed = decode(received.frames, lambda sender, cls: peer_keys.get(sender))
        if isinstance(signed.message, Result) and signed.message.round == r:
            results[signed.sender] = signed.message
    return results
