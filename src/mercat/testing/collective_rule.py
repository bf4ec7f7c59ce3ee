"""The contract every collective rule written in Python inherits: subclass
`CollectiveRuleContract` and name the rule (its class, with `options` for its constructor).

    class TestSlashFraction(CollectiveRuleContract):
        rule = SlashFraction
        options = {"fraction": 0.2}

Checked, on seed 000's market at a small size (`config`):

- the rule is registered under its name (unless `registered = False`: a rule used only as
  `module:Class`) and described;
- calibration binds the market's terms (S0, P, R = F·P/(1-F)) and leaves the rule itself
  uncalibrated;
- stakes after a task are finite for every stake from 0 to 2·S0, weights finite and >= 0;
  removal is a threshold (a ruined stake has only ruined stakes below it) and spares S0;
- in base units the book's rule follows the rule: the stake after a task is the rule's,
  rounded down to a base unit, never negative;
- the reference engine is reproducible from a seed, and the fast engine refuses the rule by
  name;
- on the round pipeline's book, rounds of tasks conserve every token (the books balance,
  the supply does not move) while the rule moves stakes;
- the reference engine and the pipeline agree in distribution: per-run task failure rates
  and removals within `agreement_se` standard errors (the engines draw different random
  numbers: they agree in law, not draw for draw).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from mercat.errors import InvalidParameterError
from mercat.incentives.rules import RULES, BaseUnitRule, CustomRule
from mercat.runtime.execute import SampledExecution
from mercat.runtime.memory import MemoryBook
from mercat.runtime.round import RoundPlan, run_round
from mercat.runtime.terms import Offer, RequestTerms
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_pipeline import UNIT, integer_rule, selection
from mercat.scenarios.collective_sim import simulate


class CollectiveRuleContract:
    rule: ClassVar[type[CustomRule]]
    options: ClassVar[dict[str, Any]] = {}
    registered: ClassVar[bool] = True
    config: ClassVar[dict[str, Any]] = {
        "assets": 24,
        "tasks": 400,
        "replacement_interval": 100,
        "stake": 5.0,
    }
    runs: ClassVar[int] = 10
    agreement_se: ClassVar[float] = 5.0

    # --- helpers ---------------------------------------------------------------------

    def reference(self) -> str:
        """The rule as a scenario file or the command line would name it."""
        return f"{self.rule.__module__}:{self.rule.__qualname__}"

    def make_config(self, **changes: Any) -> CollectiveConfig:
        return CollectiveConfig(
            mechanism=self.rule.name if self.registered else self.reference(),
            rule_options=dict(self.options),
            **{**self.config, **changes},
        )

    def calibrated(self) -> CustomRule:
        return self.make_config().rule

    def stakes(self) -> np.ndarray:
        s0 = float(self.make_config().stake)
        return np.concatenate([np.linspace(0.0, 2 * s0, 81), [s0, s0 / 1000, 1e-9]])

    # --- the contract ----------------------------------------------------------------

    def test_registered_and_described(self):
        assert issubclass(self.rule, CustomRule)
        if self.registered:
            assert RULES.get(self.rule.name) is self.rule
        assert self.rule.__doc__ and self.rule.__doc__.strip()
        assert self.rule.description.strip()
        assert self.rule.compiled is False

    def test_calibration_binds_the_market_terms(self):
        config = self.make_config()
        rule = config.rule
        terms = rule.terms
        assert (terms.initial_stake, terms.penalty) == (config.stake, config.penalty)
        assert terms.reward == pytest.approx(config.target * config.penalty / (1 - config.target))
        with pytest.raises(InvalidParameterError, match="not calibrated"):
            _ = config.mechanism_spec.terms  # the registry's object stays uncalibrated

    def test_stakes_stay_finite_and_weights_non_negative(self):
        rule = self.calibrated()
        for stake in self.stakes():
            for success in (True, False):
                after = rule.updated_stake(float(stake), success)
                assert np.isfinite(after), (stake, success, after)
            if rule.stake_weighted:
                weight = rule.weight(float(stake))
                assert np.isfinite(weight) and weight >= 0, (stake, weight)

    def test_removal_is_a_threshold_that_spares_the_initial_stake(self):
        rule = self.calibrated()
        if not rule.removal:
            pytest.skip(f"{rule.name} never removes")
        stakes = np.sort(self.stakes())
        ruined = [rule.is_ruined(float(s)) for s in stakes]
        first_fine = ruined.index(False) if False in ruined else len(ruined)
        assert not any(ruined[first_fine:]), "a stake above a healthy one is ruined"
        assert not rule.is_ruined(float(self.make_config().stake))

    def test_base_units_follow_the_rule_rounded_down(self):
        rule = self.calibrated()
        book_rule = integer_rule(self.make_config())
        assert isinstance(book_rule, BaseUnitRule)
        for stake in self.stakes():
            units = round(float(stake) * UNIT)
            for success in (True, False):
                target = max(rule.updated_stake(units / UNIT, success) * UNIT, 0.0)
                after = book_rule.updated_stake(units, success)
                slack = 1e-6 * max(1.0, target)  # float noise, far below a base unit
                assert isinstance(after, int)
                assert target - 1 - slack <= after <= target + slack, (stake, success, after)
        assert not book_rule.is_ruined(book_rule.minimum_stake)

    def test_reference_engine_is_reproducible_and_the_fast_engine_refuses(self):
        config = self.make_config()
        first = simulate(config, runs=2, seed=3, engine="reference")
        again = simulate(config, runs=2, seed=3, engine="reference")
        for a, b in zip(first.runs, again.runs, strict=True):
            assert not a.differences(b)
        with pytest.raises(InvalidParameterError, match="fast engine"):
            simulate(config, runs=1, seed=3, engine="fast")

    def test_the_pipeline_book_conserves_tokens(self):
        config = self.make_config()
        book = MemoryBook(integer_rule(config), unit=UNIT, keep_history=False)
        for account in ("providers", "requesters"):
            book.open_account(account)
            book.deposit(account, 10**12)
        book.deposit("operator", 10**12)
        book.fund_pool("operator", 10**12)
        execution = SampledExecution()
        rng = np.random.default_rng(11)
        for i in range(config.assets):
            book.add_asset("providers", f"a{i}", round(config.stake * UNIT), Offer(f"a{i}"))
            execution.set_failure_rate(f"a{i}", float(rng.uniform(0.0, 0.4)))
        supply = book.supply()
        stakes_before = sum(book.stake_of(f"a{i}") for i in range(config.assets))
        plan = RoundPlan(selection(config), execution)
        for round_ in range(1, 41):
            for k in range(2):
                book.post_request(
                    "requesters",
                    RequestTerms(f"q{round_}-{k}", max_price=1, replicas=config.assets_per_task),
                )
            run_round(book, round_, plan, rng)
        book.verify()
        assert book.supply() == supply
        stakes_after = sum(book.stake_of(f"a{i}") for i in range(config.assets))
        if self.rule.moves_stakes:
            assert stakes_after != stakes_before, "forty rounds of tasks moved no stake"

    @pytest.mark.slow
    def test_the_reference_engine_and_the_pipeline_agree(self):
        config = self.make_config()
        reference = simulate(config, runs=self.runs, seed=5, engine="reference")
        pipeline = simulate(config, runs=self.runs, seed=6, engine="pipeline")
        for name, measure in (
            ("task failure rate", lambda r: r.failed.mean()),
            ("removed assets", lambda r: float(r.true_positives + r.false_positives)),
        ):
            a = np.array([measure(r) for r in reference.runs])
            b = np.array([measure(r) for r in pipeline.runs])
            se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            gap = abs(a.mean() - b.mean())
            assert gap <= self.agreement_se * se + 1e-12, (name, a.mean(), b.mean(), se)
