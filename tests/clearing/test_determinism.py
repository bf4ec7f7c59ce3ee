"""`mercat clear --json` prints the same bytes for the same inputs, whatever PYTHONHASHSEED.

Python randomises the order of sets of strings per process. Welfare used to be summed over
the allocation's served requests and used nodes (sets), so its last bits changed from run to
run, and the posted-price best response added its MILP columns in set order, so HiGHS
picked a different one of several equally good allocations. Each process below clears every
market with every mechanism that takes it, through the command line; the outputs of
processes with different hash seeds must be identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mercat.market.generators import (
    double_auction_market,
    random_market,
    running_example,
    standard_auction_market,
)
from mercat.market.market_io import dump_market

MARKETS = {
    "random": (lambda: random_market(11, 8, 3), ["optimal", "posted-price", "collective"]),
    "random-divisible": (lambda: random_market(12, 8, 3, divisible=True), ["optimal"]),
    "standard-auction": (
        lambda: standard_auction_market(5, 10, 3),  # ties: posted-price depended on set order
        ["optimal", "vcg", "posted-price", "collective"],
    ),
    "double-auction": (
        lambda: double_auction_market(14, 30, 4),
        ["optimal", "double-auction", "double-auction:random"],
    ),
    "running-example": (running_example, ["optimal", "posted-price", "collective"]),
}

# One process per hash seed runs the command line's own entry point for every case (a
# process per case would spend the test's time importing numpy, scipy and HiGHS).
DRIVER = """
import contextlib, io, json, sys
from mercat.cli import app
outputs = {}
for name, args in json.loads(sys.argv[1]).items():
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        app(args, standalone_mode=False)
    outputs[name] = buffer.getvalue()
sys.stdout.write(json.dumps(outputs))
"""


def cases(folder: Path) -> dict[str, list[str]]:
    table = {}
    for name, (make, mechanisms) in MARKETS.items():
        path = folder / f"{name}.json"
        dump_market(make(), path)
        for mechanism in mechanisms:
            mechanism, _, tie_break = mechanism.partition(":")
            args = ["clear", "--json", "-m", mechanism, "--seed", "5", str(path)]
            if tie_break:
                args += ["-O", f"tie_break={tie_break}"]
            table[f"{name} {mechanism}{tie_break}"] = args
    return table


@pytest.mark.slow
def test_clear_json_is_byte_identical_across_hash_seeds(tmp_path):
    table = cases(tmp_path)
    runs = []
    for hash_seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, json.dumps(table)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout))
    first = runs[0]
    assert set(first) == set(table)
    for name, output in first.items():
        report = json.loads(output)
        assert report["checks"]["valid"], name
        assert "seconds" not in report["diagnostics"], name  # wall-clock times only on request
        for other in runs[1:]:
            assert other[name] == output, f"{name}: differs between hash seeds"
