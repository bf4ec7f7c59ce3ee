"""The Makefile's targets install what their commands import: `make bench` after `make run`
once stopped at `ModuleNotFoundError: eth_utils`, because the benchmarks need the chain
extras and `make run`'s environment has none."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# mercat's subpackages whose third-party imports come only with an extra (pyproject.toml).
NEEDS_EXTRA = {"mercat.chain": "chain"}


def _extras_installed_by(target: str, venv: Path) -> set[str]:
    """The extras that `make TARGET`'s pip installs name, expanded through self-references
    such as dev = ["mercat[chain]", ...], read from a dry run on a venv that does not exist."""
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    named = set()
    for line in dry.stdout.splitlines():
        if "pip install" in line:
            for group in re.findall(r"\.\[([\w,]+)\]", line):
                named.update(group.split(","))
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    closed, todo = set(), list(named)
    while todo:
        extra = todo.pop()
        if extra in closed:
            continue
        closed.add(extra)
        for requirement in extras.get(extra, []):
            itself = re.match(r"mercat\[([\w,]+)\]", requirement)
            if itself:
                todo.extend(itself.group(1).split(","))
    return closed


def _extras_needed_by(paths: list[Path]) -> set[str]:
    needed = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                for package, extra in NEEDS_EXTRA.items():
                    if name == package or name.startswith(package + "."):
                        needed.add(extra)
    return needed


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_bench_installs_the_extras_the_benchmarks_import(tmp_path):
    needed = _extras_needed_by(sorted((ROOT / "benchmarks").glob("bench_*.py")))
    assert "chain" in needed  # bench_chain.py deploys the contracts
    assert needed <= _extras_installed_by("bench", tmp_path / "venv")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_installs_the_extras_the_tests_import(tmp_path):
    needed = _extras_needed_by(sorted((ROOT / "tests").rglob("*.py")))
    assert needed <= _extras_installed_by("test", tmp_path / "venv")


def test_the_chain_docs_say_how_to_install_the_extras():
    assert "pip install -e '.[chain]'" in (ROOT / "docs" / "chain.md").read_text()
