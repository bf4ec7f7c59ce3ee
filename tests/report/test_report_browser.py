"""The reproduction report in a real browser: Chromium (Debian's, `apt-get install chromium`)
driven by Playwright opens a quick report of a few cheap experiments at 1400×900, as a
researcher would. No table runs off the page, every figure loads, the claims summary and each
section's claims table render, and the page logs no error. The full-page screenshot is kept
in `$MERCAT_SCREENSHOT_DIR` when set (else the test's tmp dir) for a person to look at.
Skipped, with the reason, where Playwright or Chromium cannot be had; `.ci/run` installs
Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.browser import launch_chromium, screenshot_dir

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 1400, 900


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


def _quick_report(out: Path) -> Path:
    """Table I (the widest table), Fig. 5 and Fig. 3 at small sizes: a few seconds. The last
    one goes through the command line, so that the header is the command's."""
    from mercat.cli import app
    from mercat.report import experiments as registry

    context = registry.ExperimentContext(out_dir=out, quick=True, runs=4, show_progress=False)
    for name in ("table1", "fig5"):
        registry.run_experiment(name, context)
    result = CliRunner().invoke(app, ["reproduce", "fig3", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / "index.html"


def test_the_report_reads_at_1400_pixels(browser, tmp_path):
    index = _quick_report(tmp_path / "report")
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    problems = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    try:
        page.goto(index.as_uri())
        page.wait_for_load_state("load")
        # The header names the command that made the report.
        assert "mercat reproduce fig3 --quick" in page.inner_text("dl.run")
        # The summary counts the claims of all three sections and links to them.
        summary = page.locator("#claims-summary")
        assert summary.is_visible()
        for key in ("table1", "fig5", "fig3"):
            assert summary.locator(f'a[href="#{key}"]').count() >= 1
            claims = page.locator(f"#{key} table.claims tbody tr")
            assert claims.count() >= 3, key
            assert claims.first.is_visible()
        # The page as a reader first sees it (long tables folded), kept for a person to see.
        shot = screenshot_dir(tmp_path) / "report_1400.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        # Folded tables open; then nothing may stick out of the 1400 px viewport.
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        overflow = page.evaluate(
            """() => {
                const width = document.documentElement.clientWidth;
                const out = [];
                if (document.documentElement.scrollWidth > width) out.push('the page scrolls');
                document.querySelectorAll('table').forEach((t, i) => {
                    const box = t.parentElement.getBoundingClientRect();
                    const right = Math.min(t.getBoundingClientRect().right, box.right);
                    if (right > width) out.push(`table ${i} ends at ${right}px`);
                    if (t.closest('section') && t.closest('section').id === 'table1'
                        && t.scrollWidth > t.parentElement.clientWidth)
                        out.push(`Table I needs ${t.scrollWidth}px in a ${
                                  t.parentElement.clientWidth}px box`);
                });
                return out;
            }"""
        )
        assert overflow == []
        images = page.evaluate(
            "[...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        assert len(images) >= 4  # Table I's, Fig. 5a and 5b, Fig. 3
        assert all(done and width > 0 for _, done, width in images), images
    finally:
        page.close()
    assert problems == []
