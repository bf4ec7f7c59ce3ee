"""`pytest --pyargs mercat.testing.installed`: mercat's contracts on every installed plug-in.

Every entry point of every plug-in group (mercat.plugins.GROUPS) must load and carry the
name it is installed under; every installed mechanism gets `MechanismContract` and every
installed collective rule `CollectiveRuleContract`, every installed provider strategy
`ProviderStrategyContract`, with default options, without a line of
test code in the plug-in. A plug-in that needs options or special markets writes its own
test class instead (mercat.testing).
"""

from __future__ import annotations

import re

import pytest

from mercat import plugins
from mercat.clearing import registry as mechanisms
from mercat.incentives.rules import RULES, CustomRule
from mercat.testing.collective_rule import CollectiveRuleContract
from mercat.testing.contract import MechanismContract
from mercat.testing.provider_strategy import ProviderStrategyContract

_INSTALLED = [
    (kind, ep) for kind, group in plugins.GROUPS.items() for ep in plugins.entry_points(group)
]


@pytest.mark.parametrize(
    ("kind", "ep"), _INSTALLED, ids=[f"{kind}:{ep.name}" for kind, ep in _INSTALLED]
)
def test_every_installed_plugin_loads_under_its_name(kind, ep):
    target = plugins.load_entry_point(ep)
    name = getattr(target, "name", None)
    if name is not None:  # an experiment's module registers by itself; objects carry names
        assert name == ep.name, f"{plugins.origin(ep)} names {name!r}"


def _class_name(prefix: str, name: str) -> str:
    return prefix + re.sub(r"\W", "_", name)


for _ep in plugins.entry_points(plugins.GROUPS["mechanism"]):
    _cls = mechanisms.get(_ep.name)
    globals()[_class_name("TestMechanism_", _ep.name)] = type(
        _class_name("TestMechanism_", _ep.name),
        (MechanismContract,),
        {"mechanism": _cls, "__module__": __name__},
    )

for _ep in plugins.entry_points(plugins.GROUPS["collective rule"]):
    _rule = RULES.get(_ep.name)
    if isinstance(_rule, type) and issubclass(_rule, CustomRule):
        globals()[_class_name("TestCollectiveRule_", _ep.name)] = type(
            _class_name("TestCollectiveRule_", _ep.name),
            (CollectiveRuleContract,),
            {"rule": _rule, "__module__": __name__},
        )

for _ep in plugins.entry_points(plugins.GROUPS["provider strategy"]):
    from mercat.scenarios.provider_agents import PROVIDER_STRATEGIES

    globals()[_class_name("TestProviderStrategy_", _ep.name)] = type(
        _class_name("TestProviderStrategy_", _ep.name),
        (ProviderStrategyContract,),
        {"strategy": PROVIDER_STRATEGIES.get(_ep.name), "__module__": __name__},
    )
