"""Every stage's events, written as JSON lines and read back per round."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mercat.clearing import registry
from mercat.errors import InvalidParameterError
from mercat.runtime import events as ev
from mercat.runtime.execute import SampledExecution
from mercat.runtime.memory import MemoryBook
from mercat.runtime.round import RoundPlan, run_round
from tests.runtime.scenario import populate
from tests.runtime.test_parity import RULE, UNIT


def test_the_log_tells_each_round_and_adds_up(tmp_path):
    book = MemoryBook(RULE, unit=UNIT)
    rng = np.random.default_rng(3)
    world = populate(book, rng)
    log = ev.JsonlLog(tmp_path / "events.jsonl")
    plan = RoundPlan(registry.create("optimal"), SampledExecution(world["failure"]), log=log)
    reports = [run_round(book, r, plan, rng) for r in (1, 2, 3)]
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in lines]
    assert kinds.count("round_opened") == kinds.count("round_closed") == 3
    assert (
        kinds.count("task_opened")
        == kinds.count("task_settled")
        == sum(len(r.tasks) for r in reports)
    )
    rows = ev.summarize(tmp_path / "events.jsonl")
    assert [row["round"] for row in rows] == [1, 2, 3]
    for row, report in zip(rows, reports, strict=True):
        assert (row["tasks"], row["paid"], row["failed"]) == (
            len(report.tasks),
            report.paid,
            report.failed,
        )
        assert row["charged"] == sum(s.charge for s in report.settlements)
        assert row["welfare"] == pytest.approx(report.welfare)


def test_a_log_that_is_not_one_is_refused_with_its_line(tmp_path):
    (tmp_path / "junk").write_text("not json\n")
    with pytest.raises(InvalidParameterError, match="junk:1"):
        ev.summarize(tmp_path / "junk")
    with pytest.raises(InvalidParameterError, match="cannot read"):
        ev.summarize(tmp_path / "missing")


@pytest.mark.parametrize(
    "content",
    [
        b'{"kind": "round_opened", "round": 1}\n',  # the kind's fields missing
        b'{"kind": "cleared", "round": 1, "mechanism": "optimal"}\n',
        b'{"kind": "round_closed", "round": 1, "tasks": 2}\n',
        b'{"kind": "asset_removed", "round": 1e999, "asset": "a"}\n',  # no integer round
        b'{"kind": "round_opened", "round": 1, "requests": 1, "servers": 1}\n[1, 2]\n',
    ],
)
def test_an_event_without_its_fields_is_refused_with_its_line(tmp_path, content):
    (tmp_path / "short").write_bytes(content)
    line = content.count(b"\n")
    with pytest.raises(InvalidParameterError, match=f"short:{line} is not a mercat event"):
        ev.summarize(tmp_path / "short")


def test_a_log_that_is_not_text_is_refused(tmp_path):
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00events")
    with pytest.raises(InvalidParameterError, match="not UTF-8"):
        ev.summarize(tmp_path / "binary")
