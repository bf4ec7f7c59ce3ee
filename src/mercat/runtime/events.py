"""Stage 7 of a round: what every stage did, as events, for the report, the CLI and the node.

Each event is a small frozen record with a `kind`; `to_dict()` gives its JSON form. An event
log is anything with `emit(event)`: `MemoryLog` keeps them in a list (tests, summaries),
`JsonlLog` appends one JSON line per event to a file (flushed at the end of each round, so a
crash loses at most the round in progress), `NullLog` drops them (research-scale runs that
keep only the book and the round reports).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from mercat.errors import InvalidParameterError


class Event:
    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class RoundOpened(Event):
    kind: ClassVar[str] = "round_opened"
    round: int
    requests: int  # open requests in the market
    servers: int  # eligible servers
    expired: tuple[str, ...] = ()  # requests closed unserved at the start of the round


@dataclass(frozen=True, slots=True)
class Cleared(Event):
    kind: ClassVar[str] = "cleared"
    round: int
    mechanism: str
    served: int
    welfare: float
    payments: float  # Σ π, tokens
    rewards: float  # Σ φ, tokens
    proven: bool
    prices: dict[str, float] = field(default_factory=dict)  # request -> π per unit of demand


@dataclass(frozen=True, slots=True)
class TaskOpened(Event):
    kind: ClassVar[str] = "task_opened"
    round: int
    task: str
    request: str
    assets: tuple[str, ...]
    charge: int
    payouts: int
    subsidy: int


@dataclass(frozen=True, slots=True)
class TaskExecuted(Event):
    kind: ClassVar[str] = "task_executed"
    round: int
    task: str
    success: bool
    latency_ms: int


@dataclass(frozen=True, slots=True)
class TaskAttested(Event):
    kind: ClassVar[str] = "task_attested"
    round: int
    task: str
    success: bool
    sla_met: bool
    reports: int


@dataclass(frozen=True, slots=True)
class TaskSettled(Event):
    kind: ClassVar[str] = "task_settled"
    round: int
    task: str
    request: str
    paid: bool
    charge: int
    margin: int
    refunded: int
    stake_change: int  # Σ over the task's assets of (stake after - stake before)


@dataclass(frozen=True, slots=True)
class AssetRemoved(Event):
    kind: ClassVar[str] = "asset_removed"
    round: int
    task: str
    asset: str
    owner: str
    stake: int


@dataclass(frozen=True, slots=True)
class RoundClosed(Event):
    kind: ClassVar[str] = "round_closed"
    round: int
    tasks: int
    paid: int
    failed: int
    charged: int  # base units requesters paid for tasks that paid
    margin: int  # to the margin holder (net of subsidies)
    pool: int  # the reward pool after the round
    removed: int


class EventLog(Protocol):
    def emit(self, event: Event) -> None: ...

    def flush(self) -> None: ...


class NullLog:
    def emit(self, event: Event) -> None:
        pass

    def flush(self) -> None:
        pass


class MemoryLog:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def flush(self) -> None:
        pass

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class JsonlLog:
    """Events as JSON lines in `path` (appended; buffered until `flush`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._buffer: list[str] = []

    def emit(self, event: Event) -> None:
        self._buffer.append(json.dumps(event.to_dict(), sort_keys=True, allow_nan=False))

    def flush(self) -> None:
        if not self._buffer:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(self._buffer) + "\n")
        self._buffer.clear()


def summarize(path: str | Path) -> list[dict[str, Any]]:
    """One row per round of an event log (`JsonlLog`): what the round's `cleared`,
    `round_closed` and `asset_removed` events say. A line that is not an event of this kind
    is refused with its line number."""
    rows: dict[int, dict[str, Any]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidParameterError(f"cannot read the event log {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InvalidParameterError(
            f"the event log {path} is not UTF-8 text (byte {exc.start})"
        ) from None
    for number, line in enumerate(lines, 1):
        try:
            # (a field missing from an event of a kind read here fails it as a bad line does)
            _summarize_line(rows, json.loads(line))
        except (ValueError, KeyError, TypeError, OverflowError):  # OverflowError: int(1e999)
            raise InvalidParameterError(f"{path}:{number} is not a mercat event") from None
    return [rows[r] for r in sorted(rows)]


def _summarize_line(rows: dict[int, dict[str, Any]], event: Any) -> None:
    kind, round_ = event["kind"], int(event["round"])
    row = rows.setdefault(round_, {"round": round_, "removed": []})
    if kind == "round_opened":
        row.update(requests=event["requests"], servers=event["servers"])
    elif kind == "cleared":
        row.update(mechanism=event["mechanism"], served=event["served"],
                   welfare=event["welfare"])  # fmt: skip
    elif kind == "round_closed":
        row.update({k: event[k] for k in ("tasks", "paid", "failed", "charged", "margin", "pool")})
    elif kind == "asset_removed":
        row["removed"].append(event["asset"])
