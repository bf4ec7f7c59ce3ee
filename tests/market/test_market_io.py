"""The JSON market format: the example file, round trips, and every error path."""

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings

from mercat.errors import InvalidMarketError
from mercat.market.generators import double_auction_market, running_example
from mercat.market.market_io import (
    dump_market,
    dumps_market,
    load_market,
    loads_market,
    market_from_dict,
    market_to_dict,
)
from mercat.market.names import MAX_NAME_CHARS as LONGEST
from tests.strategies import markets

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "seed001_running_example.json"


def test_the_example_file_is_the_running_example():
    assert load_market(EXAMPLE) == running_example()


@settings(max_examples=50, deadline=None)
@given(markets(max_requests=4, max_nodes=3))
def test_markets_round_trip_exactly(market):
    assert loads_market(dumps_market(market)) == market


def test_auction_markets_round_trip_through_a_file(tmp_path):
    market = double_auction_market(5, 30, 4)
    dump_market(market, tmp_path / "m.json")
    assert load_market(tmp_path / "m.json") == market


def test_defaults_and_per_unit_bids():
    m = market_from_dict(
        {
            "resources": ["bandwidth"],
            "requests": [{"id": "u1", "bid": 0.75, "demand": [0.5]}],
            "nodes": [{"id": "p1", "unit_costs": [0.25]}],
        }
    )
    assert m.request("u1").value == 0.375 and m.request("u1").unit_bid == 0.75
    assert m.node("p1").capacity == (math.inf,) and m.node("p1").cost == 0
    assert not m.divisible and m.conflicts == ()
    assert market_to_dict(m)["nodes"] == [{"id": "p1", "unit_costs": [0.25]}]


def doc(**changes):
    base = {
        "resources": ["cpu"],
        "requests": [{"id": "t1", "value": 2, "demand": [1]}, {"id": "t2", "value": 1}],
        "nodes": [{"id": "n1", "capacity": [2]}],
        "conflicts": [{"requests": ["t1", "t2"]}],
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "expected an object, got a list"),
        (doc(conflicts=[{"requests": ["t1", "t9"]}]), "unknown request 't9'"),
        (doc(conflicts=[{"requests": ["t1", "n1"]}]), r"unknown request 'n1' \(it is a node\)"),
        (doc(conflicts=[{"requests": ["t1"]}]), r"conflicts\[0\].requests: expected 2 request"),
        (doc(conflicts=[{"requests": ["t1", "t2"], "scope": "all"}]), r"conflicts\[0\].scope"),
        (doc(nodes=[{"id": "n1", "capacity": [-1]}]), r"capacity of node 'n1'\[cpu\] must be >= 0"),
        (doc(nodes=[{"id": "n1", "cost": -1}]), "cost of node 'n1' must be >= 0"),
        (doc(nodes=[{"id": "n1"}, {"id": "n1"}]), "duplicate id 'n1'"),
        (doc(nodes=[{"id": "t1"}]), "duplicate id 't1'"),
        (doc(nodes=[{"id": 7}]), r"nodes\[0\].id: expected a non-empty string, got a number 7"),
        (doc(nodes=[{"id": "n1", "capacity": 2}]), r"nodes\[0\].capacity: expected a list"),
        (doc(nodes=[{"id": "n1", "capacity": [1, 2]}]), "expected 1 entries"),
        (doc(nodes=[{"id": "n1", "capacty": [1]}]), "unknown key 'capacty'"),
        (doc(nodes=[{"cost": 1}]), r"nodes\[0\]: missing required key 'id'"),
        (doc(requests=[{"id": "t1", "value": "6"}]), r"requests\[0\].value: expected a number"),
        (doc(requests=[{"id": "t1", "value": True}]), "expected a number, got a boolean"),
        (doc(requests=[{"id": "t1"}]), "exactly one of 'value'"),
        (doc(requests=[{"id": "t1", "value": 1, "bid": 1}]), "exactly one of 'value'"),
        (doc(requests=[{"id": "t1", "value": 1, "replicas": 1.5}]), "expected an integer"),
        (doc(requests=[{"id": "t1", "value": 1, "replicas": 0}]), "replicas of request"),
        (doc(requests=[{"id": "t1", "value": 1, "demand": [None]}]), "expected a number"),
        (doc(requests=[{"id": "t1", "value": 1, "capabilities": "gpu"}]), "expected a list"),
        (doc(requests={"id": "t1"}), "requests: expected a list"),
        (doc(resources=[]) | {"requests": [{"id": "t", "bid": 1}]}, "needs a resource"),
        (doc(divisible="yes"), "divisible: expected true or false"),
        (doc(format="other/2"), "format: expected 'mercat-market/1'"),
        (doc(extra=1), "unknown key 'extra'"),
        (doc(exclusive_nodes=[["n1", "n9"]]), "names unknown node 'n9'"),
        (doc(exclusive_nodes=[["n1", 3]]), r"exclusive_nodes\[0\]\[1\]: expected a non-empty"),
        (doc(exclusive_nodes=["n1"]), r"exclusive_nodes\[0\]: expected a list"),
        ({"requests": []}, "missing required key 'nodes'"),
    ],
)
def test_bad_documents_raise_specific_errors(document, message):
    with pytest.raises(InvalidMarketError, match=message):
        market_from_dict(document)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidMarketError, match=r"bad.json: the market is not valid JSON"):
        load_market(bad)
    bad.write_text(json.dumps(doc(nodes=[{"id": "n1", "capacity": [-2]}])))
    with pytest.raises(InvalidMarketError, match=r"bad.json: .*must be >= 0"):
        load_market(bad)
    with pytest.raises(InvalidMarketError, match="cannot read market file"):
        load_market(tmp_path / "missing.json")
    bad.write_bytes(b"\xff\xfe{}")
    with pytest.raises(InvalidMarketError, match=r"bad.json' is not UTF-8 text \(byte 0"):
        load_market(bad)


def test_deep_nesting_is_refused_in_one_line_before_parsing(tmp_path):
    # About a thousand levels made Python's parser raise RecursionError (a traceback).
    deep = tmp_path / "deep.json"
    for text in ("[" * 1000 + "]" * 1000, '{"requests": ' + "[" * 5000, '{"a":' * 900 + "1"):
        deep.write_text(text)
        with pytest.raises(InvalidMarketError, match="more than 64 levels deep") as caught:
            load_market(deep)
        assert "\n" not in str(caught.value)
    # 64 levels are allowed through the parser (the market's own checks then refuse it).
    with pytest.raises(InvalidMarketError, match="requests: expected a list"):
        loads_market('{"requests": ' + '{"a": ' * 62 + "1" + "}" * 62 + ', "nodes": []}')


def test_oversized_market_text_and_files_are_refused_without_reading_them(tmp_path, monkeypatch):
    import mercat.market.market_io as market_io

    monkeypatch.setattr(market_io, "MAX_MARKET_BYTES", 1000)
    big = tmp_path / "big.json"
    big.write_text(json.dumps(doc()) + " " * 1000)
    with pytest.raises(InvalidMarketError, match="larger than the limit of 1000 bytes"):
        load_market(big)
    with pytest.raises(InvalidMarketError, match="larger than the limit of 1000 bytes"):
        loads_market(big.read_text())


def test_huge_integers_and_long_values_give_short_messages():
    # 5000 digits: Python's int parser refuses it (a ValueError that is no JSONDecodeError).
    with pytest.raises(InvalidMarketError, match="not valid JSON: Exceeds the limit"):
        loads_market('{"requests": [], "nodes": [{"id": "n", "cost": ' + "9" * 5000 + "}]}")
    # 400 digits parse, but overflow a float.
    with pytest.raises(InvalidMarketError, match="expected a finite number, got 999"):
        loads_market('{"requests": [], "nodes": [{"id": "n", "cost": ' + "9" * 400 + "}]}")
    with pytest.raises(InvalidMarketError) as caught:
        loads_market(json.dumps(doc(nodes=[{"id": "n", "cost": ["x" * 10**6]}])))
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("key", ["value", "id", "replicas"])
def test_a_null_is_named_once(key):
    request = {"id": "t1", "value": 1, key: None}
    with pytest.raises(InvalidMarketError, match=rf"requests\[0\]\.{key}: expected .*, got null$"):
        market_from_dict({"requests": [request], "nodes": []})


def test_a_key_given_twice_is_refused_not_overwritten(tmp_path):
    # A JSON parser keeps the last of two equal keys: the first `requests` list was dropped
    # and the market cleared as if it had no requests.
    text = '{"requests": [{"id": "t1", "value": 1}], "nodes": [{"id": "n1"}], "requests": []}'
    with pytest.raises(InvalidMarketError, match="gives the key 'requests' twice") as caught:
        loads_market(text)
    assert "\n" not in str(caught.value)
    (tmp_path / "m.json").write_text(
        '{"requests": [{"id": "t1", "value": 1, "value": 2}], "nodes": []}'
    )
    with pytest.raises(InvalidMarketError, match=r"m\.json: .*the key 'value' twice"):
        load_market(tmp_path / "m.json")


def test_the_documented_example_is_the_example_file():
    import re

    text = (EXAMPLE.parents[1] / "docs" / "market-format.md").read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)```", text, re.DOTALL).group(1)
    assert loads_market(block) == load_market(EXAMPLE)


def test_a_replica_count_beyond_float_range_is_refused_in_one_line():
    # 10**400 replicas passed the checks and overflowed float() in the MILP's encoding.
    text = '{"requests": [{"id": "t1", "value": 1, "replicas": 1' + "0" * 400 + '}], "nodes": []}'
    with pytest.raises(
        InvalidMarketError, match=r"replicas of request 't1' must be at most 1e\+15"
    ):
        loads_market(text)


@pytest.mark.parametrize(
    "changes",
    [
        # (the longest names allowed, so that each reaches the check it is about)
        {"requests": [{"id": "x" * LONGEST, "value": 1}, {"id": "x" * LONGEST, "value": 1}]},
        {"conflicts": [{"requests": ["t1", "x" * 10**5]}]},
        {"exclusive_nodes": [["n1", "x" * 10**5]]},
        {"requests": [{"id": "x" * LONGEST, "value": -1}]},
        {"resources": ["r" * LONGEST], "requests": [{"id": "t1", "value": 1, "demand": [-1]}]},
        {"requests": [{"id": "x" * 10**5, "value": 1}]},
    ],
)
def test_long_ids_and_names_are_cut_in_messages(changes):
    with pytest.raises(InvalidMarketError) as caught:
        market_from_dict(doc(**changes))
    assert len(str(caught.value)) < 300
