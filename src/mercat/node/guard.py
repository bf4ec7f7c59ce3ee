"""The node's front door: one ASGI middleware that every request passes before it reaches an
endpoint, so an endpoint added later is protected without asking.

In order, for each HTTP request:
1. the client's token bucket (`NodeLimits.client_rate`, `client_burst`): 429 with Retry-After;
2. requests in flight, of the client's address (`client_in_flight`) and of all clients
   (`max_in_flight`): 503 with Retry-After;
3. the body limit of the endpoint the path routes to (`NodeLimits.body_bytes`): a declared
   Content-Length above it is refused at once with 413, before a byte of the body is read;
   a chunked or streamed body is counted as it arrives and cut off at the limit (413);
4. for uploads (`UPLOAD_ROUTES`), the bytes of uploads being received by the whole node
   (`upload_bytes`): a declared Content-Length is reserved at once, a streamed body as it
   arrives; past the limit: 503 with Retry-After, before or as soon as it is passed;
5. the wait for each part of the body (`body_seconds`), and the time to send the whole body
   (`body_total_seconds`, from the moment the request is admitted): 408.

Refusals are mercat's JSON errors, like every other answer of the node.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mercat import errors as e
from mercat.node.http_errors import error_response
from mercat.node.limits import UPLOAD_ROUTES, Clock, NodeLimits, RateLimiter, client_key


class NodeGuard:
    """ASGI middleware applying a node's `NodeLimits` to every HTTP request (see above)."""

    def __init__(self, app: ASGIApp, *, limits: NodeLimits, router: Router, clock: Clock) -> None:
        self.app = app
        self.limits = limits
        self.router = router
        self.rates = RateLimiter(
            limits.client_rate, limits.client_burst, limits.tracked_clients, clock
        )
        self.clock = clock
        self.in_flight = 0
        # Open requests per client address; an address leaves when its last one ends, so
        # the table holds at most `max_in_flight` entries.
        self.open_by_client: dict[str, int] = {}
        self.uploads = _Uploads(limits.upload_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = client_key(scope.get("client"))
        refusal = self._admit(client)
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        self.in_flight += 1
        self.open_by_client[client] = self.open_by_client.get(client, 0) + 1
        held: _Held | None = None
        try:
            route = self._route(scope)
            limit = self.limits.body_bytes(route)
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                too_large = e.BodyTooLargeError(f"request body above {limit} bytes is refused")
                await error_response(too_large)(scope, receive, send)
                return
            if route in UPLOAD_ROUTES:
                held = _Held(self.uploads)
                try:
                    held.grow(declared or 0)
                except e.NodeBusyError as busy:
                    await error_response(busy)(scope, receive, send)
                    return
            deadline = self.clock() + self.limits.body_total_seconds
            body = _BoundedBody(receive, limit, self.limits, deadline, self.clock, held)
            await self.app(scope, body, send)
        finally:
            if held is not None:  # the app has returned: the body is stored or dropped
                held.release()
            self.in_flight -= 1
            left = self.open_by_client[client] - 1
            if left:
                self.open_by_client[client] = left
            else:
                del self.open_by_client[client]

    def _admit(self, client: str) -> e.NodeLimitError | None:
        wait = self.rates.take(client)
        if wait:
            return e.RateLimitedError("too many requests from this address", wait)
        if self.open_by_client.get(client, 0) >= self.limits.client_in_flight:
            return e.NodeBusyError(
                f"this address has its limit of {self.limits.client_in_flight} requests in "
                "progress on this node; wait for one to finish",
                1.0,
            )
        if self.in_flight >= self.limits.max_in_flight:
            return e.NodeBusyError(
                f"this node is serving its limit of {self.limits.max_in_flight} requests", 1.0
            )
        return None

    def _route(self, scope: Scope) -> str | None:
        """The path template of the endpoint the request routes to (None: no endpoint)."""
        for route in self.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return getattr(route, "path", None)
        return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before we see it
    return None


class _BoundedBody:
    """`receive` for the app: body parts counted against `limit` (BodyTooLargeError past
    it) and, for an upload, held against the node's `upload_bytes` (`held`); each part
    awaited at most `body_seconds` and all of them before `deadline` on `clock`
    (BodyTimeoutError). Once the body is complete the server's later messages (a
    disconnect, while a response streams) pass untimed."""

    def __init__(
        self,
        receive: Receive,
        limit: int,
        limits: NodeLimits,
        deadline: float,
        clock: Clock,
        held: _Held | None = None,
    ) -> None:
        self.receive, self.limit, self.clock, self.held = receive, limit, clock, held
        self.seconds, self.total = limits.body_seconds, limits.body_total_seconds
        self.deadline = deadline
        self.size = 0
        self.complete = False

    async def __call__(self) -> Message:
        if self.complete:
            return await self.receive()
        # Checked before each part, not only while waiting: parts that each arrive in time
        # would otherwise keep a slot for ever.
        left = self.deadline - self.clock()
        if left <= 0:
            raise self._too_slow()
        wait = min(self.seconds, left)
        message: dict[str, Any] | None = None
        with anyio.move_on_after(wait):
            message = dict(await self.receive())
        if message is None:
            if wait < self.seconds:
                raise self._too_slow()
            raise e.BodyTimeoutError(
                f"no part of the request body arrived for {_seconds(self.seconds)}"
            )
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                raise e.BodyTooLargeError(f"request body above {self.limit} bytes is refused")
            if self.held is not None:
                self.held.grow(self.size)
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True
        return message

    def _too_slow(self) -> e.BodyTimeoutError:
        return e.BodyTimeoutError(f"the request body did not arrive within {_seconds(self.total)}")


class _Uploads:
    """Bytes of upload bodies the node holds now, at most `limit`. Only the event loop
    touches it (the guard runs there), so it needs no lock."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    def take(self, size: int) -> None:
        if self.held + size > self.limit:
            raise e.NodeBusyError(
                f"this node is receiving its limit of {self.limit} bytes of uploads at once",
                5.0,
            )
        self.held += size


class _Held:
    """One request's share of `_Uploads`: what its body declared, or what has arrived."""

    def __init__(self, uploads: _Uploads) -> None:
        self.uploads, self.size = uploads, 0

    def grow(self, size: int) -> None:
        """Hold `size` bytes in all (NodeBusyError, holding no more, past the node's limit)."""
        if size > self.size:
            self.uploads.take(size - self.size)
            self.size = size

    def release(self) -> None:
        self.uploads.held -= self.size
        self.size = 0


def _seconds(value: float) -> str:
    return f"{value:g} s" if value < 1 or value != math.floor(value) else f"{int(value)} s"
