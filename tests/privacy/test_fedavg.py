"""Federated averaging with private updates: the fast path equals its readable twin, the
noise goes where the configuration says, and the accountant sees what was released."""

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.errors import InvalidParameterError
from mercat.privacy.accountant import GaussianRuns
from mercat.privacy.fedavg import FedAvgConfig, make_federation, train, train_reference


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    clients=st.integers(1, 40),
    noise=st.sampled_from(["none", "central", "local", "example"]),
    rate=st.sampled_from([0.05, 0.3, 1.0]),
    steps=st.integers(1, 3),
)
def test_the_fast_path_equals_the_reference(seed, clients, noise, rate, steps):
    federation = make_federation(clients, 5, np.random.default_rng(seed), mean_examples=8)
    cfg = FedAvgConfig(
        rounds=6,
        sampling_rate=rate,
        local_steps=steps,
        noise=noise,
        noise_multiplier=0.0 if noise == "none" else 0.8,
        clip_norm=0.5,
    )
    fast = train(federation, cfg, np.random.default_rng(seed + 1))
    reference = train_reference(federation, cfg, np.random.default_rng(seed + 1))
    assert np.allclose(fast.weights, reference.weights, rtol=1e-10, atol=1e-12)
    # Accuracy counts signs of x·w: the engines' sums run in different orders, so a test point
    # within rounding of the boundary could flip; one point is the most that may differ.
    assert np.abs(fast.accuracy - reference.accuracy).max() <= 1.5 / len(federation.test_y)
    assert np.array_equal(fast.participations, reference.participations)


@pytest.fixture(scope="module")
def federation():
    return make_federation(300, 10, np.random.default_rng(3))


def test_plain_fedavg_learns(federation):
    result = train(
        federation,
        FedAvgConfig(rounds=30, noise="none", noise_multiplier=0.0),
        np.random.default_rng(0),
    )
    majority = max(federation.test_y.mean(), 1 - federation.test_y.mean())
    assert result.accuracy[-1] > majority + 0.15
    assert result.accuracy[-1] > result.accuracy[0]


def test_central_noise_without_noise_or_clipping_is_plain_fedavg(federation):
    # With everyone joining, the fixed denominator q·N equals the realized count, so a run
    # with a clip that never binds and vanishing noise is plain FedAvg.
    plain = FedAvgConfig(rounds=5, sampling_rate=1.0, noise="none", noise_multiplier=0.0)
    central = replace(plain, noise="central", noise_multiplier=1e-20, clip_norm=1e9)  # σ 1e-11
    a = train(federation, plain, np.random.default_rng(1))
    b = train(federation, central, np.random.default_rng(1))
    assert np.allclose(a.weights, b.weights, atol=1e-9)


def test_clipping_bounds_how_far_a_round_moves_the_model(federation):
    cfg = FedAvgConfig(
        rounds=1, sampling_rate=0.5, noise="central", noise_multiplier=1e-12, clip_norm=1e-3
    )
    result = train(federation, cfg, np.random.default_rng(2))
    joined = int(result.participations.sum())
    bound = joined * cfg.clip_norm / (cfg.sampling_rate * federation.clients)
    assert np.linalg.norm(result.weights) <= bound * (1 + 1e-9)


def test_local_noise_hurts_more_than_central_noise_at_the_same_multiplier(federation):
    def final(noise):
        cfg = FedAvgConfig(rounds=30, noise=noise, noise_multiplier=2.0)
        runs = [
            train(federation, cfg, np.random.default_rng(s)).accuracy[-5:].mean() for s in range(3)
        ]
        return np.mean(runs)

    assert final("local") < final("central") - 0.02


def test_the_accountant_sees_what_each_placement_released(federation):
    cfg = FedAvgConfig(rounds=12, sampling_rate=0.25, noise="central", noise_multiplier=1.3)
    central = train(federation, cfg, np.random.default_rng(4))
    assert central.privacy_runs() == GaussianRuns(1.3, 12, 0.25)
    local = train(federation, replace(cfg, noise="local"), np.random.default_rng(4))
    busiest = int(local.participations.max())
    assert local.privacy_runs() == GaussianRuns(0.65, busiest, 1.0)  # sensitivity 2C
    assert local.epsilon(1e-5) > central.epsilon(1e-5)
    plain = train(
        federation, replace(cfg, noise="none", noise_multiplier=0.0), np.random.default_rng(4)
    )
    assert plain.privacy_runs() is None and plain.epsilon(1e-5) == math.inf


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rounds": 0}, "rounds"),
        ({"sampling_rate": 0.0}, "sampling rate"),
        ({"local_steps": 0}, "local steps"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"clip_norm": math.nan}, "clip_norm"),
        ({"noise": "global"}, "noise must be"),
        ({"noise": "central", "noise_multiplier": 0.0}, "noise multiplier"),
        ({"l2": -1.0}, "l2"),
        ({"rounds": True}, "rounds"),
        ({"noise": "none", "noise_multiplier": math.nan}, "noise multiplier"),
        ({"sampling_rate": True}, "sampling rate"),
    ],
)
def test_bad_configurations_are_refused(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        FedAvgConfig(**kwargs)


def test_a_bad_federation_is_refused():
    with pytest.raises(InvalidParameterError, match="clients"):
        make_federation(0, 5, np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match="heterogeneity"):
        make_federation(5, 5, np.random.default_rng(0), heterogeneity=-1.0)
    with pytest.raises(InvalidParameterError, match="exceeds"):
        make_federation(50, 10**8, np.random.default_rng(0))


@pytest.mark.parametrize("engine", [train, train_reference])
def test_divergence_is_an_error_that_names_the_learning_rate(federation, engine):
    cfg = FedAvgConfig(rounds=3, noise="none", noise_multiplier=0.0, learning_rate=1e300)
    with pytest.raises(InvalidParameterError, match=r"diverged.*learning rate"):
        engine(federation, cfg, np.random.default_rng(0))


def test_dp_sgd_with_a_clip_that_never_binds_and_no_noise_is_plain_fedavg(federation):
    # Everyone joins (q = 1), so the noise draws cannot shift who is sampled next round.
    plain = FedAvgConfig(rounds=4, sampling_rate=1.0, noise="none", noise_multiplier=0.0)
    example = replace(plain, noise="example", noise_multiplier=1e-20, clip_norm=1e9)
    a = train(federation, plain, np.random.default_rng(3))
    b = train(federation, example, np.random.default_rng(3))
    assert np.allclose(a.weights, b.weights, atol=1e-9)


def test_dp_sgd_is_accounted_per_local_step_at_example_level(federation):
    cfg = FedAvgConfig(rounds=6, sampling_rate=0.3, local_steps=4, noise="example",
                       noise_multiplier=2.0)  # fmt: skip
    result = train(federation, cfg, np.random.default_rng(6))
    busiest = int(result.participations.max())
    assert result.privacy_runs() == GaussianRuns(2.0, 4 * busiest, 1.0)


def test_per_example_clipping_bounds_a_local_step(federation):
    # With a tiny clip and no noise, one local step moves a client's model by at most
    # lr · C (the mean of clipped gradients) plus the ridge term, which is 0 from w = 0.
    cfg = FedAvgConfig(rounds=1, sampling_rate=1.0, local_steps=1, noise="example",
                       noise_multiplier=1e-20, clip_norm=1e-3)  # fmt: skip
    result = train(federation, cfg, np.random.default_rng(1))
    assert np.linalg.norm(result.weights) <= cfg.learning_rate * cfg.clip_norm * (1 + 1e-9)
