"""Help prints its text as written, lists choices from the registries (plug-ins included),
and `mercat --help` imports no registry."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mercat.cli import app
from mercat.cli._options import CHOICE_SOURCES


def helped(*args: str) -> str:
    """The help of `mercat ARGS`, as one line of words (Rich's boxes and wrapping removed)."""
    out = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    return " ".join(out.stdout.replace("│", " ").split())


def test_brackets_in_help_print_as_written():
    assert "Replace the peers file's [bidders] table" in helped("auctioneer", "bidders")
    assert "default_rng([seed, r])" in helped("serve")
    assert "NAME[:KEY=VALUE,...]" in helped("request", "submit")


def test_mechanisms_are_listed_from_the_registry_plug_ins_included():
    from mercat.clearing import registry
    from mercat.clearing.optimal import OptimalMechanism

    class Thrifty(OptimalMechanism):
        """A plug-in for this test."""

        name = "thrifty-test"

    assert "thrifty-test" not in helped("clear")
    registry.register(Thrifty)
    try:
        for command in (("clear",), ("market", "run"), ("serve",), ("devnet", "up")):
            shown = helped(*command)
            assert "optimal, double-auction, vcg, posted-price" in shown, command
            assert "thrifty-test" in shown, command
    finally:
        registry.unregister("thrifty-test")


def test_collective_rules_and_strategies_are_listed():
    assert "free, coll-stake, coll-rep, coll-sr" in helped("market", "run")
    assert "perfect-information, noisy-estimates" in helped("dynamics")
    assert "fig3" in helped("reproduce") and "all." in helped("reproduce")


def test_fixed_choices_are_listed():
    assert "<fast|reference|pipeline|gpu>" in helped("simulate", "collective")
    assert "<local|ray>" in helped("sweep")
    assert "Auction: double-auction, vcg." in helped("auctioneer", "local")


def test_old_names_are_not_shown():
    shown = helped("ledger", "init")
    assert "--ledger" in shown and "--collective" in shown
    assert "--url" not in shown and "--mechanism" not in shown
    assert "--option -O" in helped("clear") and " -o " not in helped("clear")


@pytest.mark.parametrize("kind", list(CHOICE_SOURCES))
def test_names_listed_without_import_are_the_registry_s(kind):
    source = CHOICE_SOURCES[kind]
    assert source.names_without_import() == source.registry_names()


def test_help_imports_no_registry():
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mercat.cli import app\n"
        "for args in (['--help'], ['clear', '--help'], ['market', 'run', '--help'],\n"
        "             ['dynamics', '--help'], ['reproduce', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "heavy = [m for m in ('mercat.clearing.registry', 'mercat.incentives.rules', 'numpy',\n"
        "                     'mercat.clearing.posted_price.makers', 'mercat.report.experiments')\n"
        "         if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_value_outside_the_choices_is_one_line_that_names_them():
    out = CliRunner().invoke(app, ["simulate", "collective", "--engine", "warp"])
    assert out.exit_code == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1
    assert "'warp' is not one of 'fast', 'reference', 'pipeline', 'gpu'" in out.stderr
    assert "Value error" not in out.stderr
