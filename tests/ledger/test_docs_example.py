"""The Python example of docs/ledger.md runs as written (on a temporary store)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "ledger.md"


def test_the_documented_example_runs(tmp_path):
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    code = block.replace("sqlite:///market.db", f"sqlite:///{tmp_path}/market.db")
    exec(compile(code, str(DOC), "exec"), {})  # the example asserts its own result
