"""Files written whole or not at all.

A file is written beside its target under a temporary name (`TMP_PREFIX`) and renamed onto
it, which is atomic on one file system: a run stopped halfway leaves the earlier file, never
half of a new one. Whoever owns a directory may sweep leftovers by the prefix.
"""

from __future__ import annotations

import os
from pathlib import Path

TMP_PREFIX = ".tmp-"


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` whole or not at all; no temporary file is left."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
