"""Bounded parsing of outside text: the depth scan against its readable twin, the limits."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.errors import InvalidMarketError, MalformedMessageError
from mercat.untrusted import (
    MAX_DEPTH,
    _tree_depth,
    json_depth,
    parse_json,
    parse_toml,
    read_text,
    shown,
)

# Strings full of what the scan must not count: brackets, quotes, backslashes, escapes.
tricky_text = st.text(alphabet='[]{}"\\\\ab\\n\u00e9\u2028', max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans(), st.booleans())
def test_the_byte_scan_finds_the_depth_of_the_parsed_value(value, indent, ascii_only):
    text = json.dumps(value, indent=2 if indent else None, ensure_ascii=ascii_only)
    assert json_depth(text.encode()) == _tree_depth(json.loads(text))


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[["', 0),
        ('["\\\\", ["\\"]"]]', 2),  # an escaped backslash, then a quote escaped inside a string
        ('{"a": [{}]}', 3),
        ("[" * 70 + "]" * 70, 70),
        ("[" * 70, 70),  # unterminated: at least as deep as a parser would get
    ],
)
def test_the_byte_scan_on_written_cases(text, depth):
    assert json_depth(text.encode()) == depth


def test_parse_json_refuses_deep_large_and_broken_text_with_the_callers_error():
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(at_limit, what="x", error=InvalidMarketError, max_bytes=None) is not None
    deep = "nests arrays or objects more than 64 levels deep"
    cases = {
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1): deep,
        "[" * 900: deep,
        "[1,": "is not valid JSON",
        "9" * 5000: "is not valid JSON",
        "[" + "1," * 6000 + "1]": "is larger than the limit of 10000 bytes",
    }
    for text, message in cases.items():
        for data in (text, text.encode()):
            with pytest.raises(MalformedMessageError, match=f"^the header {message}"):
                parse_json(data, what="the header", error=MalformedMessageError, max_bytes=10**4)
    with pytest.raises(MalformedMessageError, match="is not UTF-8 text"):
        parse_json(b'["\xff"]', what="x", error=MalformedMessageError, max_bytes=100)


def test_parse_toml_refuses_deep_and_large_documents():
    assert parse_toml("a = [[1]]", what="x", error=InvalidMarketError, max_bytes=100) == {
        "a": [[1]]
    }
    for text in ("a = " + "[" * 2000 + "]" * 2000, "a = " + "[" * 70 + "]" * 70):
        with pytest.raises(InvalidMarketError, match=r"peers file nests .* more than 64"):
            parse_toml(text, what="peers file", error=InvalidMarketError, max_bytes=10**6)
    with pytest.raises(InvalidMarketError, match="larger than the limit"):
        parse_toml("a = 1\n" * 100, what="peers file", error=InvalidMarketError, max_bytes=100)
    with pytest.raises(InvalidMarketError, match="not valid TOML"):
        parse_toml("a = ", what="peers file", error=InvalidMarketError, max_bytes=100)


def test_read_text_stops_at_its_limit(tmp_path):
    path = tmp_path / "f.json"
    path.write_text("x" * 101)
    with pytest.raises(InvalidMarketError, match="file 'f' is larger than the limit of 100"):
        read_text(path, what="file 'f'", error=InvalidMarketError, max_bytes=100)
    assert read_text(path, what="f", error=InvalidMarketError, max_bytes=101) == "x" * 101
    with pytest.raises(InvalidMarketError, match="cannot read file 'g'"):
        read_text(tmp_path / "g", what="file 'g'", error=InvalidMarketError, max_bytes=10)


def test_shown_keeps_messages_short():
    assert len(shown("x" * 10**6)) < 50
    assert len(shown([[[[[["deep"]]]]]] * 1000)) < 80
    assert shown(10**5000) == "<int>"
    assert shown("ok") == "'ok'"


def test_deep_json_does_not_crash_a_process_whose_recursion_limit_was_raised():
    # py-evm and py_ecc raise the limit on import; json.loads then overflows the C stack
    # (a segfault, not an exception) unless the depth is measured first.
    import subprocess
    import sys

    script = (
        "import sys; sys.setrecursionlimit(1_000_000)\n"
        "from mercat.untrusted import parse_json\n"
        "from mercat.errors import MalformedMessageError\n"
        "try:\n"
        "    parse_json(b'[' * 2_000_000, what='the body', error=MalformedMessageError,"
        " max_bytes=None)\n"
        "except MalformedMessageError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "refused: the body nests arrays or objects more than 64 levels deep" in done.stdout


def test_a_key_given_twice_in_one_object_is_refused_wherever_json_comes_in():
    # Parsers disagree on which of two equal keys counts; a signed message read one way by
    # its author and another by mercat must not be read at all.
    for text in (
        '{"op": "a", "op": "b"}',
        '[{"x": 1}, {"y": 2, "y": 2}]',
        '{"a": {"k": 1, "k": 1}}',
    ):
        with pytest.raises(MalformedMessageError, match=r"gives the key .* twice in one object"):
            parse_json(text, what="the message", error=MalformedMessageError, max_bytes=None)
    assert parse_json('{"a": {"k": 1}, "k": 2}', what="m", error=MalformedMessageError,
                      max_bytes=None) == {"a": {"k": 1}, "k": 2}  # fmt: skip
