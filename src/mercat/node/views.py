"""A node's answers as its clients (the provider agent, the oracle service, the requester)
read them: checked against the shapes the node's API declares before anything indexes
them (`ViewCheck`), and a task listing as far as it has its declared shape (`TaskListing`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from mercat.errors import MalformedMessageError
from mercat.node.market_schemas import TaskList, TaskView
from mercat.untrusted import shown

MAX_WARNINGS = 256  # the listings ViewCheck remembers having warned about


@dataclass(frozen=True)
class TaskListing:
    """A node's answer to `GET /market/tasks`, as far as it has the declared shape."""

    now_ms: int  # the node's clock
    tasks: list[dict[str, Any]]  # the entries that are task views (`TaskView`'s fields)
    entries: int  # how many entries the node listed, well-formed or not

    @property
    def left_out(self) -> int:
        return self.entries - len(self.tasks)


def _problem(exc: ValidationError) -> str:
    """The first thing wrong with an answer, in one short line."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])[:80]
    more = exc.error_count() - 1
    text = f"{where}: {first['msg']}" if where else str(first["msg"])
    return text + (f" (and {more} more)" if more else "")


class ViewCheck:
    """What an agent, an oracle or a requester keeps of a node's answers: the parts that
    have the shape the node's API declares (`mercat.node.market_schemas`), as plain dicts.

    The node is another party: valid JSON of another shape (a field missing, a string for
    a number, a list for an object) must never reach code that indexes it, where a
    KeyError or TypeError would end the reader's loop. An answer of the wrong shape is a
    `MalformedMessageError` (the loops take it as they take a node that cannot be reached);
    an entry of a listing that is not of its shape is left out and the other entries are
    used. Each is logged as one warning, once while the node keeps answering the same: an
    agent polls several times a second."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._said: OrderedDict[str, str] = OrderedDict()  # what -> the last warning

    def _warn(self, what: str, text: str | None) -> None:
        if text is None:  # the answer is well-formed again: a relapse is worth a warning
            self._said.pop(what, None)
            return
        if self._said.get(what) != text:
            self.log.warning("%s", text)
        self._said[what] = text
        self._said.move_to_end(what)
        if len(self._said) > MAX_WARNINGS:
            self._said.popitem(last=False)

    def one(self, answer: object, model: type[BaseModel], what: str) -> dict[str, Any]:
        """`answer` as `model` has it (strictly: no string taken for a number), or
        MalformedMessageError."""
        try:
            checked = model.model_validate(answer, strict=True).model_dump()
        except ValidationError as exc:
            text = f"{what} is not of the expected shape: {_problem(exc)}"
            self._warn(what, text)
            raise MalformedMessageError(text) from None
        return checked

    def entries(self, entries: object, model: type[BaseModel], what: str) -> list[dict[str, Any]]:
        """The entries of a listing that have `model`'s shape; the others are left out
        (module docstring). MalformedMessageError if `entries` is not a list."""
        if not isinstance(entries, list):
            text = f"{what} is not a list: the node answered {shown(entries)}"
            self._warn(what, text)
            raise MalformedMessageError(text)
        kept, problems = [], []
        for index, entry in enumerate(entries):
            try:
                kept.append(model.model_validate(entry, strict=True).model_dump())
            except ValidationError as exc:
                problems.append(f"entry {index}: {_problem(exc)}")
        text = None
        if problems:
            others = "; ..." if len(problems) > 1 else ""
            text = (f"{what}: {len(problems)} of {len(entries)} entries are not of the "
                    f"expected shape and are left out ({problems[0]}{others})")  # fmt: skip
        self._warn(what, text)
        return kept

    def tasks(self, answer: object, what: str) -> TaskListing:
        """A `GET /market/tasks` answer: its envelope is checked as a whole, its tasks one
        by one (`entries`)."""
        # The envelope is checked without its tasks, so that one malformed task does not
        # hide the others.
        whole = {**answer, "tasks": []} if isinstance(answer, dict) else answer
        now_ms = self.one(whole, TaskList, what)["now_ms"]  # raises unless an object
        raw = answer.get("tasks") if isinstance(answer, dict) else None
        tasks = self.entries(raw, TaskView, f"{what} (tasks)")
        return TaskListing(now_ms, tasks, len(raw) if isinstance(raw, list) else 0)
