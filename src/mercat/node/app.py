"""The HTTP API of a marketplace node (seed 002's application layer: task submission, tracking
and payments), over the parts mercat already has.

- `/ledger/...`: submit signed ledger messages (accounts, deposits, stakes, escrow, tasks,
  oracle reports, settlement) and read balances, assets, the journal and the audit. The node
  holds no user key: every change is a message its author signed (`mercat.ledger.Signer`),
  so the HTTP layer adds no trust.
- `/storage/...`: put and get content by CID, and blocks one at a time, each checked against
  its hash (a peer can mirror a node's store over this API and check every byte).
- `/clearing/{mechanism}`: clear a market (docs/market-format.md) with any registered
  mechanism; the answer is `mercat clear --json`'s.
- `/privacy/check`: seed 002's Alg. 2.

Errors are JSON `{"error": class, "detail": message}`: 404 for what does not exist, 403 for a
bad signature or a signer without the right, 409 for a ledger rule that refuses the operation
(funds, stake, replay), 422 for malformed input, 413 for a body above the endpoint's limit,
503 when the ledger's database is down, 500 for stored content that fails its hash. A refused
request changes nothing. Work that blocks (the ledger's SQL, fsyncs, solvers, the accountant)
runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from mercat import errors as e
from mercat import validation as check
from mercat.jsonable import jsonable

MAX_MARKET_BYTES = 16 << 20
MAX_MESSAGE_BYTES = 1 << 20  # a settlement with many oracle reports stays far below
MAX_SMALL_BODY = 64 << 10  # the privacy check's few numbers
SPOOL_BYTES = 8 << 20  # uploads above this go to a temporary file, not memory


class BodyTooLargeError(e.MercatError, ValueError):
    """A request body above the endpoint's limit: refused before it is read to the end."""


_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (BodyTooLargeError, 413),
    (e.LedgerUnavailableError, 503),
    (e.ContentCorruptedError, 500),
    (e.BadSignatureError, 403),
    (e.UnauthorizedError, 403),
    (LookupError, 404),
    (e.MalformedMessageError, 422),
    (ValueError, 422),
    (e.ProtocolError, 409),
    (e.LedgerError, 409),
)


def _status(exc: e.MercatError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def create_app(ledger_url: str | None = None, store_root: Path | str | None = None) -> FastAPI:
    """A node serving the ledger at `ledger_url` and the content store at `store_root`; either
    may be None, and its endpoints then answer 404 saying the node has none."""
    from mercat import __version__

    app = FastAPI(title="mercat marketplace node", version=__version__)
    ledger = None
    if ledger_url is not None:
        from mercat.ledger import Ledger

        ledger = Ledger(ledger_url)
    store = None
    if store_root is not None:
        from mercat.storage.store import ContentStore

        store = ContentStore(store_root)

    @app.exception_handler(e.MercatError)
    async def mercat_error(request: Request, exc: e.MercatError) -> JSONResponse:
        return JSONResponse(
            {"error": type(exc).__name__, "detail": str(exc)}, status_code=_status(exc)
        )

    def need_ledger():  # type: ignore[no-untyped-def]
        if ledger is None:
            raise _NotServed("this node serves no ledger (start it with --ledger URL)")
        return ledger

    def need_store():  # type: ignore[no-untyped-def]
        if store is None:
            raise _NotServed("this node serves no content store (start it with --store DIR)")
        return store

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"version": __version__, "ledger": ledger is not None, "store": store is not None}

    # --- ledger ----------------------------------------------------------------------------

    @app.post("/ledger/messages")
    async def submit(request: Request) -> dict[str, Any]:
        from mercat.ledger.messages import SignedMessage

        target = need_ledger()
        text = (await _body(request, MAX_MESSAGE_BYTES)).decode("utf-8", "replace")
        message = SignedMessage.from_json(text)
        # The ledger blocks (SQL, retries on a busy database): off the event loop, so one
        # slow submission does not stall every other request.
        return jsonable(await to_thread.run_sync(target.submit, message))

    @app.get("/ledger/accounts")
    def accounts() -> list[dict[str, Any]]:
        return [
            {"account": account, "role": role, "available": amount}
            for account, role, amount in need_ledger().accounts()
        ]

    @app.get("/ledger/balance/{book:path}")
    def balance(book: str) -> dict[str, Any]:
        return {"book": book, "balance": need_ledger().balance(book)}

    @app.get("/ledger/assets")
    def assets() -> list[dict[str, Any]]:
        return jsonable(need_ledger().assets())

    @app.get("/ledger/journal")
    def journal(limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
        if limit < 1 or after < 0:
            raise e.InvalidParameterError(
                f"limit must be >= 1 and after >= 0, got {limit}, {after}"
            )
        return jsonable(need_ledger().journal(limit=limit, after=after))

    @app.get("/ledger/verify")
    def verify() -> dict[str, Any]:
        report = need_ledger().verify()
        return {**jsonable(report), "ok": report.ok}

    # --- storage ---------------------------------------------------------------------------

    @app.post("/storage/content")
    async def put_content(request: Request) -> dict[str, Any]:
        target = need_store()
        # Spooled: a 200 MB model goes through a temporary file, not memory.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            async for part in request.stream():
                body.write(part)
            body.seek(0)
            cid = await to_thread.run_sync(target.put_stream, body)  # fsyncs: off the loop
        return {"cid": cid, "bytes": target.stat(cid).size}

    @app.get("/storage/content/{cid}")
    def get_content(cid: str) -> StreamingResponse:
        source = need_store()
        info = source.stat(cid)  # 404 or 422 before any byte is sent
        # Blocks are checked as they stream; one that fails its hash cuts the body short of
        # Content-Length, so a client cannot take a truncated body for the content.
        return StreamingResponse(
            source.iter_content(info.cid),
            media_type="application/octet-stream",
            headers={"Content-Length": str(info.size), "X-Content-CID": info.cid},
        )

    @app.get("/storage/stat/{cid}")
    def stat(cid: str) -> dict[str, Any]:
        return jsonable(need_store().stat(cid))

    @app.put("/storage/blocks/{cid}")
    async def put_block(cid: str, request: Request) -> dict[str, Any]:
        from mercat.storage.store import MAX_CHUNK_SIZE

        target = need_store()
        data = await _body(request, MAX_CHUNK_SIZE)
        await to_thread.run_sync(target.put_block, cid, data)
        return {"cid": cid, "bytes": len(data)}

    @app.get("/storage/blocks/{cid}")
    def get_block(cid: str) -> Response:
        return Response(need_store().read_block(cid), media_type="application/octet-stream")

    # --- clearing and privacy --------------------------------------------------------------

    @app.post("/clearing/{mechanism}")
    async def clear(mechanism: str, request: Request, seed: int = 0) -> dict[str, Any]:
        from mercat.clearing import registry
        from mercat.clearing.report import clearing_report, configure
        from mercat.market.market_io import market_from_dict

        mechanism_class = registry.get(mechanism)
        check.integer("seed", seed, 0)
        data = _json(await _body(request, MAX_MARKET_BYTES))
        if not isinstance(data, dict) or "market" not in data:
            raise e.InvalidMarketError('the body must be {"market": {...}, "options": {...}}')
        options = data.get("options") or {}
        if not isinstance(options, dict):
            raise e.InvalidParameterError("options must be an object of mechanism keywords")
        market = market_from_dict(data["market"])
        mechanism_instance = configure(mechanism_class, options)
        result = await to_thread.run_sync(lambda: mechanism_instance.clear(market, seed=seed))
        return jsonable(clearing_report(market, result, "request"))

    @app.post("/privacy/check")
    async def privacy_check(request: Request) -> dict[str, Any]:
        from mercat.privacy.accountant import GaussianRuns, check_differential_privacy

        data = _json(await _body(request, MAX_SMALL_BODY))
        if not isinstance(data, dict):
            raise e.InvalidParameterError("the body must be a JSON object")
        try:
            runs = GaussianRuns(
                data["noise_multiplier"], data.get("rounds", 1), data.get("sampling_rate", 1.0)
            )
            epsilon, delta = data["epsilon"], data.get("delta", 1e-5)
        except KeyError as missing:
            raise e.InvalidParameterError(f"missing field {missing}") from None
        accountant = data.get("accountant", "auto")
        verdict = await to_thread.run_sync(
            lambda: check_differential_privacy(runs, epsilon, delta, accountant)
        )
        return {**jsonable(verdict), "compliant": verdict.compliant}

    return app


class _NotServed(e.MercatError, LookupError):
    """The node was started without the part this endpoint needs."""


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes `limit` bytes (a client cannot make the
    node buffer an unbounded body)."""
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise BodyTooLargeError(f"request body above {limit} bytes is refused")
        parts.append(part)
    return b"".join(parts)


def _json(body: bytes) -> Any:
    """The body's JSON value: nested at most `mercat.untrusted.MAX_DEPTH` levels (deeper
    bodies ended in a RecursionError), its size already bounded by `_body`."""
    from mercat.untrusted import parse_json

    return parse_json(body, what="the body", error=e.InvalidParameterError, max_bytes=None)
