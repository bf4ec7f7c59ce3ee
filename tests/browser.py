"""Chromium for the browser tests (the dashboard's, the report's): Debian's chromium driven
by Playwright, never Playwright's own download. A test module imports `sync_api` from here
(which skips the module where Playwright is missing) and uses `launch_chromium` in its
`browser` fixture; `screenshot_dir` is where a screenshot is kept for a person to look at
(`.ci/run` sets MERCAT_SCREENSHOT_DIR; elsewhere the test's tmp dir)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')"
)
CHROMIUM = os.environ.get("MERCAT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def launch_chromium() -> Iterator[Any]:
    """A started Chromium (for a module-scoped fixture to yield from), or the test skipped
    with the reason where there is none or it does not start."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)")
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except sync_api.Error as exc:
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


def screenshot_dir(tmp_path: Path) -> Path:
    kept = os.environ.get("MERCAT_SCREENSHOT_DIR")
    folder = Path(kept) if kept else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder
