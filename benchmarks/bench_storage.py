"""Content-addressed store: put and get beside the plain way (one file, one hash), in one run.

Prints one JSON object: for each object size, the median seconds (of `--repeats`) of
- `ContentStore.put` (chunk, hash each block, write and fsync each block, then the manifest)
  and `ContentStore.get` (read and re-hash every block);
- the reference a researcher would write: `hashlib.sha256` of the whole object, one file
  written and fsynced under that name, and read back with the hash checked.
The store buys chunk deduplication, streaming and per-block integrity; this measures its price.

    .venv/bin/python benchmarks/bench_storage.py [--sizes 10 50 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mercat.storage.store import ContentStore


def plain_put(root: Path, data: bytes) -> str:
    name = hashlib.sha256(data).hexdigest()
    with open(root / name, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return name


def plain_get(root: Path, name: str) -> bytes:
    data = (root / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != name:
        raise AssertionError("corrupted")
    return data


def clock(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200], help="MB")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    root = Path(tempfile.mkdtemp(prefix="mercat-bench-storage-"))
    rows = []
    try:
        store = ContentStore(root / "store")
        (root / "plain").mkdir()
        for mb in args.sizes:
            timings: dict[str, list[float]] = {
                "put": [],
                "get": [],
                "plain_put": [],
                "plain_get": [],
            }
            for _ in range(args.repeats):
                data = rng.bytes(mb * 1_000_000)
                cid, seconds = clock(store.put, data)
                timings["put"].append(seconds)
                back, seconds = clock(store.get, cid)
                timings["get"].append(seconds)
                assert back == data
                name, seconds = clock(plain_put, root / "plain", data)
                timings["plain_put"].append(seconds)
                back, seconds = clock(plain_get, root / "plain", name)
                timings["plain_get"].append(seconds)
            median = {k: statistics.median(v) for k, v in timings.items()}
            rows.append(
                {
                    "MB": mb,
                    **{f"{k}_seconds": v for k, v in median.items()},
                    "put_MBps": mb / median["put"],
                    "get_MBps": mb / median["get"],
                    "put_vs_plain": median["put"] / median["plain_put"],
                    "get_vs_plain": median["get"] / median["plain_get"],
                }
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "storage",
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "chunk_size": store.chunk_size,
                "sizes": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
