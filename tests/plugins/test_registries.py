"""The registries are open: `register()` adds a member beside mercat's own (which stay the
defaults, in order), `module:Class` resolves without registering, and a wrong kind, a taken
name or a broken reference is one clear error. Collective rules written in Python pass the
shipped contract (mercat.testing) as `module:Class`."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from mercat.clearing import registry as mechanisms
from mercat.clearing.optimal import OptimalMechanism
from mercat.clearing.posted_price import makers
from mercat.errors import MercatError, PluginError, UnknownNameError
from mercat.incentives.rules import RULES
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import simulate
from mercat.testing.collective_rule import CollectiveRuleContract
from tests.incentives.rules_for_tests import HalvingRule, NeverRemoves, SquareWeights


class RenamedOptimal(OptimalMechanism):
    """The optimum under another name: a plug-in mechanism for these tests."""

    name = "renamed-optimal"


class NotAMechanism:
    name = "not-a-mechanism"


class RenamedMaker(makers.PerfectInformation):
    name = "renamed-perfect"


def test_register_adds_a_mechanism_after_mercats_own_and_unregister_removes_it():
    own = mechanisms.names()
    mechanisms.register(RenamedOptimal)
    try:
        assert mechanisms.names() == [*own, "renamed-optimal"]
        assert mechanisms.get("renamed-optimal") is RenamedOptimal
        assert mechanisms.REGISTRY.defaults == mechanisms.MECHANISMS  # the defaults stay
        with pytest.raises(PluginError, match="'renamed-optimal' is already registered"):

            class Again(OptimalMechanism):
                name = "renamed-optimal"

            mechanisms.register(Again)
    finally:
        mechanisms.unregister("renamed-optimal")
    assert mechanisms.names() == own
    with pytest.raises(UnknownNameError, match="renamed-optimal"):
        mechanisms.get("renamed-optimal")


def test_mercats_own_names_and_other_kinds_are_refused():
    class Clash(OptimalMechanism):
        name = "optimal"

    with pytest.raises(PluginError, match="'optimal' is one of mercat's own"):
        mechanisms.register(Clash)
    with pytest.raises(PluginError, match="not a mechanism"):
        mechanisms.register(NotAMechanism)  # type: ignore[arg-type]


def test_module_class_resolves_without_registering():
    reference = f"{__name__}:RenamedOptimal"
    assert mechanisms.resolve(reference) is RenamedOptimal
    assert "renamed-optimal" not in mechanisms.names()
    with pytest.raises(PluginError, match="not a mechanism"):
        mechanisms.resolve(f"{__name__}:NotAMechanism")
    with pytest.raises(MercatError, match="no_such_module"):
        mechanisms.resolve("no_such_module:Thing")


def test_market_makers_are_open_too():
    makers.register(RenamedMaker)
    try:
        assert makers.names()[-1] == "renamed-perfect"
        assert isinstance(makers.create("renamed-perfect"), RenamedMaker)
    finally:
        makers.unregister("renamed-perfect")
    assert makers.resolve(f"{__name__}:RenamedMaker") is RenamedMaker


def test_a_registered_rule_runs_by_name_on_the_reference_engine():
    RULES.register(HalvingRule)
    try:
        config = CollectiveConfig(mechanism="halving", assets=20, tasks=300)
        by_name = simulate(config, runs=2, seed=5, engine="reference")
        by_path = simulate(
            CollectiveConfig(
                mechanism="tests.incentives.rules_for_tests:HalvingRule", assets=20, tasks=300
            ),
            runs=2,
            seed=5,
            engine="reference",
        )
    finally:
        RULES.unregister("halving")
    assert by_name.summary() == by_path.summary()


def test_a_rule_whose_weights_vanish_is_stopped_with_a_reason():
    config = CollectiveConfig(
        mechanism="tests.incentives.rules_for_tests:ZeroWeights", assets=20, tasks=300
    )
    with pytest.raises(MercatError, match="weight"):
        simulate(config, runs=1, seed=1, engine="reference")


class TestHalvingRule(CollectiveRuleContract):
    rule = HalvingRule
    registered = False


class TestSquareWeights(CollectiveRuleContract):
    rule = SquareWeights
    registered = False


class TestNeverRemoves(CollectiveRuleContract):
    rule = NeverRemoves
    registered = False
    options: ClassVar[dict[str, Any]] = {"scale": 0.5}
