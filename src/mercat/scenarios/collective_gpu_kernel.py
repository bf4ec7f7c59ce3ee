"""The CUDA kernel of the gpu engine (`collective_gpu`): thread r runs Monte Carlo run r.

Kept apart because it imports numba-cuda, an optional dependency (`pip install
'mercat[gpu]'`), and because numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1) finds the
`cuda` module among a kernel's globals to give each simulated thread its indices.

The body is `collective_body.build_body` compiled as a device function over numba-cuda's
own xoroshiro128+ (`numba.cuda.random.xoroshiro128p_next`). Arrays are run-minor: thread r
works on column r (`fa[:, r]`), so a warp's loads of the same element of 32 runs fall in
neighbouring words.
"""

from __future__ import annotations

from numba import cuda
from numba.cuda.random import xoroshiro128p_next

from mercat.scenarios.collective_body import build_body

run_body = build_body(cuda.jit(device=True), xoroshiro128p_next).run


@cuda.jit
def kernel(
    states, pool, fparams, iparams,
    failed, live_count, fa, created, removed, stake, tasks_run, tasks_failed,
    comb_members, comb_rates, picks, live, chosen, counts,
):  # fmt: skip
    r = cuda.grid(1)
    if r >= states.shape[0]:
        return
    n_assets, n_comb, tp, fp, ok = run_body(
        states, r, pool, fparams, iparams, failed[:, r], live_count[:, r], fa[:, r],
        created[:, r], removed[:, r], stake[:, r], tasks_run[:, r], tasks_failed[:, r],
        comb_members[:, :, r], comb_rates[:, r], picks[:, :, r], live[:, r], chosen[:, r],
    )  # fmt: skip
    counts[0, r] = n_assets
    counts[1, r] = n_comb
    counts[2, r] = tp
    counts[3, r] = fp
    counts[4, r] = ok
