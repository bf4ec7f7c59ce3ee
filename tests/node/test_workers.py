"""The node's worker pool: a job that runs too long is killed with its process, one that needs
too much memory fails, the queue is bounded, and errors come back as mercat's. Each outcome is
forced (a job that sleeps a minute against a limit of a fraction of a second, an allocation
of twice the limit), so no test depends on how fast the machine is."""

from __future__ import annotations

import operator
import time

import anyio
import pytest

from mercat.errors import (
    InternalError,
    InvalidParameterError,
    NodeBusyError,
    WorkTimeoutError,
    WorkTooLargeError,
)
from mercat.node.jobs import parse_json
from mercat.node.workers import WorkerPool


def run(main):
    return anyio.run(main)


def test_values_and_mercat_errors_come_back_and_the_worker_is_reused():
    pool = WorkerPool(workers=1, queue=0, time_limit=60)

    async def main():
        try:
            assert await pool.call(parse_json, b'{"a": [1, 2]}') == {"a": [1, 2]}
            with pytest.raises(InvalidParameterError, match="not valid JSON"):
                await pool.call(parse_json, b"{")
            with pytest.raises(InvalidParameterError, match="more than 64 levels deep"):
                await pool.call(parse_json, b"[" * 200_000)
            assert pool.started == 1  # the same process served all three
        finally:
            pool.close()

    run(main)


def test_a_bug_in_a_job_is_an_internal_error_without_its_traceback():
    pool = WorkerPool(workers=1, queue=0, time_limit=60)

    async def main():
        try:
            with pytest.raises(InternalError) as error:
                await pool.call(operator.truediv, 1, 0)
            assert "ZeroDivision" not in str(error.value) and "Traceback" not in str(error.value)
            assert await pool.call(operator.add, 2, 3) == 5  # a fresh worker took over
        finally:
            pool.close()

    run(main)


def test_a_job_past_the_time_limit_is_killed_and_the_pool_goes_on():
    pool = WorkerPool(workers=1, queue=0, time_limit=0.5)

    async def main():
        try:
            with pytest.raises(WorkTimeoutError, match=r"0\.5 s"):
                await pool.call(time.sleep, 120)
            assert pool.started == 0  # its process was killed, not left running
            assert await pool.call(operator.add, 1, 1) == 2
        finally:
            pool.close()

    run(main)


def test_a_job_that_needs_more_memory_than_allowed_fails_cleanly():
    pool = WorkerPool(workers=1, queue=0, time_limit=60, memory_bytes=1 << 30)

    async def main():
        try:
            with pytest.raises(WorkTooLargeError, match="1024 MiB"):
                await pool.call(bytearray, 2 << 30)
            assert await pool.call(len, bytearray(10)) == 10
        finally:
            pool.close()

    run(main)


def test_jobs_beyond_the_workers_and_the_queue_are_refused_at_once():
    pool = WorkerPool(workers=1, queue=1, time_limit=60)

    async def main():
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(pool.call, time.sleep, 120)  # holds the only worker
                while pool.started == 0 or pool._slots.value:
                    await anyio.sleep(0.01)
                group.start_soon(pool.call, time.sleep, 120)  # waits in the queue
                while pool._waiting == 0:
                    await anyio.sleep(0.01)
                with pytest.raises(NodeBusyError) as busy:
                    await pool.call(operator.add, 1, 1)
                assert busy.value.retry_after == 60
                group.cancel_scope.cancel()  # the clients went away: their jobs are killed
        finally:
            pool.close()
        assert pool.started == 0

    run(main)
