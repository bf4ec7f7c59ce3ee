"""Content-addressed store: put and get beside the plain way (one file, one hash), in one run.

Prints one JSON object: for each chunk size and object size, the median seconds (of
`--repeats`) of
- `ContentStore.put` (chunk, hash each block, write and fsync each leaf and UnixFS node, then
  the root) and `ContentStore.get` (read and re-hash every block, check every node's sizes);
- the reference a researcher would write: `hashlib.sha256` of the whole object, one file
  written and fsynced under that name, and read back with the hash checked.
The store buys chunk deduplication, streaming and per-block integrity; this measures its price.

    .venv/bin/python benchmarks/bench_storage.py [--sizes 10 50 200] [--repeats 3]
        [--chunk-kib 256 1024]

Chunk sizes are measured in the same run, one after the other per object, so that the
machine's state weighs on each alike (256 KiB is kubo's default and mercat's; 1 MiB is the
`unixfs-v1-2025` profile's).
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
    parser.add_argument("--chunk-kib", type=int, nargs="+", default=[256, 1024])
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    root = Path(tempfile.mkdtemp(prefix="mercat-bench-storage-"))
    rows = []
    try:
        stores = {
            kib: ContentStore(root / f"store{kib}", chunk_size=kib * 1024) for kib in args.chunk_kib
        }
        (root / "plain").mkdir()
        for mb in args.sizes:
            timings: dict[str, list[float]] = {"plain_put": [], "plain_get": []}
            for kib in stores:
                timings[f"put_{kib}KiB"], timings[f"get_{kib}KiB"] = [], []
            for _ in range(args.repeats):
                data = rng.bytes(mb * 1_000_000)
                for kib, store in stores.items():
                    cid, seconds = clock(store.put, data)
                    timings[f"put_{kib}KiB"].append(seconds)
                    back, seconds = clock(store.get, cid)
                    timings[f"get_{kib}KiB"].append(seconds)
                    assert back == data
                name, seconds = clock(plain_put, root / "plain", data)
                timings["plain_put"].append(seconds)
                back, seconds = clock(plain_get, root / "plain", name)
                timings["plain_get"].append(seconds)
            median = {k: statistics.median(v) for k, v in timings.items()}
            row = {"MB": mb, **{f"{k}_seconds": v for k, v in median.items()}}
            for kib in stores:
                row[f"put_{kib}KiB_MBps"] = mb / median[f"put_{kib}KiB"]
                row[f"get_{kib}KiB_MBps"] = mb / median[f"get_{kib}KiB"]
                row[f"put_{kib}KiB_vs_plain"] = median[f"put_{kib}KiB"] / median["plain_put"]
                row[f"get_{kib}KiB_vs_plain"] = median[f"get_{kib}KiB"] / median["plain_get"]
            rows.append(row)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "storage",
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "chunk_KiB": args.chunk_kib,
                "sizes": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
