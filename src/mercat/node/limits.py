"""What a marketplace node allows one request, one client and all clients together: the
operator's settings (`NodeLimits`) and the token buckets that enforce rates.

Everything that reaches the node comes from the network and is treated as hostile, so every
cost a request can impose has a bound here: body bytes per endpoint, time to send a body,
requests per second per client, requests in flight (per client and in all), accounts
opened, bytes in the store, and for heavy work (solves, the privacy accountant) worker
processes, their queue, time, memory, and the solver threads and processes a client may ask
for. `mercat serve --limit KEY=VALUE` sets any of them; docs/service.md ("What protects the
node") says what each one stops.

Buckets take their clock as an argument, so that tests drive time instead of waiting for it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mercat import errors as e

UPLOAD_ROUTES = ("/storage/blocks/{cid}", "/storage/content")
"""Endpoints whose bodies the node holds until they are stored; they count against
`NodeLimits.upload_bytes` while they arrive."""

Clock = Callable[[], float]
"""Seconds from any fixed origin, never going back (time.monotonic by default)."""

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True)
class NodeLimits:
    """The operator's bounds on what the network may make a node do (defaults: a small public
    node on a few cores). Sizes are bytes, times seconds, rates per second."""

    # Requests: every endpoint gets these without asking.
    max_in_flight: int = 64  # requests being served at once; above it: 503
    # One address's share of them: without it, one client with slow bodies holds every slot.
    client_in_flight: int = 16  # requests one client address has open at once; above: 503
    max_connections: int = 256  # open connections (uvicorn's limit_concurrency); above: 503
    client_rate: float = 20.0  # requests per second per client address ...
    client_burst: int = 100  # ... with this many at once after a quiet spell; above: 429
    tracked_clients: int = 65_536  # buckets kept; the least recently seen is forgotten
    body_seconds: float = 30.0  # the longest wait for the next part of a body; then 408
    # The whole body's deadline: a byte every 29 s passes the wait above but never ends.
    body_total_seconds: float = 600.0  # the longest time to send a whole body; then 408
    default_body_bytes: int = 64 * KiB  # any endpoint not named below
    # Endpoint bodies.
    message_body_bytes: int = 1 * MiB  # POST /ledger/messages: one signed message
    market_body_bytes: int = 16 * MiB  # POST /clearing/{mechanism}
    block_body_bytes: int = 64 * MiB  # PUT /storage/blocks/{cid}: the store's largest block
    content_body_bytes: int = 1 * GiB  # POST /storage/content, spooled to a temporary file
    # Upload bodies are held (in memory, or spooled to a temporary file) until they are
    # stored, outside the store's quota: this bounds them for all clients together.
    upload_bytes: int = 2 * GiB  # bytes of uploads being received at once; above it: 503
    # Accounts: opening one is free of tokens, so it is rate-limited per client and node-wide.
    account_rate: float = 1 / 60  # accounts per second per client address ...
    account_burst: int = 3
    node_account_rate: float = 1.0  # ... and for all clients together
    node_account_burst: int = 30
    # Storage.
    store_quota_bytes: int = 8 * GiB  # bytes of blocks the store may hold; above it: 507
    # Heavy work: solves and the privacy accountant, in worker processes.
    workers: int = 2  # worker processes, each doing one job at a time
    work_queue: int = 8  # jobs that may wait for a worker; beyond them: 503
    work_seconds: float = 30.0  # a job running longer is killed: 504
    work_memory_bytes: int = 4 * GiB  # address space of a worker; a job needing more: 413
    solver_threads: int = 1  # the most HiGHS threads a client may ask for (option `threads`)
    solver_processes: int = 0  # the most processes a VCG solve may fan out to (`workers`)
    payment_groups: int = 64  # the most VCG payment groups a client may ask for (`groups`)
    posted_price_rounds: int = 100_000  # the most rounds of posted-price dynamics (`max_rounds`)
    market_makers: int = 16  # the most market-makers a posted-price clearing may run
    # Reading.
    journal_page: int = 1000  # the most journal entries one GET returns
    task_page: int = 1000  # the most tasks, rounds, requests or events one GET returns
    # The live market's event stream (server-sent events): each stream holds a request slot.
    event_streams: int = 8  # streams open at once; above it: 503
    event_stream_seconds: float = 300.0  # a stream then ends; the client reconnects

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            lowest = 0 if field.name == "solver_processes" or field.name == "work_queue" else 1
            if field.type == "float":
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                ok = ok and math.isfinite(value) and value > 0
                expected = "a finite number > 0"
            else:
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= lowest
                expected = f"an integer >= {lowest}"
            if not ok:
                raise e.InvalidParameterError(
                    f"node limit {field.name} must be {expected}, got {value!r}"
                )
        largest = max(self.body_bytes(route) for route in UPLOAD_ROUTES)
        if self.upload_bytes < largest:  # the largest upload would be refused for ever
            raise e.InvalidParameterError(
                f"node limit upload_bytes ({self.upload_bytes}) must be at least the largest "
                f"upload body (block_body_bytes, content_body_bytes: {largest})"
            )

    def body_bytes(self, route: str | None) -> int:
        """The body limit of the endpoint whose path template is `route` (None: no route
        matched); an endpoint not named here gets `default_body_bytes`."""
        named = {
            "/ledger/messages": self.message_body_bytes,
            "/clearing/{mechanism}": self.market_body_bytes,
            "/storage/blocks/{cid}": self.block_body_bytes,
            "/storage/content": self.content_body_bytes,
        }
        return named.get(route or "", self.default_body_bytes)

    @classmethod
    def from_settings(cls, settings: Iterable[str], base: NodeLimits | None = None) -> NodeLimits:
        """`base` (default: the defaults) with `KEY=VALUE` settings applied; sizes (fields
        ending in `_bytes`) take units as `mercat storage` does (64KiB, 2GB)."""
        from mercat.cli.storage import parse_size

        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        changes: dict[str, int | float] = {}
        for setting in settings:
            key, sep, text = setting.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in kinds:
                raise e.InvalidParameterError(
                    f"node limit {setting!r} is not KEY=VALUE with KEY one of: " + ", ".join(kinds)
                )
            try:
                if key.endswith("_bytes"):
                    changes[key] = parse_size(text.strip())
                elif kinds[key] == "float":
                    changes[key] = float(text)
                else:
                    changes[key] = int(text)
            except ValueError:
                raise e.InvalidParameterError(
                    f"node limit {key} needs a {kinds[key]}, got {text.strip()!r}"
                ) from None
        return dataclasses.replace(base or cls(), **changes)


class TokenBucket:
    """`burst` tokens, refilled at `rate` per second; a request takes one (or `cost`)."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), now

    def take(self, now: float, cost: float = 1.0) -> float:
        """0 if the tokens were taken; otherwise the seconds until they would be (nothing
        is taken then: a refused request does not delay the next one further)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per key (a client's address), the `capacity` most recently seen kept:
    memory stays bounded however many addresses a client uses. A forgotten key starts again
    with a full bucket; an attacker would need more than `capacity` addresses for that."""

    def __init__(self, rate: float, burst: int, capacity: int, clock: Clock = time.monotonic):
        self.rate, self.burst, self.capacity, self.clock = rate, burst, capacity, clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, cost: float = 1.0) -> float:
        """0 if `key` may go ahead now, else the seconds it should wait."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now, cost)

    def __len__(self) -> int:
        return len(self._buckets)


class AccountOpenings:
    """The price of a free account: opening one takes a token from the client's bucket and
    one from the node's, so no address opens more than `account_burst` at once and all of
    them together no more than `node_account_rate` a second in the long run."""

    def __init__(self, limits: NodeLimits, clock: Clock = time.monotonic) -> None:
        self.per_client = RateLimiter(
            limits.account_rate, limits.account_burst, limits.tracked_clients, clock
        )
        self.node = TokenBucket(limits.node_account_rate, limits.node_account_burst, clock())
        self.clock = clock

    def admit(self, client: str) -> None:
        """Take the tokens, or raise RateLimitedError (taking none)."""
        now = self.clock()
        # The node's bucket is checked first without taking, so a refused client does not
        # spend the node's tokens, and a client over its own limit spends none of them.
        self.node.take(now, 0.0)
        if self.node.tokens < 1.0:
            wait = (1.0 - self.node.tokens) / self.node.rate
            raise e.RateLimitedError(
                "this node opens no more accounts for now (its limit for all clients)", wait
            )
        wait = self.per_client.take(client)
        if wait:
            raise e.RateLimitedError("too many accounts opened from this address", wait)
        self.node.take(now)


def client_key(client: tuple[str, int] | None) -> str:
    """The rate-limit key of a peer address: the IPv4 address, or the /64 network of an IPv6
    one (a single host commonly holds a whole /64, so one bucket per address would give it
    2^64 buckets)."""
    if not client:
        return "unknown"
    host = client[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # a unix socket path or a test client's name
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
