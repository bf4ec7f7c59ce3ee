"""A provider's durable log of finished rounds (SQLite by default; any SQLAlchemy URL).

Why: a provider keeps recent rounds' results in memory, to answer a client that asks again
(a batch for a finished round is answered with that round's Result) and to drop late peer
messages. A crash loses that memory. After a restart, a client asking again would open the
round anew at this provider alone, which can only end in ⊥; the client, which needs all m
results to agree, would then see ⊥ for a round that every provider delivered. With the log
the restarted provider answers from it, and an operator can audit what each provider
output (`mercat auctioneer results`).

What is kept per (provider, round): whether it delivered, the reason for ⊥, the encoded
outcome (x, p) exactly as sent to the clients, the common coin (hex), the round's seconds,
its milestones (`round.PHASES`) and when it was recorded. The agreed bid vector is not
kept (it can be 10^5 bids; the outcome names every bidder). A round is recorded once; a
second record of the same round is ignored (the first is what the clients were told).

The record is written just before the Result goes out, so whatever a client was told is on
disk; on SQLite in WAL mode with synchronous=NORMAL
(`mercat.ledger.store.make_engine(durable=False)`): it survives the provider process being
killed, not a power cut, and costs no fsync per round.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import DatabaseError, IntegrityError

from mercat.auctioneer.outcome import Outcome
from mercat.auctioneer.round import RoundResult
from mercat.errors import AuctioneerConfigError, LedgerUnavailableError

metadata = MetaData()
results = Table(
    "auctioneer_results",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("round", BigInteger, primary_key=True, autoincrement=False),
    Column("ok", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("outcome", LargeBinary, nullable=True),
    Column("coin", String(64), nullable=True),
    Column("seconds", Float, nullable=False),
    Column("phases", Text, nullable=False),  # JSON [[phase, seconds since opened], ...]
    Column("recorded_at", Float, nullable=False),
)


_INSERT = insert(results)
PRUNE_EVERY = 64  # records between two prunes (a prune is one DELETE with a subquery)


@dataclass(frozen=True)
class LoggedRound:
    """One row of the log, as a provider recorded it."""

    provider: str
    round: int
    ok: bool
    reason: str
    outcome: bytes | None
    coin: int | None
    seconds: float
    phases: tuple[tuple[str, float], ...]
    recorded_at: float

    def result(self) -> RoundResult:
        """The provider's RoundResult (without the agreed bids, which are not kept)."""
        outcome = Outcome.decode(self.outcome) if self.outcome is not None else None
        return RoundResult(
            self.round, outcome, self.reason, None, self.coin, self.seconds, self.phases
        )


def default_log_url(peers_path: Path, provider: str) -> str:
    """`<peers file's folder>/<provider>.results.db`."""
    return f"sqlite:///{(Path(peers_path).parent / f'{provider}.results.db').resolve()}"


class ResultLog:
    """The log at `url` (created on first use)."""

    def __init__(self, url: str, *, keep: int | None = None, create: bool = True) -> None:
        """`keep`: at most this many rounds per provider, the most recently recorded (None:
        all). An outcome at n = 1000 is 35 KB, so a market that never prunes grows by
        about 3.5 GB per 10^5 rounds; pruning runs every PRUNE_EVERY records. `create`
        False: a SQLite log must exist already (a reader must not leave an empty file)."""
        from mercat.ledger.store import make_engine, missing_sqlite_file, unavailable

        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise AuctioneerConfigError(f"keep must be an integer >= 1 (or None), got {keep!r}")
        if not create and missing_sqlite_file(url):
            raise AuctioneerConfigError(f"no result log at {url}")
        self.keep = keep
        self._since_prune = 0
        self.url = url
        try:
            self.engine = make_engine(url, durable=False)
            metadata.create_all(self.engine)
        except LedgerUnavailableError as exc:
            raise AuctioneerConfigError(f"result log {url!r} cannot be opened: {exc}") from None
        except DatabaseError as exc:  # a server that is not there, a file that is no database
            raise AuctioneerConfigError(str(unavailable(url, exc, "result log"))) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ResultLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, provider: str, result: RoundResult, encoded: bytes | None = None) -> bool:
        """Keep `result` (`encoded`: its outcome's encoding, if the caller has it already);
        False if this provider's round was recorded already."""
        if result.outcome is None:
            encoded = None
        elif encoded is None:
            encoded = result.outcome.encode()
        row = {
            "provider": provider,
            "round": result.round,
            "ok": result.ok,
            "reason": result.reason,
            "outcome": encoded,
            "coin": None if result.coin is None else f"{result.coin:064x}",
            "seconds": float(result.seconds),
            "phases": json.dumps([[name, float(t)] for name, t in result.phases]),
            "recorded_at": time.time(),
        }
        try:
            with self.engine.begin() as connection:
                # One statement, parameters apart: SQLAlchemy compiles it once and caches it.
                connection.execute(_INSERT, row)
        except IntegrityError:
            return False
        self._since_prune += 1
        if self.keep is not None and self._since_prune >= PRUNE_EVERY:
            self.prune()
        return True

    def prune(self) -> int:
        """Delete each provider's rounds beyond the `keep` most recently recorded; returns
        how many went."""
        self._since_prune = 0
        if self.keep is None:
            return 0
        removed = 0
        with self.engine.begin() as connection:
            for name in connection.execute(select(results.c.provider).distinct()).scalars().all():
                newest = (
                    select(results.c.round)
                    .where(results.c.provider == name)
                    .order_by(results.c.recorded_at.desc(), results.c.round.desc())
                    .limit(self.keep)
                )
                stale = delete(results).where(
                    results.c.provider == name, results.c.round.not_in(newest.scalar_subquery())
                )
                removed += int(connection.execute(stale).rowcount or 0)
        return removed

    def get(self, provider: str, round_id: int) -> LoggedRound | None:
        query = select(results).where(results.c.provider == provider, results.c.round == round_id)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _logged(row)

    def rounds(
        self, provider: str | None = None, round_id: int | None = None, limit: int = 100
    ) -> list[LoggedRound]:
        """The latest `limit` records, newest round first; of one provider or round if given."""
        query = select(results).order_by(results.c.round.desc(), results.c.provider).limit(limit)
        if provider is not None:
            query = query.where(results.c.provider == provider)
        if round_id is not None:
            query = query.where(results.c.round == round_id)
        with self.engine.connect() as connection:
            return [_logged(row) for row in connection.execute(query)]


def _logged(row: object) -> LoggedRound:
    m = row._mapping  # type: ignore[attr-defined]
    return LoggedRound(
        provider=m["provider"],
        round=int(m["round"]),
        ok=bool(m["ok"]),
        reason=m["reason"],
        outcome=None if m["outcome"] is None else bytes(m["outcome"]),
        coin=None if m["coin"] is None else int(m["coin"], 16),
        seconds=float(m["seconds"]),
        phases=tuple((str(name), float(t)) for name, t in json.loads(m["phases"])),
        recorded_at=float(m["recorded_at"]),
    )
