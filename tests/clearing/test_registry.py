"""The mechanism registry: every member registered once, documented, uniquely named."""

import re
from pathlib import Path

import pytest

from mercat.clearing import registry
from mercat.clearing.base import Mechanism, Property
from mercat.errors import UnknownNameError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "mechanisms.md"


def documented_names() -> list[str]:
    return re.findall(r"^## `([^`]+)`\s*$", DOCS.read_text(encoding="utf-8"), re.MULTILINE)


def test_names_are_unique_and_well_formed():
    names = registry.names()
    assert len(names) == len(set(names))
    assert len(registry.MECHANISMS) == len(set(registry.MECHANISMS))
    for name in names:
        assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name), name


@pytest.mark.parametrize("mechanism", registry.MECHANISMS, ids=lambda m: m.name)
def test_every_member_is_a_documented_mechanism(mechanism):
    assert issubclass(mechanism, Mechanism)
    assert mechanism.__doc__ and mechanism.__doc__.strip()
    assert mechanism.summary.strip()
    assert all(isinstance(p, Property) for p in mechanism.properties)
    assert mechanism.name in documented_names(), f"add a '## `{mechanism.name}`' section"
    assert registry.get(mechanism.name) is mechanism


def test_every_documented_mechanism_is_registered():
    assert set(documented_names()) <= set(registry.names())


def test_every_member_has_a_contract_test_class():
    import tests as package

    root = Path(package.__file__).parent
    source = "\n".join(p.read_text(encoding="utf-8") for p in root.rglob("test_*.py"))
    for mechanism in registry.MECHANISMS:
        pattern = rf"class Test\w*\(MechanismContract\):\s+mechanism = {mechanism.__name__}\b"
        assert re.search(pattern, source), f"no contract test class for {mechanism.name}"


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown mechanism 'nope'; known: optimal"):
        registry.get("nope")
    with pytest.raises(LookupError):
        registry.create("nope")


def test_create_passes_options():
    assert registry.create("optimal", time_limit=5.0).time_limit == 5.0
    assert list(registry.mechanisms()) == registry.names()
