"""Names in a market (ids, resource names, capabilities, the market's name) are printable
text of at most MAX_NAME_CHARS characters: a newline would split a row of the tables
`mercat clear` prints, a right-to-left override or a zero-width space would make two ids
look alike. Every such name is refused with one line that names it; printable names of
any script are kept as they are."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mercat.cli import app
from mercat.errors import InvalidMarketError
from mercat.market.market_io import dumps_market, loads_market
from mercat.market.model import Conflict, Market, Node, Request
from mercat.market.names import MAX_NAME_CHARS, check_name

# One of each kind of character `str.isprintable` refuses.
UNPRINTABLE = {
    "\n": "U+000A, a control character",
    "\x00": "U+0000, a control character",
    "\x1b": "U+001B, a control character",
    "\x85": "U+0085, a control character",
    "\u202e": "U+202E, a format character",  # right-to-left override
    "\u200b": "U+200B, a format character",  # zero-width space
    "\ufeff": "U+FEFF, a format character",  # zero-width no-break space (BOM)
    "\u2028": "U+2028, a line separator",
    "\u2029": "U+2029, a paragraph separator",
    "\u00a0": "U+00A0, a space other than ' '",
    "\u3000": "U+3000, a space other than ' '",
    "\ud800": "U+D800, a lone surrogate",
    "\ue000": "U+E000, a private-use character",
}

unprintable_chars = st.characters(categories=["Cc", "Cf", "Cs", "Co", "Zl", "Zp", "Zs"]).filter(
    lambda c: c != " "
)
printable_chars = st.characters(categories=["L", "M", "N", "P", "S"]) | st.just(" ")


@st.composite
def unprintable_names(draw):
    """Printable text with at least one refused character somewhere in it."""
    before = draw(st.text(printable_chars, max_size=10))
    after = draw(st.text(printable_chars, max_size=10))
    return before + draw(unprintable_chars) + after


printable_names = st.text(printable_chars, min_size=1, max_size=30)


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and len(text) < 300, text
    assert text.isprintable(), text  # the message itself cannot hide a character
    return text


def market(**overrides):
    parts = dict(
        requests=(Request("t1", 2.0, (1.0,), capabilities=frozenset({"gpu"})),),
        nodes=(Node("n1", capacity=(2.0,), unit_costs=(0.0,), capabilities=frozenset({"gpu"})),),
        resources=("cpu",),
        name="a market",
    )
    return Market(**{**parts, **overrides})


def places(name):
    """`name` in each place of a market, with the start of the message that refuses it."""
    return [
        ({"requests": (Request(name, 1.0, (1.0,)),)}, "request id"),
        ({"nodes": (Node(name, capacity=(1.0,), unit_costs=(0.0,)),)}, "node id"),
        ({"resources": (name,)}, "resource name"),
        (
            {"requests": (Request("t1", 1.0, (1.0,), capabilities=frozenset({name})),)},
            "capability of request 't1'",
        ),
        (
            {"nodes": (Node("n1", capacity=(1.0,), unit_costs=(0.0,), capabilities={name}),)},
            "capability of node 'n1'",
        ),
        ({"name": name}, "the market's name"),
    ]


@pytest.mark.parametrize("char", list(UNPRINTABLE))
def test_each_kind_of_unprintable_character_is_refused_in_every_place(char):
    for overrides, what in places(f"t{char}x"):
        with pytest.raises(InvalidMarketError) as caught:
            market(**overrides)
        text = one_line(caught.value)
        assert text.startswith(f"{what} 't"), text
        assert UNPRINTABLE[char] in text, text


@settings(max_examples=100, deadline=None)
@given(unprintable_names(), st.integers(0, 5))
def test_names_with_an_unprintable_character_are_refused(name, place):
    overrides, what = places(name)[place]
    with pytest.raises(InvalidMarketError) as caught:
        market(**overrides)
    assert one_line(caught.value).startswith(what)


@settings(max_examples=100, deadline=None)
@given(st.lists(printable_names, min_size=4, max_size=4, unique=True))
def test_printable_names_of_any_script_are_kept_and_round_trip(names):
    request, node, resource, capability = names
    m = Market(
        requests=(Request(request, 1.0, (1.0,), capabilities=frozenset({capability})),),
        nodes=(Node(node, capacity=(1.0,), unit_costs=(0.0,), capabilities={capability}),),
        resources=(resource,),
        name=capability,
    )
    assert loads_market(dumps_market(m)) == m


def test_names_are_at_most_max_name_chars_long():
    longest = "x" * MAX_NAME_CHARS
    assert market(requests=(Request(longest, 1.0, (1.0,)),)).requests[0].id == longest
    with pytest.raises(InvalidMarketError) as caught:
        market(requests=(Request(longest + "x", 1.0, (1.0,)),))
    assert f"is {MAX_NAME_CHARS + 1} characters long" in one_line(caught.value)


def test_the_market_may_have_no_name_but_nothing_else_may_be_empty():
    assert market(name="").name == ""
    with pytest.raises(InvalidMarketError, match="request id must be a non-empty string"):
        market(requests=(Request("", 1.0, (1.0,)),))
    with pytest.raises(InvalidMarketError, match="resource name must be a non-empty string"):
        market(resources=("",))
    with pytest.raises(InvalidMarketError, match="the market's name must be a string"):
        market(name=None)


def test_check_name_returns_the_name_it_accepts():
    assert check_name("node id", "n1 (Zürich, 東京) ✓") == "n1 (Zürich, 東京) ✓"


def test_conflicts_and_exclusive_groups_name_only_checked_ids():
    with pytest.raises(InvalidMarketError, match=r"names unknown request 't1\\n'"):
        market(
            requests=(Request("t1", 1.0, (1.0,)), Request("t2", 1.0, (1.0,))),
            conflicts=(Conflict("t1\n", "t2"),),
        )
    with pytest.raises(InvalidMarketError, match=r"names unknown node 'n1\\u202e'"):
        market(
            nodes=(
                Node("n1", capacity=(1.0,), unit_costs=(0.0,)),
                Node("n2", capacity=(1.0,), unit_costs=(0.0,)),
            ),
            exclusive_nodes=(("n1\u202e", "n2"),),
        )


def document(**overrides):
    doc = {
        "resources": ["cpu"],
        "requests": [{"id": "t1", "value": 2, "demand": [1]}],
        "nodes": [{"id": "n1", "capacity": [2]}],
    }
    return json.dumps({**doc, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"requests": [{"id": "t1\n", "value": 2, "demand": [1]}]}, r"request id 't1\\n'"),
        ({"nodes": [{"id": "n\u202e1"}]}, r"node id 'n\\u202e1'"),
        ({"resources": ["cpu\u2028"]}, r"resource name 'cpu\\u2028'"),
        (
            {"nodes": [{"id": "n1", "capacity": [2], "capabilities": ["g\u200bpu"]}]},
            r"capability of node 'n1' 'g\\u200bpu'",
        ),
        ({"name": "m\x00"}, r"the market's name 'm\\x00'"),
    ],
)
def test_market_files_with_unprintable_names_are_refused(overrides, message):
    with pytest.raises(InvalidMarketError, match=message) as caught:
        loads_market(document(**overrides))
    one_line(caught.value)


def test_a_lone_surrogate_escaped_in_json_is_refused():
    text = document().replace('"t1"', '"t\\ud800"')
    with pytest.raises(InvalidMarketError, match="U\\+D800, a lone surrogate"):
        loads_market(text)


def test_mercat_clear_refuses_a_newline_in_an_id_in_one_line(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(document(requests=[{"id": "t1\nn1 1.0", "value": 2, "demand": [1]}]))
    out = CliRunner().invoke(app, ["clear", str(path)])
    assert out.exit_code == 2, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert r"request id 't1\nn1 1.0' holds U+000A" in lines[0]
