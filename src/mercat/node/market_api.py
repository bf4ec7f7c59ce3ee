"""The live market's HTTP endpoints (`/market/...`), added to a node that serves a ledger.

For provider agents: the tasks assigned to them (`GET /market/tasks?assignee=ASSET|KEY`)
and `POST /market/claims` (a signed outcome claim, `mercat.node.claims`). For oracles: the
open tasks with their claims and the node's clock, and `POST /market/reports` (a signed
oracle report, `mercat.oracle.report`). For requesters: their requests and tasks
(`GET /market/requests?owner=KEY`, `/market/requests/{id}`, `/market/tasks?requester=KEY`)
and each task's outputs. For people and the dashboard: the round history, the order book,
providers with stake, failure rate and removals (by asset id, a page at a time), a
summary, and the event stream.

Every write is a message its author signed and the node checks before it keeps anything:
the signature, the ledger it names, that the signer may say it (a claim comes from the
owner of a server bound to the task; a report from an oracle in the ledger's set), that the
task exists and is open, that a successful claim's output is in the store. A second claim
or report for the same thing is refused (409). Every list is bounded (`task_page`), the
event stream by `event_streams` and `event_stream_seconds` (`mercat.node.limits`), and the
guard's rate, body and in-flight limits apply to these endpoints as to every other.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from anyio import to_thread
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import StreamingResponse

from mercat import errors as e
from mercat.jsonable import jsonable
from mercat.node import market_schemas as api
from mercat.node.board import TaskBoard, now_ms
from mercat.node.claims import SignedClaim
from mercat.node.http_errors import documented
from mercat.node.limits import NodeLimits
from mercat.node.schemas import json_body
from mercat.node.sealing import MAX_GRANT_BYTES, SignedGrant
from mercat.node.sla import Timing
from mercat.oracle.report import SignedReport
from mercat.untrusted import parse_json, plain_decimal

MAX_INTEGER = 2**63 - 1
ID = r"^[A-Za-z0-9_.-]{1,64}$"
KEY = r"^[0-9a-f]{64}$"
ORACLE_SET_SECONDS = 1.0  # how long the node reuses its read of the oracle set
HEARTBEAT_SECONDS = 15.0


class _Streams:
    """How many event streams are open (at most `limit`)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.open = limit, 0

    def take(self) -> None:
        if self.open >= self.limit:
            raise e.NodeBusyError(f"this node serves at most {self.limit} event streams", 5.0)
        self.open += 1

    def give(self) -> None:
        self.open -= 1


def install(
    app: FastAPI,
    need_ledger: Callable[[], Any],
    need_store: Callable[[], Any],
    board: TaskBoard,
    limits: NodeLimits,
    loop: Callable[[], Any],
) -> None:
    """Add the `/market/...` endpoints to `app`. `loop()` is the node's round loop, or None
    when the node runs none (its endpoints still answer from the ledger and the board)."""
    streams = _Streams(limits.event_streams)
    oracle_cache: dict[str, Any] = {"at": -1e9, "keys": frozenset()}

    def timing() -> Timing:
        running = loop()
        return running.settings.timing if running is not None else Timing()

    def oracle_set() -> frozenset[str]:
        if time.monotonic() - oracle_cache["at"] > ORACLE_SET_SECONDS:
            accounts = need_ledger().accounts()
            oracle_cache["keys"] = frozenset(k for k, role, _ in accounts if role == "oracle")
            oracle_cache["at"] = time.monotonic()
        return oracle_cache["keys"]  # type: ignore[no-any-return]

    def status_of_loop() -> dict[str, Any] | None:
        running = loop()
        return None if running is None else running.status()

    page = Query(100, ge=1, le=limits.task_page, description="the most entries to return")

    @app.get("/market/info", responses=documented(404))
    def market_info() -> api.MarketInfo:
        """What agents and oracles need to work with this node: the ledger, its quorum and
        oracle set, the node's clock and the SLA timing (`mercat.node.sla`)."""
        ledger = need_ledger()
        t = timing()
        return api.MarketInfo(
            ledger_id=ledger.id, round=ledger.round(), unit=ledger.config.unit,
            quorum=ledger.config.quorum, oracles=sorted(oracle_set()), now_ms=now_ms(),
            grace_ms=t.grace_ms, no_deadline_ms=t.no_deadline_ms, loop=status_of_loop(),
        )  # fmt: skip

    @app.get("/market/tasks", responses=documented(404))
    def market_tasks(
        assignee: str | None = Query(
            None,
            max_length=64,
            pattern=r"^[A-Za-z0-9_.-]{1,64}$",
            description="an asset id or an owner's public key",
        ),
        requester: str | None = Query(None, pattern=KEY, description="a requester's key"),
        request: str | None = Query(None, pattern=ID),
        round: int | None = Query(None, ge=0, le=MAX_INTEGER),
        status: str | None = Query(None, pattern="^(open|settled)$"),
        limit: int = page,
        order: str = Query(
            "newest", pattern="^(newest|oldest)$", description="newest or oldest round first"
        ),
        after: str | None = Query(
            None,
            pattern=r"^[0-9]{1,18}/[A-Za-z0-9_.-]{1,64}$",
            description="ROUND/TASK: the last task of the page before; this page follows it",
        ),
    ) -> api.TaskList:
        """Tasks the round loop opened, newest round first (or oldest: `order`), each
        round's by task id, with their terms, bound assets, claims, the oracles that
        reported and the verdict. A page at a time: the next page is `after` the last task
        of this one."""
        need_ledger()
        cursor = None
        if after is not None:
            after_round, _, after_task = after.partition("/")
            cursor = (int(after_round), after_task)
        tasks = board.tasks(round_=round, status=status, assignee=assignee,
                            requester=requester, request=request, limit=limit,
                            oldest=order == "oldest", after=cursor)  # fmt: skip
        return api.TaskList(now_ms=now_ms(), tasks=tasks)  # type: ignore[arg-type]

    def one_task(round_: int, task: str) -> dict[str, Any]:
        need_ledger()
        view = board.task(round_, task)
        if view is None:
            raise e.UnknownTaskError(f"no task ({round_}, {task!r}) on this node's board")
        return view

    task_path = Path(pattern=ID, description="the task's id")

    @app.get("/market/tasks/{round}/{task}", responses=documented(404))
    def market_task(round: int = Path(ge=0, le=MAX_INTEGER), task: str = task_path) -> api.TaskView:
        return api.TaskView(**one_task(round, task))

    @app.get("/market/tasks/{round}/{task}/outputs", responses=documented(404))
    def task_outputs(
        round: int = Path(ge=0, le=MAX_INTEGER), task: str = task_path
    ) -> api.TaskOutputs:
        """Each replica's claimed output and the one the oracles' quorum attested."""
        view = one_task(round, task)
        verdict = view["verdict"]
        return api.TaskOutputs(
            round=round, task=task, status=view["status"], outputs=view["claims"],
            agreed=verdict["output"] if verdict and verdict["paid"] else None,
        )  # fmt: skip

    @app.post(
        "/market/claims",
        responses=documented(403, 404, 409),
        openapi_extra=json_body(api.ClaimBody),
    )
    async def post_claim(request: Request) -> api.Accepted:
        """A provider's signed outcome claim for one replica of a task."""
        body = await request.body()
        received = now_ms()
        await to_thread.run_sync(accept_claim, body, received)
        return api.Accepted(status="accepted", received_ms=received)

    def accept_claim(body: bytes, received: int) -> None:
        ledger = need_ledger()
        signed = SignedClaim.from_wire(
            parse_json(body, what="the claim", error=e.MalformedMessageError, max_bytes=None)
        )
        claim = signed.claim
        if claim.ledger != ledger.id:
            raise e.WrongLedgerError(f"the claim names ledger {claim.ledger}, this is {ledger.id}")
        signed.verify()
        view = one_task(claim.round, claim.task)
        if view["status"] != "open":
            raise e.AlreadyExistsError(f"task {claim.task!r} is settled: no more claims")
        server = next((a for a in view["assets"] if a["asset"] == claim.asset), None)
        if server is None or server["kind"] != "server":
            raise e.UnauthorizedError(f"{claim.asset!r} is not a server of task {claim.task!r}")
        if server["owner"] != signed.owner:
            raise e.UnauthorizedError(f"{claim.asset!r} belongs to another account")
        if claim.success and claim.output is not None:
            store, _ = need_store()
            if not store.has(claim.output):
                raise e.ContentNotFoundError(
                    f"output {claim.output} is not in this node's store: put it first"
                )
        board.add_claim(signed, received)
        board.add_events([{"kind": "claim_received", "round": claim.round, "task": claim.task,
                           "asset": claim.asset, "success": claim.success}])  # fmt: skip

    @app.post(
        "/market/keys",
        responses=documented(403, 404, 409, 413),
        openapi_extra=json_body(api.GrantBody),
    )
    async def post_grant(request: Request) -> api.Accepted:
        """A requester's signed key grant: its sealed request's keys, sealed to the owner of
        one server of one of its open tasks (`mercat.node.sealing`). The node keeps and
        relays the boxes; it cannot open them."""
        body = await request.body()
        received = now_ms()
        await to_thread.run_sync(accept_grant, body, received)
        return api.Accepted(status="accepted", received_ms=received)

    def accept_grant(body: bytes, received: int) -> None:
        ledger = need_ledger()
        if len(body) > MAX_GRANT_BYTES:
            raise e.BodyTooLargeError(f"a key grant is at most {MAX_GRANT_BYTES} bytes")
        signed = SignedGrant.from_wire(
            parse_json(body, what="the key grant", error=e.MalformedMessageError,
                       max_bytes=MAX_GRANT_BYTES)
        )  # fmt: skip
        grant = signed.grant
        if grant.ledger != ledger.id:
            raise e.WrongLedgerError(f"the grant names ledger {grant.ledger}, this is {ledger.id}")
        signed.verify()
        view = one_task(grant.round, grant.task)
        if view["requester"] != signed.requester:
            raise e.UnauthorizedError(f"task {grant.task!r} serves another requester's request")
        if view["status"] != "open":
            raise e.AlreadyExistsError(f"task {grant.task!r} is settled: no more keys")
        if grant.sealed_parts() != set(view["sealed"]):
            raise e.MalformedMessageError(
                f"task {grant.task!r} seals {sorted(view['sealed']) or 'nothing'}; the grant "
                f"seals keys for {sorted(grant.sealed_parts())}"
            )
        server = next((a for a in view["assets"] if a["asset"] == grant.asset), None)
        if server is None or server["kind"] != "server":
            raise e.UnauthorizedError(f"{grant.asset!r} is not a server of task {grant.task!r}")
        if server["owner"] != grant.recipient:
            raise e.UnauthorizedError(
                f"the keys are sealed to {grant.recipient[:16]}..., not to the owner of "
                f"{grant.asset!r}"
            )
        board.add_grant(signed, received)
        board.add_events([{"kind": "keys_granted", "round": grant.round, "task": grant.task,
                           "asset": grant.asset}])  # fmt: skip

    @app.get("/market/tasks/{round}/{task}/keys", responses=documented(404))
    def task_keys(
        round: int = Path(ge=0, le=MAX_INTEGER),
        task: str = task_path,
        asset: str | None = Query(None, pattern=ID, description="one server's grant"),
    ) -> list[api.GrantBody]:
        """The key grants the task's requester sent, as it signed them: sealed boxes that
        only each server's owner opens."""
        one_task(round, task)
        return [api.GrantBody(**wire) for wire in board.grants(round, task, asset)]

    @app.post(
        "/market/reports",
        responses=documented(403, 404, 409),
        openapi_extra=json_body(api.ReportBody),
    )
    async def post_report(request: Request) -> api.Accepted:
        """An oracle's signed report on a task; the round loop settles once a quorum of
        them agrees, with the reports inline in `SettleTasks`."""
        body = await request.body()
        received = now_ms()
        status = await to_thread.run_sync(accept_report, body, received)
        return api.Accepted(status=status, received_ms=received)

    def accept_report(body: bytes, received: int) -> str:
        ledger = need_ledger()
        signed = SignedReport.from_wire(
            parse_json(body, what="the report", error=e.MalformedMessageError, max_bytes=None)
        )
        report = signed.report
        if report.ledger != ledger.id:
            raise e.WrongLedgerError(f"the report names ledger {report.ledger!r}, not {ledger.id}")
        if signed.oracle not in oracle_set():
            raise e.UnknownOracleError(f"{signed.oracle[:16]}… is not in the oracle set")
        signed.verify()
        view = one_task(report.round, report.task)
        status = "pending" if view["status"] == "open" else "late"
        board.add_report(signed, status, received)
        board.add_events([{"kind": "report_received", "round": report.round,
                           "task": report.task, "oracle": signed.oracle,
                           "success": report.success, "status": status}])  # fmt: skip
        return status

    @app.get("/market/requests", responses=documented(404))
    def market_requests(
        owner: str | None = Query(None, pattern=KEY, description="a requester's public key"),
        status: str | None = Query(None, pattern="^(open|assigned|closed)$"),
        limit: int = page,
    ) -> list[api.RequestView]:
        """Requests (posting order) with their escrow and the tasks that served them."""
        ledger = need_ledger()
        records = ledger.request_records(status, owner=owner, limit=limit)
        return [request_view(ledger, r) for r in records]

    @app.get("/market/requests/{request}", responses=documented(404))
    def market_request(request: str = Path(pattern=ID)) -> api.RequestView:
        ledger = need_ledger()
        records = ledger.request_records(ids=[request])
        if not records:
            raise e.UnknownRequestError(f"no request {request!r} on this ledger")
        return request_view(ledger, records[0])

    def request_view(ledger: Any, record: Any) -> api.RequestView:
        return api.RequestView(
            request=record.request, owner=record.owner, status=record.status,
            round=record.round, served=record.served, open_tasks=record.open_tasks,
            escrow=ledger.escrowed(record.request),
            terms=None if record.terms is None else record.terms.to_wire(),
            tasks=board.tasks(request=record.request, limit=limits.task_page),
        )  # fmt: skip

    @app.get("/market/rounds", responses=documented(404))
    def market_rounds(
        limit: int = page,
        before: int | None = Query(None, ge=0, le=MAX_INTEGER, description="rounds below"),
    ) -> list[api.RoundRecord]:
        """The round history, newest first: phase, counts, clearing prices, token flows
        (base units), removals, and where the time went (seconds)."""
        need_ledger()
        return [api.RoundRecord(**r) for r in board.rounds(limit, before)]

    @app.get("/market/book", responses=documented(404))
    def order_book(limit: int = page) -> api.OrderBook:
        """The order book: open requests with their terms, active assets' offers."""
        ledger = need_ledger()
        requests = [
            {"request": r.request, "owner": r.owner, "escrow": ledger.escrowed(r.request),
             "terms": None if r.terms is None else r.terms.to_wire()}
            for r in ledger.request_records("open", limit=limit)
        ]  # fmt: skip
        offers = [
            {"asset": asset.id, "owner": asset.owner, "stake": asset.stake,
             "offer": offer.to_wire()}
            for asset, offer in ledger.active_offers(limit)
        ]  # fmt: skip
        return api.OrderBook(round=ledger.round(), requests=requests, offers=offers)

    @app.get("/market/providers", responses=documented(404))
    def providers(
        after: str | None = Query(None, pattern=ID, description="assets with a larger id"),
        # The default is the largest page, so that a reader pages with `after` alone (the
        # dashboard, which does not know `task_page`) and one that does not page sees every
        # provider of a market up to `task_page` of them.
        limit: int = Query(
            limits.task_page, ge=1, le=limits.task_page, description="the most assets to return"
        ),
    ) -> list[api.Provider]:
        """Assets by id with their stake, status, and the tasks they served: how many
        settled, failed (did not pay) or were late, and the observed failure rate. A page
        at a time: the next page is `after` the last asset of this one."""
        ledger = need_ledger()
        # A page read by the database, in byte order of ids (the order `after` compares
        # in), with the offers and statistics of its assets alone.
        assets = ledger.assets(after=after, limit=limit)
        if not assets:
            return []
        ids = [asset.id for asset in assets]
        offers = ledger.offers(ids)
        stats = board.asset_stats(ids)
        out = []
        for asset in assets:
            s = stats.get(asset.id, {"settled": 0, "failed": 0, "late": 0})
            offer = offers.get(asset.id)
            out.append(
                api.Provider(
                    asset=asset.id, owner=asset.owner, status=asset.status, stake=asset.stake,
                    kind=None if offer is None else offer.kind,
                    offer=None if offer is None else offer.to_wire(), **s,
                    failure_rate=s["failed"] / s["settled"] if s["settled"] else None,
                )
            )  # fmt: skip
        return out

    @app.get("/market/summary", responses=documented(404))
    def summary() -> api.Summary:
        """The market in a few numbers: tasks, SLA compliance, pool, supply, flows."""
        ledger = need_ledger()
        # The loop's state first: a round may end while the rest is read, and a summary that
        # says "done" must count every task of the last round (read after, they do).
        loop = status_of_loop()
        tasks = board.task_counts()
        rounds, flows = board.round_totals()
        statuses = ledger.asset_statuses()
        return api.Summary(
            round=ledger.round(), rounds=rounds, tasks=tasks,
            sla_compliance=tasks["paid"] / tasks["settled"] if tasks["settled"] else None,
            pool=ledger.pool(), supply=ledger.supply(), unit=ledger.config.unit,
            assets=statuses, flows=flows, reports=board.report_counts(), loop=loop,
        )  # fmt: skip

    @app.get("/market/events/recent", responses=documented(404))
    def recent_events(
        after: int = Query(0, ge=0, le=MAX_INTEGER, description="events with a larger id"),
        limit: int = page,
    ) -> list[api.Event]:
        """The event log after `after`, oldest first (the stream's events, as a list)."""
        need_ledger()
        return [api.Event(**event) for event in board.events(after, limit)]

    @app.get(
        "/market/events",
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
            **documented(404),
        },
        response_class=StreamingResponse,
    )
    async def event_stream(
        request: Request,
        after: int = Query(0, ge=0, le=MAX_INTEGER, description="start after this event id"),
    ) -> StreamingResponse:
        """The event log as server-sent events (`id`, `event`: the kind, `data`: the event
        as JSON), from `after` (or the `Last-Event-ID` header) on; the stream ends after
        `event_stream_seconds` and the client reconnects where it left off."""
        need_ledger()
        header = request.headers.get("last-event-id", "")
        given = plain_decimal(header)
        start = after if given is None else max(after, given)
        streams.take()

        async def stream() -> AsyncIterator[bytes]:
            last = start
            ends = time.monotonic() + limits.event_stream_seconds
            beat = time.monotonic() + HEARTBEAT_SECONDS
            yield b"retry: 2000\n\n"
            while time.monotonic() < ends:
                batch = await to_thread.run_sync(board.events, last, 200)
                for event in batch:
                    last = event["id"]
                    data = json.dumps(jsonable(event), sort_keys=True)
                    yield f"id: {last}\nevent: {event['kind']}\ndata: {data}\n\n".encode()
                if time.monotonic() >= beat:
                    beat = time.monotonic() + HEARTBEAT_SECONDS
                    yield b": keep-alive\n\n"
                if not batch:
                    await anyio.sleep(min(0.5, max(0.0, ends - time.monotonic())))

        return _Stream(stream(), streams.give)


class _Stream(StreamingResponse):
    """An event stream that gives its slot back however it ends (finished, the client gone,
    or cancelled before its first byte: a generator that never started runs no `finally`)."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(
            content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
