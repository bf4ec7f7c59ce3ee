"""The command line speaks one vocabulary (docs/cli.md): a new command or option that strays
from it fails here. The whole command tree is walked in process (no command runs)."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest
from typer.core import TyperGroup

from mercat.cli._help import MercatCommand, MercatGroup, resolve_choices
from mercat.cli._inventory import Param, commands, inventory, renamed_along, tree

ROOT = tree()
COMMANDS = list(commands(ROOT))
ROWS = inventory(ROOT)
OPTIONS = [row for row in ROWS if row.kind == "option"]

# One name for one idea, and one idea per name. Where a long name means two things in two
# commands, it is listed here with why; a new one fails test_a_long_name_has_one_type.
TWO_MEANINGS = {
    "--limit": "serve --limit KEY=VALUE sets a node limit; elsewhere --limit N caps rows shown",
    "--capacity": "agent --capacity RESOURCE=UNITS per server; price --capacity is one number",
    "--model": "request dataset --model/--no-model writes a model; agent --model PATH offers one",
}
# Key files are --key (the participant's own) or --operator-key (the ledger operator's);
# storage get's --identity keeps its name until its old --key (a content key) is gone.
KEY_FILE_NAMES = {"--key", "--operator-key", "--auctioneer-key", "--identity"}


def _long(row: Param) -> str:
    return next(o for o in row.opts if o.startswith("--"))


def _family(row: Param) -> str:
    kind = row.type.removeprefix("list[").removesuffix("]")
    return "str" if kind in ("Literal", "str") else kind


def _id(row: Param) -> str:
    return f"{row.command}:{_long(row)}"


def test_the_tree_is_walked():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"clear", "ledger init", "auctioneer local", "simulate collective", "sweep"} <= names
    assert len(OPTIONS) > 200


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in COMMANDS])
def test_every_command_is_a_mercat_command_with_a_help_text(path):
    command = dict((" ".join(p), c) for p, c in COMMANDS)[path]
    wanted = MercatGroup if isinstance(command, TyperGroup) else MercatCommand
    assert isinstance(command, wanted), f"build `{path}` with mercat.cli._help.MercatTyper"
    assert (command.help or "").strip(), f"`mercat {path}` has no help text"


def test_every_option_and_argument_has_a_help_text():
    missing = [f"{row.command}: {row.name}" for row in ROWS if not row.help.strip()]
    assert not missing


def test_a_short_flag_means_one_thing_everywhere():
    meanings = defaultdict(set)
    for row in OPTIONS:
        for short in (o for o in row.opts if not o.startswith("--")):
            meanings[short].add(_long(row))
    assert {s: m for s, m in meanings.items() if len(m) > 1} == {}
    assert meanings["-o"] == {"--out"} and meanings["-m"] == {"--mechanism"}


def test_a_long_name_has_one_type():
    families = defaultdict(set)
    for row in OPTIONS:
        for name in (o for o in row.opts if o.startswith("--")):
            families[name].add(_family(row))
    mixed = {n: f for n, f in families.items() if len(f) > 1 and n not in TWO_MEANINGS}
    assert mixed == {}
    assert all(len(families[n]) > 1 for n in TWO_MEANINGS), "an exception no longer needed"


@pytest.mark.parametrize("row", [r for r in OPTIONS if "-o" in r.opts or "--out" in r.opts],
                         ids=_id)  # fmt: skip
def test_an_output_path_is_out_o(row):
    assert set(row.opts) == {"--out", "-o"} and row.type == "Path"


def test_no_other_spelling_of_out():
    other = [o for row in OPTIONS for o in row.opts if re.fullmatch(r"--(output|out-?dir)\S*", o)]
    assert other == []


LEDGER_URL = re.compile(r"ledger.{0,20}\bURL\b|ledger store|store URL", re.IGNORECASE)


@pytest.mark.parametrize("row", [r for r in OPTIONS if LEDGER_URL.search(r.help)], ids=_id)
def test_a_ledger_url_is_ledger(row):
    assert row.opts == ("--ledger",)


def test_ledger_urls_were_found():
    assert len([r for r in OPTIONS if r.opts == ("--ledger",)]) >= 12


MECHANISMS = [r for r in OPTIONS if "--mechanism" in r.opts]


@pytest.mark.parametrize("row", MECHANISMS, ids=_id)
def test_a_mechanism_is_mechanism_m_and_lists_its_choices(row):
    assert set(row.opts) == {"--mechanism", "-m"}
    command = dict((" ".join(p), c) for p, c in COMMANDS)[row.command]
    resolve_choices(command)
    shown = next(p.help for p in command.params if p.name == row.name)
    # the names the mechanism registry uses, never the old `double`
    assert "double-auction" in shown and "vcg" in shown, shown
    assert not re.search(r"\bdouble\b(?!-)", shown), shown


def test_every_clearing_mechanism_option_reads_the_registry():
    from_registry = [r for r in MECHANISMS if "{choices:mechanism}" in r.help]
    assert {r.command for r in from_registry} >= {
        "clear", "market run", "market admission", "serve", "devnet up"
    }  # fmt: skip


COLLECTIVE = [r for r in OPTIONS if r.help.lower().startswith("collective rule")
              or "--collective" in r.opts]  # fmt: skip


@pytest.mark.parametrize("row", COLLECTIVE, ids=_id)
def test_a_collective_rule_is_collective_and_lists_its_choices(row):
    assert row.opts == ("--collective",)
    assert row.choices or "{choices:collective rule}" in row.help
    assert set(row.choices) <= {"free", "coll-stake", "coll-rep", "coll-sr"}


@pytest.mark.parametrize("name", ["--json", "--quick"])
def test_flags_are_plain_flags(name):
    rows = [r for r in OPTIONS if name in r.opts]
    assert rows and all(r.opts == (name,) and r.type == "bool" for r in rows)


@pytest.mark.parametrize(
    ("name", "family"),
    [("--seed", "int"), ("--runs", "int"), ("--rounds", "int"), ("--providers", "int"),
     ("--requesters", "int"), ("--oracles", "int"), ("--node", "str"), ("--key", "Path"),
     ("--peers", "Path"), ("--workdir", "Path"), ("--timeout", "float")],
)  # fmt: skip
def test_common_names_have_one_type(name, family):
    rows = [r for r in OPTIONS if name in r.opts]
    assert rows and {_family(r) for r in rows} == {family}


def test_key_files_are_key():
    key_files = [r for r in OPTIONS if r.type == "Path" and re.search(r"\bkey file", r.help)]
    assert key_files and {_long(r) for r in key_files} <= KEY_FILE_NAMES


FIXED = {"--engine", "--backend", "--tie-break", "--accountant", "--noise", "--method",
         "--claims", "--sampling", "--replacement", "--drop", "--behaviour", "--status",
         "--log-level"}  # fmt: skip


@pytest.mark.parametrize("row", [r for r in OPTIONS if _long(r) in FIXED], ids=_id)
def test_options_with_a_fixed_set_of_values_list_them(row):
    assert row.type == "Literal" and len(row.choices) >= 2


@pytest.mark.parametrize("path", [" ".join(p) for p, c in COMMANDS if c.renamed])
def test_old_names_are_not_declared_and_their_new_names_are(path):
    steps = next(p for p, _ in COMMANDS if " ".join(p) == path)
    declared_below = {o for row in ROWS if row.command.startswith(path) for o in row.opts}
    for old, new in renamed_along(ROOT, steps).items():
        assert old not in declared_below, f"{path}: {old} is both old and declared"
        assert new in declared_below, f"{path}: {old} -> {new}, which no command declares"


def test_old_names_are_not_taught_in_help():
    taught = [row for row in ROWS for old in ("--url", "--bidders-from-ledger", "-o tick")
              if old in row.help]  # fmt: skip
    assert taught == []


def test_the_inventory_prints_every_option(capsys):
    from mercat.cli._inventory import main

    main(["--json"])
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(ROWS)
    clear = {tuple(r["opts"]): r for r in rows if r["command"] == "clear"}
    assert clear[("--mechanism", "-m")]["type"] == "str"
    main([])
    assert "simulate collective: --engine Literal [fast|reference|pipeline|gpu]" in (
        capsys.readouterr().out.splitlines()
    )
