"""The dashboard in a real browser: Chromium (Debian's, `apt-get install chromium`) driven by
Playwright watches a live market on loopback. The page is opened before any participant
starts, so everything it ends up showing (rounds, prices, providers and their stakes, the
order book's offers, the event stream) arrived while it was open. It loads nothing from
anywhere but its node, logs no error, and its screenshot is drawn (charts with colour, not
a blank page). Skipped, with the reason, where Playwright or Chromium cannot be had;
`.ci/run` installs Chromium."""

from __future__ import annotations

import io
import re

import pytest

from mercat.node.genesis import DevnetSetup
from mercat.node.local_market import LocalMarket
from tests.browser import launch_chromium, screenshot_dir, sync_api

pytestmark = pytest.mark.slow

expect = sync_api.expect
ROUNDS = 3


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


def _text(page, selector: str) -> str:
    return page.inner_text(selector).strip()


def test_the_dashboard_shows_a_live_market_as_it_runs(browser, tmp_path):
    setup = DevnetSetup(providers=2, servers_per_provider=1, oracles=3, requesters=2,
                        rounds=ROUNDS, per_round=1, round_seconds=0.0, sample_rate=0.0,
                        failure_prone=0.5, seed=5)  # fmt: skip
    market = LocalMarket(setup, tmp_path / "market")
    (tmp_path / "market").mkdir()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requested, problems = [], []
    page.on("request", lambda r: requested.append(r.url))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    try:
        market.start(participants=False)
        page.goto(f"{market.url}/dashboard")
        # The first poll: an idle market, and the event stream connected.
        expect(page.locator("body")).to_have_attribute("data-updated", re.compile(r"\d+"),
                                                        timeout=30_000)  # fmt: skip
        assert _text(page, "#card-rounds") == "0"
        assert page.locator("#rounds tbody tr").count() == 0
        expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=30_000)
        market.start_participants()
        # Everything after this line reaches the page while it stays open.
        expect(page.locator("#loop-state")).to_have_text("done", timeout=300_000)
        summary = market.client().summary()
        polled = page.locator("body").get_attribute("data-updated")
        # One more poll: the page holds the final state.
        expect(page.locator("body")).not_to_have_attribute("data-updated", polled or "",
                                                            timeout=30_000)  # fmt: skip
        assert _text(page, "#card-rounds") == str(ROUNDS)
        rounds, providers = market.client().rounds(), market.client().get_json("/market/providers")
        settled, open_ = summary["tasks"]["settled"], summary["tasks"]["open"]
        assert settled > 0 and open_ == 0
        assert _text(page, "#card-tasks") == f"{settled} / {open_}"
        assert _text(page, "#loop-state") == "done" and _text(page, "#round") == str(ROUNDS)
        assert page.locator("#rounds tbody tr").count() == len(rounds) == ROUNDS
        first = page.locator("#rounds tbody tr").first.locator("td")
        assert first.nth(0).inner_text() == str(rounds[0]["round"])  # newest first
        assert first.nth(1).inner_text() == "closed"
        assert _text(page, "#card-price") != "–"
        assert page.locator("#providers tbody tr").count() == len(providers)
        stakes = page.locator("#providers tbody tr td:nth-child(5)").all_inner_texts()
        assert all(s != "–" for s in stakes)
        assert page.locator("#book-offers tbody tr").count() > 0
        assert "%" in _text(page, "#card-sla")
        # Events streamed in: every round's closing among them.
        events = page.locator("#events li").all_inner_texts()
        assert sum(e.startswith("round_closed") for e in events) == ROUNDS
        assert any(e.startswith("task_settled") for e in events)
        # The charts are drawn: a bar per round and the price line.
        assert page.locator("#chart-prices rect").count() >= ROUNDS
        assert page.locator("#chart-prices polyline").count() == 1
        assert page.locator("#chart-flows rect").count() >= ROUNDS
        shot = screenshot_dir(tmp_path) / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        _assert_drawn(shot.read_bytes(), page.locator("#chart-prices").screenshot())
    finally:
        page.close()
        market.close()
    assert problems == []
    assert requested and all(url.startswith(market.url + "/") for url in requested), requested


PAGE = 50  # the node's task_page here: the dashboard asks for 40 rounds and 50 offers


def test_the_dashboard_pages_through_the_providers_and_says_when_it_stops(browser, tmp_path):
    """More providers than one page are all shown; a node listing more than the dashboard's
    bound of pages is shown in part, and the page says so."""
    import json
    import threading
    from urllib.parse import parse_qs, urlparse

    import uvicorn

    from mercat.ledger import AddAsset, Ledger, Signer
    from mercat.node.app import create_app
    from mercat.node.client import wait_until_up
    from mercat.node.limits import NodeLimits
    from mercat.node.local_market import free_port
    from tests.node.market_fixtures import small_market

    market = small_market(tmp_path, open_task=False)  # gpu-1 and gpu-2
    ledger = Ledger(market.url, durable=False)
    alice = Signer(market.alice, ledger.id)
    for i in range(3, PAGE + 11):  # 60 assets: a full page and part of a second
        ledger.submit(alice.sign(AddAsset(asset=f"gpu-{i:03d}", stake=150)))
    ledger.close()
    app = create_app(market.url, tmp_path / "store", board=tmp_path / "board.db",
                     limits=NodeLimits(task_page=PAGE))  # fmt: skip
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    try:
        wait_until_up(f"http://127.0.0.1:{port}", 60)
        page.goto(f"http://127.0.0.1:{port}/dashboard")
        rows = page.locator("#providers tbody tr")
        expect(rows).to_have_count(PAGE + 10, timeout=30_000)
        shown = page.locator("#providers tbody tr td:first-child").all_inner_texts()
        assert shown == sorted(["gpu-1", "gpu-2", *(f"gpu-{i:03d}" for i in range(3, PAGE + 11))])
        expect(page.locator("#providers-more")).to_be_hidden()

        asked: list[str] = []

        def endless(route) -> None:  # a node that lists providers without end
            after = parse_qs(urlparse(route.request.url).query).get("after", ["x-00000"])[0]
            asked.append(after)
            first = int(after.split("-")[1]) + 1
            body = [{"asset": f"x-{n:05d}", "owner": "k" * 64, "status": "active", "stake": 1,
                     "kind": "server", "offer": None, "settled": 0, "failed": 0, "late": 0,
                     "failure_rate": None} for n in range(first, first + PAGE)]  # fmt: skip
            route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

        page.route("**/market/providers*", endless)
        expect(rows).to_have_count(10 * PAGE, timeout=30_000)
        note = page.locator("#providers-more")
        expect(note).to_be_visible()
        assert f"first {10 * PAGE} providers" in note.inner_text()
        assert "after=x-00500" in note.inner_text()
        # ten pages a refresh, never more: the last one asked for is after the ninth page
        assert max(int(after.split("-")[1]) for after in asked) == 9 * PAGE
    finally:
        page.close()
        server.should_exit = True
        thread.join(30)
    assert problems == []


def _assert_drawn(page_png: bytes, chart_png: bytes) -> None:
    """The page's screenshot is a page (large, not one colour) and the price chart holds
    the price line's and the bars' colours, not only the background and the grid."""
    from PIL import Image

    full = Image.open(io.BytesIO(page_png)).convert("RGB")
    assert full.width == 1280 and full.height >= 900
    assert len(full.getcolors(1 << 20) or []) > 50
    chart = Image.open(io.BytesIO(chart_png)).convert("RGB")
    colours = chart.getcolors(1 << 20) or []
    saturated = sum(count for count, (r, g, b) in colours if max(r, g, b) - min(r, g, b) > 60)
    assert saturated > 200, "the price chart has no coloured marks"
