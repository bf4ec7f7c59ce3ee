"""The market-maker strategy registry: every member documented in docs/posted-price.md and
well named; every named strategy class is registered."""

import inspect
import re
from pathlib import Path

import pytest

from mercat.clearing.posted_price import makers as module
from mercat.clearing.posted_price.makers import MAKERS, MarketMaker, create, get, names
from mercat.errors import UnknownNameError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "posted-price.md"


def documented_names() -> list[str]:
    return re.findall(r"^### `([^`]+)`\s*$", DOCS.read_text(encoding="utf-8"), re.MULTILINE)


def test_names_are_well_formed():  # uniqueness: ClassRegistry refuses duplicates
    for name in names():
        assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name), name


@pytest.mark.parametrize("maker", MAKERS, ids=lambda m: m.name)
def test_every_member_is_a_documented_strategy(maker):
    assert issubclass(maker, MarketMaker)
    assert maker.__doc__ and maker.__doc__.strip()
    assert maker.summary.strip()
    assert maker.name in documented_names(), f"add a '### `{maker.name}`' section"
    assert get(maker.name) is maker
    assert isinstance(create(maker.name), maker)


def test_every_named_strategy_class_is_registered():
    named = {
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, MarketMaker) and "name" in vars(cls)
    }
    assert named == set(MAKERS)
    assert set(documented_names()) == set(names())


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownNameError, match="known: perfect-information, noisy-estimates"):
        get("clairvoyant")
