"""The gpu engine of seed 000's collective simulation, proven without a GPU.

- its body is the fast engine's (`collective_body`, one source), which
  test_collective_engines holds equal to the readable reference engine event for event;
- the CPU twin's xoroshiro128+ is numba-cuda's, draw for draw;
- the CUDA kernel under numba-cuda's simulator gives the CPU twin's runs bit for bit, and
  its device-side transposition of the outputs is numpy's;
- the twin (the GPU's streams) agrees with the fast engine in distribution, and the same
  test tells a slightly different market apart;
- without a GPU the engine refuses in one line, as it refuses a plug-in rule.
"""

import json
import os
import re
import struct
import subprocess
import sys
import types

import numpy as np
import pytest

from mercat.errors import DeviceUnavailableError, InvalidParameterError
from mercat.scenarios import collective_body, collective_gpu
from mercat.scenarios import collective_metrics as metrics
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import check_engine, failure_rate_pool, simulate

MASK64 = (1 << 64) - 1


def test_runs_that_outgrow_their_arrays_are_rerun_alike():
    # S0 = 2 and a top-up whenever fewer than 4 remain: far more assets than the first guess
    config = CollectiveConfig(mechanism="coll-stake", assets=4, tasks=3_000, stake=2.0, alpha=1.0)
    pool = failure_rate_pool(config, 1)
    states = collective_gpu.gpu_states(1, 3)
    twin = collective_gpu.simulate_runs_twin(config, states, pool)
    assert twin[0].failure_rate.size > collective_body.initial_capacity(config)
    alone = collective_gpu.simulate_runs_twin(config, states[1:2], pool)
    assert twin[1].differences(alone[0]) == []


def _xoroshiro128p_python(s0: int, s1: int, draws: int) -> list[int]:
    """xoroshiro128+ on Python integers (Blackman & Vigna's C, line for line)."""

    def rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & MASK64

    out = []
    for _ in range(draws):
        out.append((s0 + s1) & MASK64)
        s1 ^= s0
        s0 = rotl(s0, 55) ^ s1 ^ ((s1 << 14) & MASK64)
        s1 = rotl(s1, 36)
    return out


def test_the_twins_xoroshiro128p_is_the_python_one_and_numba_cudas():
    states = collective_gpu.gpu_states(9, 3)
    expected = [_xoroshiro128p_python(int(s["s0"]), int(s["s1"]), 500) for s in states]
    ours = states.copy()
    got = [[int(collective_body.xoroshiro128p_next(ours, i)) for _ in range(500)] for i in range(3)]
    assert got == expected
    cuda_random = pytest.importorskip("numba.cuda.random")
    if collective_gpu.simulator_enabled():
        pytest.skip("numba-cuda's generator is Python code under the simulator")
    theirs = states.copy()
    got = [[int(cuda_random.xoroshiro128p_next(theirs, i)) for _ in range(500)] for i in range(3)]
    assert got == expected


def test_streams_depend_on_the_run_only():
    whole = collective_gpu.gpu_states(4, 6)
    assert np.array_equal(collective_gpu.gpu_states(4, 2, first_run=3), whole[3:5])
    assert len({(int(s["s0"]), int(s["s1"])) for s in whole}) == 6
    other = collective_gpu.gpu_states(5, 6)
    assert not np.array_equal(whole, other)


SIMULATED = """
import json, sys
import numpy as np
from mercat.scenarios import collective_gpu
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import failure_rate_pool, simulate
configs, variants = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {}
for i, kwargs in enumerate(configs):
    config = CollectiveConfig(**kwargs)
    runs = {"engine": simulate(config, runs=3, seed=11, engine="gpu", batch=2).runs}
    for v, variant in enumerate(variants):  # the kernel's other variants, directly
        states = collective_gpu.gpu_states(11, 3)
        pool = failure_rate_pool(config, 11)
        runs[f"variant{v}"] = collective_gpu.simulate_runs(config, states, pool, variant=variant)
    for source, records in runs.items():
        for r, run in enumerate(records):
            for name, value in vars(run).items():
                if value is not None:
                    out[f"{source}/{i}/{r}/{name}"] = np.asarray(value)
np.savez(sys.argv[3], **out)
"""

# variants the engine does not use but the benchmark measures (`bench_gpu.py --variants`)
SIMULATED_VARIANTS = [
    {"records_packed": True},
    {"records_packed": True, "state_in_registers": False, "max_registers": None},
    {"assets_run_major": False},
]

SIMULATED_CONFIGS = [
    {"mechanism": "coll-sr", "assets": 10, "tasks": 150, "replacement_interval": 25},
    {
        "mechanism": "coll-stake", "assets": 6, "tasks": 120, "stake": 3.0, "alpha": 0.5,
        "replacement_interval": 10, "replacement": "refill", "combinations_per_asset": 1,
        "failure_rate_sampling": "direct",
    },
    # far more assets than the first guess of room: the kernel's runs are rerun with more
    {"mechanism": "coll-stake", "assets": 4, "tasks": 100, "stake": 2.0, "alpha": 1.0},
]  # fmt: skip


@pytest.mark.slow
def test_the_kernel_under_the_cuda_simulator_is_the_twin_bit_for_bit(tmp_path):
    """Through the engine (`simulate(engine="gpu")`, in batches), and in each of the other
    variants of `SIMULATED_VARIANTS` (packed asset records among them: strided views of one
    array, which must write where the host reads them back)."""
    pytest.importorskip("numba_cuda")
    path = tmp_path / "simulated.npz"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    arguments = [json.dumps(SIMULATED_CONFIGS), json.dumps(SIMULATED_VARIANTS), str(path)]
    subprocess.run(
        [sys.executable, "-c", SIMULATED, *arguments], env=env, check=True, timeout=600
    )  # fmt: skip
    simulated = np.load(path)
    sources = ["engine"] + [f"variant{v}" for v in range(len(SIMULATED_VARIANTS))]
    for i, kwargs in enumerate(SIMULATED_CONFIGS):
        config = CollectiveConfig(**kwargs)
        pool = failure_rate_pool(config, 11)
        twin = collective_gpu.simulate_runs_twin(config, collective_gpu.gpu_states(11, 3), pool)
        for source in sources:
            for r, run in enumerate(twin):
                for name, value in vars(run).items():
                    key = f"{source}/{i}/{r}/{name}"
                    if value is None:
                        assert key not in simulated.files, key
                    else:
                        assert np.array_equal(simulated[key], np.asarray(value)), key
                        assert simulated[key].dtype == np.asarray(value).dtype, key
        assert sum(run.false_positives + run.true_positives for run in twin) > 0
    outgrown = CollectiveConfig(**SIMULATED_CONFIGS[-1])
    for source in sources:
        assert simulated[f"{source}/2/0/failure_rate"].size > collective_body.initial_capacity(
            outgrown
        )


def test_packed_records_are_views_of_one_array():
    """`records_packed`: each per-asset field is a strided view of one 32-byte record per
    asset; writing a field changes its record's bytes only, where the host reads it back."""
    shape = collective_body.shape_of(CollectiveConfig(assets=5, tasks=10), 3, 7, False)
    layout = collective_gpu.device_layout(shape, assets_run_major=True, records_packed=True)
    assert set(collective_gpu.RECORD_FIELDS).isdisjoint(layout)
    records = np.zeros(layout[collective_gpu.RECORDS][0])
    fields = collective_gpu.record_fields(records)
    expected = collective_body.layout(shape, run_axis=0)
    for name, view in fields.items():
        assert view.shape == expected[name][0] and view.dtype == expected[name][1], name
        assert np.shares_memory(view, records), name
    for n, name in enumerate(sorted(fields)):
        fields[name][1, 4] = n + 1
    # the six fields fill asset 4's record of run 1, and nothing else
    assert np.count_nonzero(records[1, 4]) == collective_gpu.RECORD_WORDS
    assert np.count_nonzero(records) == collective_gpu.RECORD_WORDS
    again = collective_gpu.record_fields(records.copy())  # as `outputs_to_host` reads them
    assert all(again[name][1, 4] == n + 1 for n, name in enumerate(sorted(fields)))
    with pytest.raises(ValueError, match="run-major"):
        collective_gpu.device_layout(shape, assets_run_major=False, records_packed=True)


TRANSPOSED = """
import sys
import numpy as np
from numba import cuda
from mercat.scenarios.collective_gpu_kernel import TRANSPOSE_BLOCK, transpose
out = {}
for dtype in (np.bool_, np.int32, np.float64):
    source = (np.arange(3 * 4 * 37) % 7).astype(dtype).reshape(3, 4, 37)  # 37 runs
    flat = cuda.to_device(source).reshape(12, 37)
    target = cuda.device_array((37, 12), dtype=dtype)
    grid = (-(-37 // TRANSPOSE_BLOCK[0]), -(-12 // TRANSPOSE_BLOCK[1]))
    transpose[grid, TRANSPOSE_BLOCK](flat, target)
    out[np.dtype(dtype).name] = target.copy_to_host().reshape(37, 3, 4)
np.savez(sys.argv[1], **out)
"""


@pytest.mark.slow
def test_the_device_transposition_makes_run_minor_arrays_run_major(tmp_path):
    """On a GPU the engine transposes run-minor outputs on the device before copying them
    back (`collective_gpu.to_host_run_major`); under the simulator the host does it, so the
    kernel is checked here on its own: partial blocks on both axes, three dtypes."""
    pytest.importorskip("numba_cuda")
    path = tmp_path / "transposed.npz"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    subprocess.run([sys.executable, "-c", TRANSPOSED, str(path)], env=env, check=True, timeout=300)
    transposed = np.load(path)
    for dtype in (np.bool_, np.int32, np.float64):
        source = (np.arange(3 * 4 * 37) % 7).astype(dtype).reshape(3, 4, 37)
        expected = collective_gpu.run_major(source, -1)
        got = transposed[np.dtype(dtype).name]
        assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_an_empty_output_comes_back_without_a_launch(monkeypatch):
    """A market without combinations has empty combination arrays; on a GPU their copy back
    must not launch the transposition (CUDA refuses a grid of 0 blocks)."""
    monkeypatch.setattr(collective_gpu, "simulator_enabled", lambda: False)
    empty = np.zeros((0, 3, 5), dtype=np.int32)  # shaped as a device array of 5 runs
    got = collective_gpu.to_host_run_major(empty, -1)
    assert got.shape == (5, 0, 3) and got.dtype == np.int32


def _per_run(runs, window):
    """Per-run statistics of seed 000's metrics (and what they are made of)."""
    curves = metrics.moving_average(metrics.failure_matrix(runs), window)
    picked = [r.tasks_run @ r.failure_rate / r.tasks_run.sum() for r in runs]
    return {
        "table_failure_rate": curves[:, :-window].mean(axis=1),
        "whole_run_failure_rate": np.array([r.failed.mean() for r in runs]),
        "removal_precision": np.array([r.removal_precision for r in runs]),
        "true_positives": np.array([r.true_positives for r in runs], dtype=float),
        "false_positives": np.array([r.false_positives for r in runs], dtype=float),
        "assets_created": np.array([r.failure_rate.size for r in runs], dtype=float),
        "mean_live_assets": np.array([r.live_assets.mean() for r in runs]),
        "failure_rate_of_picked_assets": np.array(picked),
    }


def _z_scores(a, b):
    """Two-sample z of the difference of means, per metric (0 where both are constant)."""
    out = {}
    for name in a:
        x, y = a[name], b[name]
        se = np.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
        out[name] = 0.0 if se == 0 else float((x.mean() - y.mean()) / se)
    return out


DISTRIBUTION = {"assets": 30, "tasks": 2_000, "replacement_interval": 100}
RUNS = 400
Z_LIMIT = 4.0  # |z| > 4 by chance: about 6e-5 per metric


def _gpu_streams(config, seed):
    states = collective_gpu.gpu_states(seed, RUNS)
    return collective_gpu.simulate_runs_twin(config, states, failure_rate_pool(config, seed))


@pytest.mark.parametrize("mechanism", ["coll-stake", "coll-sr"])
def test_the_gpu_streams_give_the_fast_engines_distribution(mechanism):
    config = CollectiveConfig(mechanism=mechanism, **DISTRIBUTION)
    fast = simulate(config, runs=RUNS, seed=21, engine="fast").runs
    twin = _gpu_streams(config, 21)  # same pool of failure rates, other streams
    z = _z_scores(_per_run(fast, 100), _per_run(twin, 100))
    assert max(abs(v) for v in z.values()) < Z_LIMIT, z
    from scipy import stats

    for name in ("table_failure_rate", "failure_rate_of_picked_assets"):
        a, b = _per_run(fast, 100)[name], _per_run(twin, 100)[name]
        assert stats.ks_2samp(a, b).pvalue > 1e-4, name


def test_the_distribution_test_tells_a_different_market_apart():
    # the same test against a market whose failure rates are slightly worse (alpha 0.06: a
    # mean Fa of 5.7% instead of 4.8%) must fail; it does with |z| about 8 (a 20% larger
    # penalty gives |z| about 4, a 10% larger one about 2.5: that is the test's resolution)
    config = CollectiveConfig(mechanism="coll-sr", **DISTRIBUTION)
    fast = simulate(config.with_(alpha=0.06), runs=RUNS, seed=21, engine="fast").runs
    twin = _gpu_streams(config, 21)
    z = _z_scores(_per_run(fast, 100), _per_run(twin, 100))
    assert max(abs(v) for v in z.values()) > Z_LIMIT, z


def _no_gpu(monkeypatch):
    pytest.importorskip("numba_cuda")
    from numba import cuda

    monkeypatch.setattr(cuda, "is_available", lambda: False)


NO_GPU = "the gpu engine needs a CUDA GPU (numba-cuda found none); use --engine fast"


def test_without_a_gpu_the_engine_refuses_in_one_line(monkeypatch):
    _no_gpu(monkeypatch)
    config = CollectiveConfig(assets=10, tasks=50)
    with pytest.raises(DeviceUnavailableError) as caught:
        check_engine(config, "gpu")
    assert str(caught.value) == NO_GPU
    with pytest.raises(DeviceUnavailableError):
        simulate(config, runs=2, engine="gpu")


def test_without_numba_cuda_the_engine_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba_cuda", None)  # import numba_cuda: ImportError
    with pytest.raises(DeviceUnavailableError, match=r"pip install 'mercat\[gpu\]'"):
        check_engine(CollectiveConfig(assets=10, tasks=50), "gpu")


def test_a_numba_cuda_that_cannot_load_its_target_is_refused_in_one_line(monkeypatch):
    """numba-cuda 0.30.4 under numpy 2.5 sees the GPU, then fails at the first compilation
    (its CUDA target registers np.row_stack, which numpy 2.5 removed); the engine says so
    before it launches anything."""
    pytest.importorskip("numba_cuda")
    from numba import cuda

    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "numba.cuda.np.arrayobj", None)  # its import fails
    with pytest.raises(DeviceUnavailableError) as caught:
        check_engine(CollectiveConfig(assets=10, tasks=50), "gpu")
    message = str(caught.value)
    assert "cannot load its CUDA target" in message and "pip install 'numpy<2.5'" in message
    assert "\n" not in message


def test_the_cli_refuses_in_one_line_and_exits_2(monkeypatch):
    from typer.testing import CliRunner

    from mercat.cli import app

    _no_gpu(monkeypatch)
    out = CliRunner().invoke(app, ["simulate", "collective", "--engine", "gpu", "--runs", "2"])
    assert out.exit_code == 2
    assert out.output.strip() == f"error: {NO_GPU}"


def test_a_plug_in_rule_is_refused_before_the_gpu_is_looked_for(monkeypatch):
    monkeypatch.setattr(collective_gpu, "require_gpu", lambda: pytest.fail("looked for a GPU"))
    config = CollectiveConfig(mechanism="tests.incentives.rules_for_tests:HalvingRule", assets=10)
    with pytest.raises(InvalidParameterError, match="the gpu engine compiles seed 000's four"):
        check_engine(config, "gpu")


_TWO_POW_MINUS_53_PTX = "0d" + struct.pack(">d", 2.0**-53).hex().upper()  # as PTX writes it


@pytest.mark.slow
@pytest.mark.parametrize("packed", [False, True], ids=["engine", "records_packed"])
def test_the_kernel_compiles_to_ptx_without_contracted_arithmetic(monkeypatch, packed):
    """The kernel lowers for an H100/H200 (sm_90) with numba-cuda's NVVM, and its own code
    has no fused multiply-add (which would round differently from the CPU twin): the only
    ones are inside libdevice's pow, which only the direct failure-rate draw calls. The
    engine's variant, and packed asset records (strided views)."""
    pytest.importorskip("numba_cuda")
    if collective_gpu.simulator_enabled():
        pytest.skip("the simulator does not compile")
    import numba
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as exc:  # no NVVM here: nothing to compile with
        pytest.skip(f"numba-cuda's NVVM is not installed ({exc}); pip install 'mercat[gpu]'")
    # device functions ask the current GPU for its compute capability; there is none here
    monkeypatch.setattr(
        dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=(9, 0))
    )
    from mercat.scenarios.collective_gpu_kernel import kernel_for

    variant = {**collective_gpu.DEFAULT_VARIANT, "records_packed": packed}
    kernel = kernel_for(**variant)
    config = CollectiveConfig(assets=10, tasks=50, combinations_per_asset=1)
    pool, fparams, iparams = collective_body.pack_parameters(config, np.zeros(3), False)
    shape = collective_body.shape_of(config, 4, 64, False)
    layout = collective_gpu.device_layout(shape, variant["assets_run_major"], packed)
    arrays = {name: np.zeros(dims, dtype) for name, (dims, dtype, _) in layout.items()}
    if packed:
        arrays.update(collective_gpu.record_fields(arrays[collective_gpu.RECORDS]))
    args = [collective_gpu.gpu_states(1, 4), pool, fparams, iparams]
    args += [arrays[name] for name in collective_body.ORDER]
    try:
        ptx, _ = cuda.compile_ptx(kernel.py_func, tuple(numba.typeof(a) for a in args), cc=(9, 0))
    except Exception as exc:  # NVVM found, but not the rest of the toolkit (NVRTC, libdevice)
        if type(exc).__name__ != "DynamicLibNotFoundError":
            raise
        pytest.skip(
            f"numba-cuda's CUDA libraries are not all installed ({exc}); pip install 'mercat[gpu]'"
        )
    start = ptx.index(".entry")
    own = ptx[start : ptx.index("\n}\n", start)]  # the kernel's own code, libdevice's apart
    assert "ld.global" in own and "st.global" in own
    assert "fma." not in own
    # nor a product that ptxas could fuse into a sum, but the uniform's exact scaling by
    # 2^-53 (an integer below 2^53 times a power of two: fused or not, the same double)
    products = dict(re.findall(r"mul(?:\.\w+)*\.f64\s+(%fd\d+),\s*([^;]+);", own))
    for operands in re.findall(r"(?:add|sub)(?:\.\w+)*\.f64\s+%fd\d+,\s*([^;]+);", own):
        for operand in (o.strip() for o in operands.split(",")):
            if operand in products:
                assert products[operand].endswith(_TWO_POW_MINUS_53_PTX), products[operand]


def test_a_scenario_file_asking_for_the_gpu_engine_is_refused_in_one_line(monkeypatch):
    from mercat.errors import ScenarioError
    from mercat.workbench.scenario import parse_scenario

    _no_gpu(monkeypatch)
    text = (
        '[scenario]\nname = "s"\nsimulation = "collective"\nruns = 2\n'
        '[parameters]\nassets = 10\ntasks = 50\nengine = "gpu"\n'
    )
    with pytest.raises(ScenarioError, match=r"s.toml: \[parameters\]: the gpu engine needs"):
        parse_scenario(text, "s.toml")
