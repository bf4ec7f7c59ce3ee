"""What sealing a request costs its requester and its provider, beside what the same bytes
cost in the clear, in the same run.

For inputs of several sizes (training data a requester uploads) and outputs (a model a
provider stores), per size, the best of `--repeat` runs, in milliseconds:

- `cid_ms`: computing the CID of the bytes in the clear (what any upload costs: the
  reference);
- `encrypt_ms`: the requester encrypting the input (the storage layer's secretstream, as
  `Requester.submit(..., seal_inputs=True)` does) and `cid_of_ciphertext_ms`;
- `decrypt_ms`: the provider decrypting it;
- `output_encrypt_ms` / `output_decrypt_ms`: the deterministic encryption of an output
  (`encrypt_deterministic`, the synthetic nonce) and its decryption;
- `seal_grant_ms`: sealing a request's two keys to one provider and signing the grant;
  `open_grant_ms`: the provider checking the signature and opening both boxes.

Prints JSON. The machine may be shared: compare the columns of one run.

Usage: .venv/bin/python benchmarks/bench_sealing.py [--sizes-mb 1,8,32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

from mercat.identity import Keypair
from mercat.node.sealing import grant_for, open_grant, request_keys
from mercat.storage.content import content_cid
from mercat.storage.encryption import (
    decrypt_deterministic,
    decrypt_pieces,
    encrypt_deterministic,
    encrypt_pieces,
)

MAX_MB = 256


def best_ms(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(1000 * min(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="1,8,32")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes_mb.split(",")]
    if any(not 0 < s <= MAX_MB for s in sizes) or not 1 <= args.repeat <= 20:
        parser.error(f"sizes must lie in (0, {MAX_MB}] MB, --repeat in [1, 20]")
    requester, provider = Keypair.generate(), Keypair.generate()
    keys = request_keys(requester, "bench")
    rows = []
    for size in sizes:
        data = os.urandom(int(size * (1 << 20)))
        sealed = b"".join(encrypt_pieces([data], keys.inputs))
        output = encrypt_deterministic(data, keys.output)
        rows.append(
            {
                "size_mb": size,
                "cid_ms": best_ms(lambda d=data: content_cid(d), args.repeat),
                "encrypt_ms": best_ms(
                    lambda d=data: b"".join(encrypt_pieces([d], keys.inputs)), args.repeat
                ),
                "cid_of_ciphertext_ms": best_ms(lambda s=sealed: content_cid(s), args.repeat),
                "decrypt_ms": best_ms(
                    lambda s=sealed: b"".join(decrypt_pieces([s], keys.inputs)), args.repeat
                ),
                "output_encrypt_ms": best_ms(
                    lambda d=data: encrypt_deterministic(d, keys.output), args.repeat
                ),
                "output_decrypt_ms": best_ms(
                    lambda o=output: decrypt_deterministic(o, keys.output), args.repeat
                ),
            }
        )
    task = {"round": 1, "task": "t1", "request": "bench", "requester": requester.public,
            "assets": [{"asset": "s1", "owner": provider.public, "kind": "server"}]}  # fmt: skip
    both = frozenset({"inputs", "output"})
    grant = grant_for(requester, "ab" * 16, task, "s1", both)
    print(
        json.dumps(
            {
                "sizes": rows,
                "seal_grant_ms": best_ms(
                    lambda: grant_for(requester, "ab" * 16, task, "s1", both), 20
                ),
                "open_grant_ms": best_ms(lambda: open_grant(grant, task, provider), 20),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
