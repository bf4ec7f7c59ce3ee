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


def test_a_work_directory_given_relative_serves_both_twins(tmp_path, monkeypatch):
    # `mercat agent --workdir work`, run from a devnet's directory: the child runs in a
    # directory of its own, so the path must not be taken relative to it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    once = sandbox.run("train-logreg:steps=5", [DATA], parent_dir="work")
    box = sandbox.Sandbox(parent_dir="work")
    try:
        assert box.run("train-logreg:steps=5", [DATA]).output == once.output
    finally:
        box.close()


def test_a_run_past_its_time_is_killed(tmp_path):
    with pytest.raises(SandboxError) as caught:
        sandbox.run("train-logreg:steps=20000", [BIG], sandbox.Limits(seconds=1),
                    parent_dir=tmp_path)  # fmt: skip
    assert caught.value.reason == "timeout"
    assert os.listdir(tmp_path) == []


def test_a_run_past_its_memory_is_stopped():
    # 256 MiB of address space holds the interpreter and numpy (about 100 MiB), not the
    # 60,000 × 256 hidden activations and their gradient (250 MB) this run needs.
    with pytest.raises(SandboxError) as caught:
        sandbox.run("train-mlp:hidden=256,steps=2", [BIG], sandbox.Limits(memory_bytes=256 << 20))
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


# --- the fast path: one zygote forks every run --------------------------------------------


@pytest.fixture(scope="module")
def box():
    sandbox_ = sandbox.Sandbox().start()
    yield sandbox_
    sandbox_.close()


@pytest.mark.parametrize(
    ("workload", "inputs"),
    [
        ("train-logreg:steps=50", [DATA]),
        ("train-mlp:steps=30", [DATA]),
        ("preprocess", [DATA]),
        ("fedavg", [datasets.classification(200, 5, seed=4, clients=5)]),
    ],
)
def test_the_zygote_gives_the_one_shot_childs_bytes(box, workload, inputs):
    assert box.run(workload, inputs).output == sandbox.run(workload, inputs).output


def test_the_zygote_refuses_crashes_and_kills_as_the_one_shot_child_does(box):
    with pytest.raises(InvalidWorkloadError, match="needs a model"):
        box.run("infer", [DATA])
    with pytest.raises(SandboxError) as crashed:
        box.run("train-logreg", [DATA], crash=True)
    assert crashed.value.reason == "crashed"
    slow = sandbox.Sandbox(sandbox.Limits(seconds=1))
    try:
        with pytest.raises(SandboxError) as late:
            slow.run("train-logreg:steps=20000", [BIG])
        assert late.value.reason == "timeout"
        assert slow.run("train-logreg:steps=5", [DATA]).output  # the zygote serves on
    finally:
        slow.close()


def test_runs_go_through_one_zygote_at_once_and_a_dead_zygote_is_replaced(box):
    import threading

    results = {}

    def go(steps):
        results[steps] = box.run(f"train-logreg:steps={steps}", [DATA]).output

    threads = [threading.Thread(target=go, args=(s,)) for s in (10, 20, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(set(results.values())) == 3
    box._zygote.process.kill()  # the zygote dies (the machine's OOM killer, say)
    box._zygote.process.wait()
    assert box.run("train-logreg:steps=10", [DATA]).output == results[10]


def test_work_directories_left_by_a_dead_agent_are_removed_when_a_sandbox_starts(tmp_path):
    # An agent killed mid-task (SIGKILL, the OOM killer, a power cut) cannot remove its
    # run's directory, which holds the task's inputs in the clear (a sealed task's
    # decrypted inputs too). The next sandbox in that directory removes what dead processes
    # left, and nothing of a live one.
    with open("/proc/sys/kernel/pid_max") as handle:
        dead = int(handle.read()) + 1  # no process ever has this id
    for name in (f"mercat-task-{dead}-abc", f"mercat-zygote-{dead}-abc"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "input0.npz").write_bytes(b"plaintext")
    kept = [f"mercat-task-{os.getpid()}-abc", "mercat-task-abc", "unrelated"]
    for name in kept:
        (tmp_path / name).mkdir()
    box = sandbox.Sandbox(parent_dir=tmp_path).start()
    try:
        left = sorted(p.name for p in tmp_path.iterdir() if p.name in kept or str(dead) in p.name)
        assert left == sorted(kept)
        run = box.run("train-logreg:steps=5", [DATA])  # and its own runs are named for it
        assert run.output
    finally:
        box.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
