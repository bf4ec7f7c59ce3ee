"""The tutorial of docs/chain.md runs and prints what the page says it prints."""

from __future__ import annotations

import contextlib
import io
import re

from tests.chain.conftest import REPO


def test_tutorial_output_is_the_documented_output():
    page = (REPO / "docs" / "chain.md").read_text()
    code, expected = re.search(r"```python\n(.*?)```\n\n```text\n(.*?)```", page, re.S).groups()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/chain.md", "exec"), {})
    assert out.getvalue() == expected
