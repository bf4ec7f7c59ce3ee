"""The plug-ins pass mercat's contracts (mercat.testing); run with pytest once installed."""

from typing import Any, ClassVar

from mercat_example_plugins.mechanisms import GreedyPayAsBid
from mercat_example_plugins.rules import SlashFraction

from mercat.testing.collective_rule import CollectiveRuleContract
from mercat.testing.contract import MechanismContract


class TestGreedyPayAsBid(MechanismContract):
    mechanism = GreedyPayAsBid


class TestSlashFraction(CollectiveRuleContract):
    rule = SlashFraction
    options: ClassVar[dict[str, Any]] = {"fraction": 0.3}


class TestSlashFractionSquaredWeights(CollectiveRuleContract):
    rule = SlashFraction
    options: ClassVar[dict[str, Any]] = {"fraction": 0.3, "exponent": 2.0}
