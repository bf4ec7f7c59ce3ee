"""The market's dashboard, served by the node: `GET /dashboard`.

A static page (HTML, one script, one style sheet, shipped inside the package under
`mercat/node/dashboard/`: no build step, nothing fetched from elsewhere) that polls the
node's JSON endpoints (`/market/summary`, `/market/rounds`, `/market/providers`,
`/market/book`) every two seconds and follows the event stream (`/market/events`, server-
sent events): rounds and clearing prices, the order book, providers with stake, failure
rate and removals, token flows, SLA compliance, live as the market runs. The page's
Content-Security-Policy lets it load and call nothing but its own node.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Path
from fastapi.responses import Response

from mercat import errors as e
from mercat.node.http_errors import documented

FILES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _read(name: str) -> bytes:
    return (resources.files("mercat.node") / "dashboard" / name).read_bytes()


def install(app: FastAPI) -> None:
    headers = {"Content-Security-Policy": POLICY, "Cache-Control": "no-cache"}

    @app.get(
        "/dashboard",
        responses={200: {"content": {"text/html": {}}, "description": "the dashboard page"}},
        response_class=Response,
    )
    def dashboard_page() -> Response:
        """The market's live dashboard (a page for a browser)."""
        return Response(_read("index.html"), media_type="text/html; charset=utf-8",
                        headers=headers)  # fmt: skip

    @app.get(
        "/dashboard/{name}",
        responses={
            200: {
                "content": {"text/javascript": {}, "text/css": {}},
                "description": "the dashboard's script or style sheet",
            },
            **documented(404),
        },
        response_class=Response,
    )
    def dashboard_file(
        name: str = Path(json_schema_extra={"enum": sorted(FILES)}),
    ) -> Response:
        if name not in FILES:
            raise e.UnknownEndpointError(f"the dashboard has no file {name[:64]!r}")
        return Response(_read(name), media_type=FILES[name], headers=headers)
