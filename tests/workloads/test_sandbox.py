"""A workload run in a child process: the same bytes as in process, and every limit holds
(time, memory, output size), a crash is a crash, and nothing is left behind."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mercat.errors import InvalidWorkloadError, SandboxError
from mercat.workloads import archive, datasets, sandbox
from mercat.workloads.catalog import execute
from mercat.workloads.spec import parse

DATA = datasets.classification(200, 5, seed=3)
BIG = datasets.classification(60_000, 40, seed=3)  # 19 MB of features


def test_sandboxed_runs_agree_to_the_byte_and_with_the_in_process_result(tmp_path):
    run = sandbox.run("train-logreg:steps=50", [DATA], parent_dir=tmp_path)
    assert sandbox.run("train-logreg:steps=50", [DATA]).output == run.output  # replicas agree
    # In this process BLAS may use several threads and sum in another order: equal to
    # rounding, not to the byte (which is why the sandbox pins BLAS to one thread).
    here = archive.load(execute(parse("train-logreg:steps=50"), [DATA])[0])[1]["w"]
    assert np.allclose(archive.load(run.output)[1]["w"], here, rtol=1e-10, atol=1e-12)
    assert run.summary["accuracy"] > 0.5
    assert os.listdir(tmp_path) == []  # the work directory is gone


def test_a_run_past_its_time_is_killed(tmp_path):
    with pytest.raises(SandboxError) as caught:
        sandbox.run("train-logreg:steps=20000", [BIG], sandbox.Limits(seconds=1),
                    parent_dir=tmp_path)  # fmt: skip
    assert caught.value.reason == "timeout"
    assert os.listdir(tmp_path) == []


def test_a_run_past_its_memory_is_stopped():
    with pytest.raises(SandboxError) as caught:
        sandbox.run("train-logreg", [BIG], sandbox.Limits(memory_bytes=96 << 20))
    assert caught.value.reason == "memory"


def test_an_output_past_its_size_is_refused():
    with pytest.raises(SandboxError) as caught:
        sandbox.run("preprocess", [DATA], sandbox.Limits(output_bytes=4096))
    assert caught.value.reason == "output"


def test_a_crash_is_reported_as_a_crash():
    with pytest.raises(SandboxError) as caught:
        sandbox.run("train-logreg", [DATA], crash=True)
    assert caught.value.reason == "crashed"
    assert "signal 9" in str(caught.value)


def test_the_workloads_own_refusal_comes_back_whole():
    with pytest.raises(InvalidWorkloadError, match="needs a model"):
        sandbox.run("infer", [DATA])


def test_a_corrupted_run_differs_from_the_honest_one():
    honest = sandbox.run("train-logreg:steps=20", [DATA]).output
    assert sandbox.run("train-logreg:steps=20", [DATA], corrupt=True).output != honest
