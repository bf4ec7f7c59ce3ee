import pytest

from mercat.errors import InvalidParameterError, UnknownNameError
from mercat.scenarios.collective_config import CollectiveConfig


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(mechanism="coll-x"), UnknownNameError, "unknown collective rule"),
        (dict(assets=3), InvalidParameterError, "at least assets_per_task"),
        (dict(tasks=0), InvalidParameterError, "tasks"),
        (dict(stake=-1.0), InvalidParameterError, "stake"),
        (dict(stake=1.0), InvalidParameterError, "removal level"),
        (dict(target=1.0), InvalidParameterError, "target"),
        (dict(alpha=0.0), InvalidParameterError, "alpha"),
        (dict(failure_rate_sampling="magic"), InvalidParameterError, "failure_rate_sampling"),
        (dict(replacement="all"), InvalidParameterError, "replacement"),
        (dict(combination_size=5), InvalidParameterError, "combination_size"),
        (dict(mechanism="coll-rep", clamp=False), InvalidParameterError, "keep the clamp"),
        (dict(assets=10.5), InvalidParameterError, "integer"),
    ],
)
def test_bad_configurations_are_rejected(kwargs, error, message):
    with pytest.raises(error, match=message):
        CollectiveConfig(**kwargs)


def test_defaults_are_the_simulator_readings():
    config = CollectiveConfig()
    rule = config.rule
    assert (
        rule.removal_inclusive and rule.stake_cap == 10 and rule.stake_floor == pytest.approx(0.01)
    )
    assert config.replacement == "one-per-interval" and config.failure_rate_sampling == "pool"
    assert CollectiveConfig(mechanism="coll-stake").rule.stake_cap is None
    assert not CollectiveConfig(mechanism="free").rule.moves_stakes
    assert CollectiveConfig(mechanism="free", free_moves_stakes=True).rule.moves_stakes


def test_counts_beyond_the_engines_integers_are_refused():
    from mercat.scenarios.collective_config import MAX_COUNT
    from mercat.scenarios.collective_sim import simulate

    for field in ("assets", "tasks", "replacement_interval", "pool_size"):
        with pytest.raises(InvalidParameterError, match=f"{field} must be at most {MAX_COUNT}"):
            CollectiveConfig(**{field: MAX_COUNT + 1})
    with pytest.raises(InvalidParameterError, match="combinations_per_asset must be at most"):
        CollectiveConfig(combinations_per_asset=10**23)
    with pytest.raises(InvalidParameterError, match=f"runs must be at most {MAX_COUNT}"):
        simulate(CollectiveConfig(tasks=10), runs=10**23)
