"""One put and one get of a fresh object through `ContentStore`, as JSON: the unit of an A/B
comparison between two versions of mercat run alternately, each from its own source tree.

    PYTHONPATH=OLD/src .venv/bin/python benchmarks/bench_storage_once.py 200 1048576
    PYTHONPATH=src     .venv/bin/python benchmarks/bench_storage_once.py 200 1048576

Arguments: object size in MB (10^6 bytes), chunk size in bytes. The object is the same bytes
for the same size in every run (seeded), and the store is a fresh temporary directory.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time

import numpy as np

from mercat.storage.store import ContentStore


def main() -> None:
    mb, chunk = int(sys.argv[1]), int(sys.argv[2])
    data = np.random.default_rng(0).bytes(mb * 1_000_000)
    root = tempfile.mkdtemp(prefix="mercat-bench-once-")
    try:
        store = ContentStore(root, chunk_size=chunk)
        start = time.perf_counter()
        cid = store.put(data)
        put = time.perf_counter() - start
        start = time.perf_counter()
        if store.get(cid) != data:
            raise AssertionError("content changed")
        get = time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        json.dumps(
            {"MB": mb, "chunk": chunk, "cid": cid, "put_MBps": mb / put, "get_MBps": mb / get}
        )
    )


if __name__ == "__main__":
    main()
