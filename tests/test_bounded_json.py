"""JSON from the network with bounded nesting: the vectorized depth count held to a plain
character-by-character twin, and a deep document refused where the parser would crash."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercat.bounded_json import loads, nesting_depth
from mercat.errors import InvalidParameterError


def depth_reference(text: str) -> int:
    """The readable twin: walk the characters, skipping strings and their escapes."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet='[]{}"\\a'), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(documents)
def test_the_fast_depth_count_equals_its_reference(document):
    text = json.dumps(document)
    assert nesting_depth(text) == depth_reference(text)
    assert nesting_depth(text.encode()) == depth_reference(text)


def test_shallow_json_parses_and_deep_json_is_refused_before_parsing():
    assert loads(b'{"a": [1, {"b": "[[[["}]}', InvalidParameterError) == {"a": [1, {"b": "[[[["}]}
    with pytest.raises(InvalidParameterError, match="nested 65 levels deep; at most 64"):
        loads("[" * 65 + "]" * 65, InvalidParameterError)
    with pytest.raises(InvalidParameterError, match="not JSON"):
        loads(b"{", InvalidParameterError)
    with pytest.raises(InvalidParameterError, match="not JSON"):
        loads(b"\xff", InvalidParameterError)


def test_deep_json_does_not_crash_a_process_whose_recursion_limit_was_raised():
    # py-evm and py_ecc raise the limit on import; json.loads then overflows the C stack.
    script = (
        "import sys; sys.setrecursionlimit(1_000_000)\n"
        "from mercat.bounded_json import loads\n"
        "from mercat.errors import InvalidParameterError\n"
        "try:\n"
        "    loads(b'[' * 2_000_000, InvalidParameterError)\n"
        "except InvalidParameterError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "refused: the body is JSON nested 2000000 levels deep" in done.stdout
