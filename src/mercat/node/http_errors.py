"""Every error a node answers is mercat's JSON error, `{"error": "<class>", "detail": "..."}`,
with an HTTP status chosen by the class: errors raised by mercat, requests FastAPI refuses
before an endpoint runs (a query parameter of the wrong type, an unknown path, a method the
path does not take), and failures of the node's own (500, logged, never a traceback).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from mercat import errors as e
from mercat.ledger.store import driver_message

log = logging.getLogger("mercat.node")

# First match wins: the specific classes before the kinds (LookupError, ValueError) they
# also derive from.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (e.BodyTooLargeError, 413),
    (e.WorkTooLargeError, 413),
    (e.BodyTimeoutError, 408),
    (e.RateLimitedError, 429),
    (e.NodeBusyError, 503),
    (e.StoreQuotaError, 507),
    (e.WorkTimeoutError, 504),
    (e.LedgerUnavailableError, 503),
    (e.ContentCorruptedError, 500),
    (e.InternalError, 500),
    (e.BadSignatureError, 403),
    (e.UnauthorizedError, 403),
    (LookupError, 404),
    (e.MalformedMessageError, 422),
    (ValueError, 422),
    (e.NotProvenOptimalError, 409),
    (e.SolverError, 500),
    (e.ProtocolError, 409),
    (e.LedgerError, 409),
)

MEANING = {
    403: "a bad signature, or a signer without the right",
    404: "an unknown account, asset, book, CID, mechanism or path, or a part the node does "
    "not serve",
    405: "a method the path does not take",
    408: "the request body stopped arriving, or took longer than the node allows",
    409: "a ledger rule refuses the operation (funds, stake, a replayed nonce), or a solve "
    "could not prove what the request required",
    413: "a body above the endpoint's limit, or a job needing more memory than the node allows",
    422: "malformed input",
    429: "too many requests (or accounts opened) from this address: see Retry-After",
    500: "the node failed (stored content that fails its hash, a solver fault, a bug)",
    503: "the node is at its limit of requests, uploads being received or jobs, or its "
    "database (ledger or task board) is unreachable; see Retry-After",
    504: "a job ran past the node's time limit and was stopped",
    507: "the content would take the store above its quota",
}


class ErrorBody(BaseModel):
    """The body of every error the node answers."""

    error: str = Field(description="the error's class in mercat.errors, e.g. UnknownAccountError")
    detail: str = Field(description="what was wrong, in one line")


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses, each with ErrorBody."""
    return {status: {"model": ErrorBody, "description": MEANING[status]} for status in statuses}


MAX_DETAIL = 1000  # characters of an error's detail

# Statuses any endpoint may answer: the guard's refusals, malformed input, a failure.
EVERY_ENDPOINT = (408, 413, 422, 429, 500, 503)


def status_of(exc: Exception) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def error_response(exc: Exception, status: int | None = None) -> JSONResponse:
    """The JSON answer for `exc` (with Retry-After when waiting helps)."""
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    detail = str(exc)
    if len(detail) > MAX_DETAIL:  # a message may quote the input, and the input is hostile
        detail = detail[: MAX_DETAIL - 1] + "…"
    return JSONResponse(
        {"error": type(exc).__name__, "detail": detail},
        status_code=status or status_of(exc),
        headers=headers,
    )


def unreachable_database(exc: DBAPIError) -> bool:
    """A database the node cannot reach or use for now (a server down or restarting, a
    dropped connection, SQLite still locked after the ledger's retries), as against a
    statement the database refused: SQLAlchemy's OperationalError and InterfaceError, and
    any error that invalidated its connection."""
    return bool(exc.connection_invalidated) or isinstance(exc, (OperationalError, InterfaceError))


def database_down(exc: DBAPIError) -> e.LedgerUnavailableError:
    """The 503 for an unreachable database: the driver's first line (a host and port at
    most, never a password: SQLAlchemy's URL is not part of it), and a Retry-After."""
    error = e.LedgerUnavailableError(
        f"the node's database is unavailable: {driver_message(exc)}"[:300]
    )
    error.retry_after = DATABASE_RETRY_AFTER  # type: ignore[attr-defined]
    return error


DATABASE_RETRY_AFTER = 5
"""Seconds a client is asked to wait when the node's database is unreachable: a PostgreSQL
server restarting is back within seconds, and the node's own pool reconnects by itself."""


def install(app: FastAPI) -> None:
    """Route every error the app can answer through `error_response`."""

    @app.exception_handler(e.MercatError)
    async def mercat_error(request: Request, exc: e.MercatError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error.get("loc", ()))
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        detail = "; ".join(problems) or "invalid request"
        return error_response(e.InvalidParameterError(detail[:500]))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        status = exc.status_code
        if status in (404, 405):
            method = request.method
            detail = (
                f"{method} is not allowed on {request.url.path}"
                if status == 405
                else f"this node has no endpoint {method} {request.url.path}"
            )
            error: Exception = e.UnknownEndpointError(detail[:300])
        elif status < 500:
            error = e.InvalidParameterError(str(exc.detail)[:300])
        else:
            error = e.InternalError(str(exc.detail)[:300])
        response = error_response(error, status)
        for name, value in (exc.headers or {}).items():  # Allow, for a 405
            response.headers[name] = value
        return response

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if not unreachable_database(exc):
            return await failure(request, exc)
        down = database_down(exc)
        log.warning("%s %s: %s", request.method, request.url.path, down)  # the operator's cue
        return error_response(down)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises `exc` after this answer, so the server logs its traceback;
        # the client gets none of it.
        return error_response(e.InternalError("the node failed on this request; it was logged"))
