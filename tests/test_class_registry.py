"""`ClassRegistry`: names unique at construction, registration order kept, unknown names
answered with the known ones."""

import pytest

from mercat.errors import UnknownNameError
from mercat.registry import ClassRegistry


class Alpha:
    name = "alpha"

    def __init__(self, level: int = 1) -> None:
        self.level = level


class Beta:
    name = "beta"


class AlsoAlpha:
    name = "alpha"


def test_duplicate_names_are_refused_when_the_registry_is_built():
    with pytest.raises(ValueError, match=r"thing names must be unique, got \['alpha', 'alpha'\]"):
        ClassRegistry("thing", (Alpha, AlsoAlpha))


def test_lookup_order_creation_and_unknown_names():
    registry = ClassRegistry("thing", (Beta, Alpha))
    assert registry.names() == ["beta", "alpha"]  # the order given, not sorted
    assert registry.get("alpha") is Alpha
    assert registry.create("alpha", level=3).level == 3
    with pytest.raises(UnknownNameError, match="known: beta, alpha"):
        registry.get("gamma")
