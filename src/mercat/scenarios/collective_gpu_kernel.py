"""The CUDA kernel of the gpu engine (`collective_gpu`): thread r runs Monte Carlo run r.

Kept apart because it imports numba-cuda, an optional dependency (`pip install
'mercat[gpu]'`), and because numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1) finds the
`cuda` module among a kernel's globals to give each simulated thread its indices.

The body is `collective_body.build_body` compiled as a device function over numba-cuda's
own xoroshiro128+ (`numba.cuda.random.xoroshiro128p_next`). Arrays are run-minor: thread r
works on column r (`fa[:, r]`), so a warp's loads of the same element of 32 runs fall in
neighbouring words.

`make_kernel` builds the kernel in the variants that `benchmarks/bench_gpu.py` measures
side by side; every variant gives the same runs bit for bit (the same body, the same
draws), only where the generator's state lives and how many registers a thread may hold
differ:

- `state_in_registers`: the thread copies its xoroshiro128+ state from the launch's array
  into a one-element local array and draws from that, so the two words can live in
  registers instead of being loaded from and stored to global memory at every draw;
- `assets_run_major`: the arrays indexed by asset (`collective_body.PER_ASSET`) hold each
  run's row contiguously instead of interleaving the runs; a thread's random picks then
  stay within its own few kilobytes rather than rows a launch's width apart;
- the variant's `records_packed` (with `assets_run_major`) is a layout, not a kernel: an
  asset's stake, failure rate, task counts and creation and removal times share one
  32-byte record (`collective_gpu.RECORD_FIELDS`), so a pick and its settlement touch one
  memory sector of the asset, not five. The same kernel gets strided views of the records
  instead of arrays of their own (numba compiles it for those types on first launch);
- `max_registers`: a cap on the registers per thread (more resident threads per
  multiprocessor, at the risk of spilling to local memory).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from numba import config as numba_config
from numba import cuda
from numba.cuda.random import xoroshiro128p_dtype, xoroshiro128p_next

from mercat.scenarios.collective_body import build_body

run_body = build_body(cuda.jit(device=True), xoroshiro128p_next).run


def make_kernel(
    state_in_registers: bool = True,
    assets_run_major: bool = False,
    max_registers: int | None = None,
) -> Any:
    """The kernel in one variant (module docstring); compiled on its first launch. Its arrays
    are laid out as `collective_gpu.device_layout` says, and `collective_gpu.allocate` makes
    them."""
    # numba-cuda's simulator runs threads in Python and takes no register cap
    capped = max_registers and not numba_config.ENABLE_CUDASIM
    jit = cuda.jit(max_registers=max_registers) if capped else cuda.jit

    @jit
    def kernel(
        states, pool, fparams, iparams,
        failed, live_count, fa, created, removed, stake, tasks_run, tasks_failed,
        comb_members, comb_rates, picks, live, chosen, counts,
    ):  # fmt: skip
        r = cuda.grid(1)
        if r >= states.shape[0]:
            return
        if state_in_registers:
            own = cuda.local.array(1, xoroshiro128p_dtype)
            own[0]["s0"] = states[r]["s0"]
            own[0]["s1"] = states[r]["s1"]
            stream, index = own, 0
        else:
            stream, index = states, r
        if assets_run_major:
            n_assets, n_comb, tp, fp, ok = run_body(
                stream, index, pool, fparams, iparams, failed[:, r], live_count[:, r], fa[r],
                created[r], removed[r], stake[r], tasks_run[r], tasks_failed[r],
                comb_members[r], comb_rates[r], picks[:, :, r], live[r], chosen[:, r],
            )  # fmt: skip
        else:
            n_assets, n_comb, tp, fp, ok = run_body(
                stream, index, pool, fparams, iparams, failed[:, r], live_count[:, r], fa[:, r],
                created[:, r], removed[:, r], stake[:, r], tasks_run[:, r], tasks_failed[:, r],
                comb_members[:, :, r], comb_rates[:, r], picks[:, :, r], live[:, r], chosen[:, r],
            )  # fmt: skip
        counts[0, r] = n_assets
        counts[1, r] = n_comb
        counts[2, r] = tp
        counts[3, r] = fp
        counts[4, r] = ok

    return kernel


@cache
def kernel_for(
    state_in_registers: bool, assets_run_major: bool, max_registers: int | None, **layout: Any
) -> Any:
    """The kernel for a variant of `collective_gpu.DEFAULT_VARIANT`'s keys (its layout keys
    apart), made once per process: numba compiles it on first launch."""
    return make_kernel(state_in_registers, assets_run_major, max_registers)


TRANSPOSE_BLOCK = (32, 8)


@cuda.jit
def transpose(source, target):
    """target[r, i] = source[i, r]: a run-minor array (2-D view: its other axes, runs) made
    run-major on the device, so that the host gets each run's row contiguous (transposing
    gigabytes there took longer than the simulation). Threads along x take neighbouring
    runs, so the reads coalesce."""
    r, i = cuda.grid(2)
    if r < source.shape[1] and i < source.shape[0]:
        target[r, i] = source[i, r]
