"""Every example in examples/ runs as written, seeded (the examples assert their own
invariants; here we check what they return)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("mechanism", ["optimal", "vcg", "collective"])
def test_a_whole_market_on_sqlite(tmp_path, mechanism):
    result = _load("market_on_sqlite").main(mechanism, str(tmp_path))
    assert result["tasks"] == 40  # 20 rounds, two jobs each, every one served and settled
    assert 0 < result["paid"] <= result["tasks"]
    if mechanism == "vcg":
        # capacity exceeds demand: no bidder's presence costs another anything, so every
        # Clarke payment is 0, and the one server that fits everything takes every task
        assert sum(result["requesters_spent"].values()) == 0
        return
    assert sum(result["providers_earned"].values()) > 0
    # the failure-prone server lost more stake than the reliable one
    assert result["stakes_after"]["h100"] < result["stakes_after"]["a100"]


def test_every_example_is_tested():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    assert scripts <= {"market_on_sqlite"}, f"examples without a test: {scripts}"
