"""The sandboxed side of `mercat.workloads.sandbox`: `python -I -m mercat.workloads.child DIR`
(the one-shot reference), or a child forked by the zygote (`mercat.workloads.zygote`).

It limits itself before anything else (the limits come in `DIR/job.json`, written by the
parent), then imports numpy, reads the inputs, runs the workload and writes `output.npz`
and `result.json` in DIR. Exit code 0 with `{"ok": true}`: done; `{"ok": false}`: the
workload refused its inputs or ran out of memory, and says why; anything else (a signal, no
result file) is a crash.
"""

from __future__ import annotations

import errno
import json
import math
import os
import resource
import signal
import sys
from pathlib import Path

from mercat.lifetime import die_with_parent, parent_from_environment

NOFILE = 64


def limit_self(seconds: float, memory_bytes: int, output_bytes: int) -> None:
    cpu = max(1, math.ceil(seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # output.npz is the largest file it writes; result.json is far smaller
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str]) -> int:
    # when the parent (the agent or oracle) dies, or at once if it died already
    die_with_parent(signal.SIGKILL, parent_from_environment())
    return run_job(argv[1])


def run_job(directory: str) -> int:
    """Limit this process, run the job in `directory`, write its result; the exit code.
    (The zygote's forked children start here too, with the imports already done.)"""
    workdir = Path(directory)
    job = json.loads((workdir / "job.json").read_text(encoding="utf-8"))
    limits = job["limits"]
    limit_self(limits["seconds"], limits["memory_bytes"], limits["output_bytes"])

    def answer(result: dict[str, object], code: int) -> int:
        (workdir / "result.json").write_text(json.dumps(result), encoding="utf-8")
        return code

    try:
        from mercat.errors import InvalidWorkloadError
        from mercat.workloads.catalog import execute
        from mercat.workloads.spec import parse

        spec = parse(job["workload"])
        blobs = [(workdir / name).read_bytes() for name in job["inputs"]]
        output, summary = execute(spec, blobs, corrupt=bool(job.get("corrupt")))
    except MemoryError:
        return answer({"ok": False, "kind": "memory", "error": "the workload ran out of memory"}, 4)
    except InvalidWorkloadError as exc:
        return answer({"ok": False, "kind": "invalid", "error": str(exc)}, 3)
    if job.get("crash"):  # failure injection: the provider dies with the work done
        os.kill(os.getpid(), signal.SIGKILL)
    try:
        (workdir / "output.npz").write_bytes(output)
    except OSError as exc:  # Python ignores SIGXFSZ: a write past RLIMIT_FSIZE fails (EFBIG)
        if exc.errno != errno.EFBIG:
            raise
        return answer({"ok": False, "kind": "output", "error": "the output is too large"}, 5)
    return answer({"ok": True, "summary": summary}, 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
