"""The HTTP API of a marketplace node (seed 002's application layer: task submission, tracking
and payments), over the parts mercat already has.

- `/ledger/...`: submit signed ledger messages (accounts, deposits, stakes, escrow, tasks,
  oracle reports, settlement) and read balances, assets, the journal and the audit. The node
  holds no user key: every change is a message its author signed (`mercat.ledger.Signer`),
  so the HTTP layer adds no trust.
- `/storage/...`: put and get content by CID, and blocks one at a time, each checked against
  its hash (a peer can mirror a node's store over this API and check every byte).
- `/market/...`: the live market (`mercat.node.market_api`): tasks by assignee and by
  requester, providers' signed outcome claims, oracles' signed reports, requests, the round
  history, the order book, providers' stakes and failure rates, the event stream (SSE);
  `/dashboard` shows it in a browser (`mercat.node.dashboard`). Started with the
  operator's key, the node also runs the market's round loop (`mercat.node.round_loop`):
  the one key it holds is the operator's, and it signs only what the ledger lets an
  operator sign (rounds, tasks within owners' terms, settlements on oracles' reports).
- `/clearing/{mechanism}`: clear a market (docs/market-format.md) with any registered
  mechanism; the answer is `mercat clear --json`'s.
- `/privacy/check`: seed 002's Alg. 2.

What protects the node is in one place per kind, so that an endpoint added here gets it
without asking: `guard.NodeGuard` (rate, requests in flight, body limits and timeouts, for
every request), `workers.WorkerPool` (heavy work in worker processes, bounded in number,
queue, time and memory), `network_options` (the solver options a client may set),
`quota.StoreQuota` and `limits.AccountOpenings`; `limits.NodeLimits` holds every bound.
Errors are mercat's JSON errors with a status by kind (`http_errors`). A refused request
changes nothing. Work that blocks runs in worker threads or processes, never on the event
loop.
"""

from __future__ import annotations

import pathlib
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from anyio import to_thread
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from mercat import errors as e
from mercat.identity import Keypair
from mercat.jsonable import jsonable
from mercat.node import dashboard, http_errors, jobs, market_api
from mercat.node import schemas as api
from mercat.node.board import TaskBoard
from mercat.node.guard import NodeGuard
from mercat.node.http_errors import EVERY_ENDPOINT, documented
from mercat.node.limits import AccountOpenings, Clock, NodeLimits, client_key
from mercat.node.quota import StoreQuota, Unmetered
from mercat.node.round_loop import LoopSettings, RoundLoop
from mercat.node.workers import WorkerPool

SPOOL_BYTES = 8 << 20  # uploads above this go to a temporary file, not memory
MAX_INTEGER = 2**63 - 1  # the ledger's SQL integers


def create_app(
    ledger_url: str | None = None,
    store_root: pathlib.Path | str | Any = None,
    *,
    limits: NodeLimits | None = None,
    clock: Clock = time.monotonic,
    board: pathlib.Path | str | None = None,
    operator: Keypair | None = None,
    market: LoopSettings | None = None,
) -> FastAPI:
    """A node serving the ledger at `ledger_url` and the content store at `store_root` (a
    directory, or a store object such as `mercat.storage.kubo.KuboStore`); either may be
    None, and its endpoints then answer 404 saying the node has none. `limits`: what the
    node allows (`NodeLimits()` by default); `clock`: the time of the rate limits and of
    the whole-body deadline (tests drive it).

    The live market (`/market/...`, the dashboard) keeps its task board at `board`: a SQLite
    file's path, or a database URL (`sqlite:///board.db`, `postgresql+psycopg://...`), in
    memory if None (`mercat.node.board.TaskBoard`). With the operator's key (`operator`),
    the node runs the market's round loop (`mercat.node.round_loop`) with `market`'s
    settings while it serves."""
    from mercat import __version__

    limits = NodeLimits() if limits is None else limits
    ledger = None
    if ledger_url is not None:
        from mercat.ledger import Ledger

        ledger = Ledger(ledger_url)
    if operator is not None and ledger is None:
        raise e.InvalidParameterError("a round loop needs a ledger (--ledger URL)")
    if operator is not None and ledger is not None and operator.public != ledger.config.operator:
        ledger.close()
        raise e.UnknownAccountError("the operator key given is not this ledger's operator")
    try:
        task_board = TaskBoard(board)
    except BaseException:
        if ledger is not None:
            ledger.close()
        raise
    loop: RoundLoop | None = None
    store = quota = None
    if store_root is not None:
        from mercat.storage.content import BlockContent
        from mercat.storage.store import ContentStore

        if isinstance(store_root, BlockContent):  # a store object: an IPFS daemon's
            store, quota = store_root, Unmetered()
        else:
            store = ContentStore(store_root)
            quota = StoreQuota(pathlib.Path(store_root), limits.store_quota_bytes)
    pool = WorkerPool(
        limits.workers, limits.work_queue, limits.work_seconds, limits.work_memory_bytes
    )
    openings = AccountOpenings(limits, clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal loop
        if operator is not None and ledger is not None:
            loop = RoundLoop(ledger, operator, task_board, market or LoopSettings())
            app.state.loop = loop
            loop.start()
        try:
            yield
        finally:
            if loop is not None:
                await to_thread.run_sync(loop.close)  # the stage in progress ends first
            pool.close()  # a solve in progress is killed, not waited for
            if ledger is not None:
                ledger.close()
            task_board.close()

    app = FastAPI(
        title="mercat marketplace node",
        version=__version__,
        lifespan=lifespan,
        responses=documented(*EVERY_ENDPOINT),
    )
    app.state.limits, app.state.pool, app.state.quota = limits, pool, quota
    app.state.board, app.state.loop = task_board, None
    http_errors.install(app)
    app.add_middleware(NodeGuard, limits=limits, router=app.router, clock=clock)

    def need_ledger():  # type: ignore[no-untyped-def]
        if ledger is None:
            raise _NotServed("this node serves no ledger (start it with --ledger URL)")
        return ledger

    def need_store():  # type: ignore[no-untyped-def]
        if store is None or quota is None:
            raise _NotServed("this node serves no content store (start it with --store DIR)")
        return store, quota

    @app.get("/health")
    def health() -> api.Health:
        return api.Health(version=__version__, ledger=ledger is not None, store=store is not None)

    # --- ledger ----------------------------------------------------------------------------

    @app.post(
        "/ledger/messages",
        responses=documented(403, 404, 409),
        openapi_extra=api.json_body(api.SignedMessageBody),
    )
    async def submit(request: Request) -> api.Receipt:
        from mercat.ledger.messages import OpenAccount, SignedMessage, parse

        target = need_ledger()
        text = (await request.body()).decode("utf-8", "replace")

        def read() -> tuple[SignedMessage, bool]:
            message = SignedMessage.from_json(text)
            return message, isinstance(parse(message).op, OpenAccount)

        message, opens_account = await to_thread.run_sync(read)
        if opens_account:  # free of tokens: rate-limited instead (limits.AccountOpenings)
            openings.admit(client_key(request.scope.get("client")))
        # The ledger blocks (SQL, retries on a busy database): off the event loop, so one
        # slow submission does not stall every other request.
        return api.Receipt(**jsonable(await to_thread.run_sync(target.submit, message)))

    @app.get("/ledger/info", responses=documented(404))
    def ledger_info() -> dict[str, Any]:
        """What a client needs to sign for this ledger: its id, the operator, the rules."""
        target = need_ledger()
        config = target.config
        return {
            "ledger_id": config.ledger_id,
            "operator": config.operator,
            "unit": config.unit,
            "quorum": config.quorum,
            "unstake_delay_rounds": config.unstake_delay_rounds,
            "min_stake": config.min_stake,
            "rule": jsonable(config.rule),
            "round": target.round(),
        }

    @app.get("/ledger/offers", responses=documented(404))
    def offers() -> dict[str, Any]:
        """Every asset's current offer, as its owner signed it."""
        return {asset: offer.to_wire() for asset, offer in need_ledger().offers().items()}

    @app.get("/ledger/requests", responses=documented(404))
    def requests(
        status: Literal["open", "assigned", "closed"] | None = Query(None),
    ) -> list[dict[str, Any]]:
        """Requests with their signed terms and where they are in their life cycle."""
        return [
            {
                "request": r.request, "owner": r.owner, "status": r.status, "round": r.round,
                "served": r.served, "open_tasks": r.open_tasks,
                "terms": None if r.terms is None else r.terms.to_wire(),
            }
            for r in need_ledger().request_records(status)
        ]  # fmt: skip

    @app.get("/ledger/tasks", responses=documented(404))
    def tasks(
        round: int | None = Query(None, ge=0, le=MAX_INTEGER),
        status: Literal["open", "settled"] | None = Query(None),
    ) -> list[dict[str, Any]]:
        """Tasks with their terms (assets, payouts, charge) and verdicts, by round and id."""
        return jsonable(need_ledger().tasks(round, status))

    @app.get("/ledger/accounts", responses=documented(404))
    def accounts() -> list[api.Account]:
        return [
            api.Account(account=account, role=role, available=amount)
            for account, role, amount in need_ledger().accounts()
        ]

    @app.get("/ledger/balance/{book:path}", responses=documented(404))
    def balance(book: str) -> api.Balance:
        return api.Balance(book=book, balance=need_ledger().balance(book, must_exist=True))

    @app.get("/ledger/assets", responses=documented(404))
    def assets() -> list[api.Asset]:
        return [api.Asset(**jsonable(asset)) for asset in need_ledger().assets()]

    @app.get("/ledger/journal", responses=documented(404))
    def journal(
        limit: int = Query(100, ge=1, le=limits.journal_page, description="entries to return"),
        after: int = Query(0, ge=0, le=MAX_INTEGER, description="entries with a larger id"),
    ) -> list[api.JournalEntry]:
        entries = need_ledger().journal(limit=limit, after=after)
        return [api.JournalEntry(**jsonable(entry)) for entry in entries]

    @app.get("/ledger/verify", responses=documented(404, 504))
    async def verify() -> api.Audit:
        # The audit re-reads the whole journal and checks every signature: heavy work, so it
        # takes a worker like a solve does.
        target = need_ledger()
        return api.Audit(**await pool.call(jobs.audit_ledger, target.url))

    # --- storage ---------------------------------------------------------------------------

    @app.post(
        "/storage/content",
        responses=documented(507),
        openapi_extra=api.bytes_body("the content; spooled to a temporary file above 8 MiB"),
    )
    async def put_content(request: Request) -> api.Stored:
        target, room = need_store()
        # Spooled: a 200 MB model goes through a temporary file, not memory. The guard
        # bounds its size, and the bytes of all uploads being received (`upload_bytes`);
        # the quota refuses it as soon as what arrived cannot fit.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            size = 0
            async for part in request.stream():
                size += len(part)
                room.check(size)
                await to_thread.run_sync(body.write, part)
            body.seek(0)

            def put() -> str:
                with room.holding(size):
                    return target.put_stream(body)  # fsyncs: off the loop

            cid = await to_thread.run_sync(put)
        return api.Stored(cid=cid, bytes=size)

    @app.get(
        "/storage/content/{cid}",
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "the content"},
            **documented(404),
        },
        response_class=StreamingResponse,
    )
    def get_content(cid: str) -> StreamingResponse:
        source, _ = need_store()
        info = source.stat(cid)  # 404 or 422 before any byte is sent
        # Blocks are checked as they stream; one that fails its hash cuts the body short of
        # Content-Length, so a client cannot take a truncated body for the content.
        return StreamingResponse(
            source.iter_content(info.cid),
            media_type="application/octet-stream",
            headers={"Content-Length": str(info.size), "X-Content-CID": info.cid},
        )

    @app.get("/storage/stat/{cid}", responses=documented(404))
    def stat(cid: str) -> api.ContentStat:
        source, _ = need_store()
        return api.ContentStat(**jsonable(source.stat(cid)))

    @app.put(
        "/storage/blocks/{cid}",
        responses=documented(404, 507),
        openapi_extra=api.bytes_body("one block; stored only if it hashes to the CID"),
    )
    async def put_block(cid: str, request: Request) -> api.Stored:
        target, room = need_store()
        data = await request.body()

        def put() -> None:
            with room.holding(len(data)):
                target.put_block(cid, data)

        await to_thread.run_sync(put)
        return api.Stored(cid=cid, bytes=len(data))

    @app.get(
        "/storage/blocks/{cid}",
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "the block"},
            **documented(404),
        },
        response_class=Response,
    )
    def get_block(cid: str) -> Response:
        source, _ = need_store()
        return Response(source.read_block(cid), media_type="application/octet-stream")

    # --- the live market and its dashboard ------------------------------------------------

    market_api.install(app, need_ledger, need_store, task_board, limits, lambda: loop)
    dashboard.install(app)

    # --- clearing and privacy --------------------------------------------------------------

    @app.post(
        "/clearing/{mechanism}",
        responses=documented(404, 409, 504),
        openapi_extra=api.json_body(api.ClearingRequest),
    )
    async def clear(
        request: Request,
        mechanism: str = Path(
            description="a registered mechanism (docs/mechanisms.md)",
            json_schema_extra={"enum": list(mechanism_names())},
        ),
        seed: int = Query(0, ge=0, le=MAX_INTEGER, description="the mechanism's random seed"),
    ) -> api.ClearingAnswer:
        from mercat.clearing import registry

        registry.get(mechanism)  # an unknown name is a 404 before the body is read
        body = await request.body()
        answer = await pool.call(jobs.clear_market, mechanism, body, seed, limits)
        return api.ClearingAnswer(**answer)

    @app.post(
        "/privacy/check",
        responses=documented(504),
        openapi_extra=api.json_body(api.PrivacyRequest),
    )
    async def privacy_check(request: Request) -> api.PrivacyVerdict:
        body = await request.body()
        return api.PrivacyVerdict(**await pool.call(jobs.check_privacy, body))

    return app


def mechanism_names() -> tuple[str, ...]:
    from mercat.clearing import registry

    return tuple(registry.names())


class _NotServed(e.MercatError, LookupError):
    """The node was started without the part this endpoint needs."""
