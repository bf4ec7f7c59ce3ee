"""Worker of test_crash: submits a batch of signed messages in order, skipping those the
ledger already applied, and kills itself with SIGKILL at its N-th database call.

    python crash_worker.py URL BATCH KILL_AT     (KILL_AT 0: never)

or `main(...)` in a forked child (what the test does: a fork starts in milliseconds where a
fresh interpreter takes a second to import SQLAlchemy).
A "database call" is a statement sent to the driver or a commit: a kill can land between
two statements of one transaction, just before a commit, or between transactions. Prints
one JSON line: how many messages it applied, how many were already applied, and how many
database calls it made.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from sqlalchemy import event

from mercat.errors import ReplayedNonceError
from mercat.ledger import Ledger, SignedMessage


def main(url: str, batch: str, kill_at: int, out: str | None = None) -> None:
    ledger = Ledger(url)
    calls = 0

    def tick(*_args: object, **_kw: object) -> None:
        nonlocal calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(ledger.engine, "before_cursor_execute", tick)
    event.listen(ledger.engine, "commit", tick)
    applied = already = 0
    with open(batch) as lines:
        for line in lines:
            try:
                receipt = ledger.submit(SignedMessage.from_json(line))
            except ReplayedNonceError:  # committed before a crash: nothing to redo
                already += 1
                continue
            applied += receipt.applied
            already += not receipt.applied
    summary = json.dumps({"applied": applied, "already": already, "calls": calls})
    if out is None:
        print(summary)
    else:
        Path(out).write_text(summary)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
