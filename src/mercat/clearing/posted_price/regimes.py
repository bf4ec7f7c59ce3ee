"""Attempt 4's best challenge, split at the kink of its objective.

Against a holder b, a conflicting allocation α earns its maker, in the maker's beliefs (the
rows `need` and `cover` of `posted_price_challenge.ChallengeModel`)

    gain(α) = K + W(α) - Σ_{p∈C} (g_p + f_p) - max(0, S + tick - Σ_{p∈C} (s_p + f_p)),

where C are the participants of b that α keeps (serves, or uses) and D = P ∖ C those it
drops, g_p is what p keeps on b's terms, f_p = max(tick, -g_p) the least improvement p must
be offered, s_p its tolerance slack, S = ∇ of the whole of b, and K the constant (minus the
holder's margin when the holder is the maker's own). With a_p = s_p + f_p, A = Σ_P a_p,
τ = A - S - tick and δ_p = g_p - s_p this is

    gain(α) = K - A + W(α) - Σ_C δ_p + min(a(D), τ).

The one MILP of `ChallengeModel` writes min(a(D), τ) with a column z and two rows. Its LP
relaxation is weak exactly there: it drops a fraction of a participant whose a_p is large,
reaching τ at little cost in welfare. Late in the 200 × 50 benchmark's dynamics its bound
lies 0.6-1.2 above the answer, and HiGHS's root cuts close that gap, at 0.5-1.5 CPU seconds
a turn. The split removes that weakness:

- **Participants that cannot be dropped profitably.** Whatever α drops, min(a(D), τ) ≤ τ,
  so an α that drops p earns at most K - A + τ + h(p) + Σ_P max(0, -δ_p), where h(p) is the
  best welfare of an allocation without p. h(p) is a property of the market and the
  maker's beliefs, not of the holder: an upper bound on it (the LP relaxation's, from
  duals) is computed once per participant and kept for the run. Every participant whose
  bound cannot beat the best known candidate is kept, in both regimes below ("H").
- **B**, keeping H, a(D) ≤ τ: gain = K + W(α) - Σ_C (δ_p + a_p), linear, with one knapsack
  row over the other participants. Its LP bound lies within a few hundredths of its optimum
  late in the benchmark, so reduced-cost fixing from the best known candidate (the holder's
  own allocation is always one) leaves a small MILP.
- **A2**, keeping H, a(D) ≥ τ: gain = K - A + τ + W(α) - Σ_C δ_p, the knapsack row reversed,
  solved after reduced-cost fixing at B's optimum, with that optimum as a row (none
  better: A2 is done). A2 seldom beats B, so its MILP is mostly a proof that nothing does.

Every conflicting allocation either drops a participant of H (and earns no more than the
best known candidate) or lies in B or A2, so the better of B's and A2's optima is the best
challenge. `RegimeSplit.best` returns it, or None where the split does not apply (a market
with resources, where a node conflicts by its bundle, not its use; τ ≤ 0) and the one MILP
decides.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mercat.clearing.highs import LpRelaxation
from mercat.clearing.posted_price.fixing import fix_columns, lagrangian_bound
from mercat.clearing.posted_price.pricing import Offer, as_solved
from mercat.clearing.posted_price.proposal import Proposal
from mercat.clearing.posted_price.reference import GAIN_TOL
from mercat.errors import SolverError
from mercat.market.constraints import MilpEncoding
from mercat.market.model import Allocation

if TYPE_CHECKING:
    from mercat.clearing.posted_price.challenge import ChallengeModel


@dataclasses.dataclass(frozen=True)
class Kink:
    """A holder's terms in the split's notation (module docstring), per indicator column."""

    columns: np.ndarray  # the conflict indicator c_p of each participant p of P
    a: np.ndarray  # a_p = s_p + f_p
    delta: np.ndarray  # δ_p = g_p - s_p
    tau: float
    total: float  # A = Σ_P a_p

    @property
    def upward(self) -> float:
        """Σ_P max(0, -δ_p): how much -Σ_C δ_p can add to a welfare."""
        return float(np.sum(np.maximum(0.0, -self.delta)))


class RegimeSplit:
    """The split best challenge of one `ChallengeModel` (one maker's beliefs and tick)."""

    def __init__(self, challenges: ChallengeModel) -> None:
        self.challenges = challenges
        self.base: MilpEncoding = challenges.base
        self._lp: LpRelaxation | None = None  # base + the knapsack row + C ≠ ∅
        self._lp_costs = self.base.objective.copy()
        self._lp_lower = self.base.col_lower.copy()
        self._welfare_lp: LpRelaxation | None = None  # base alone, for h(p)
        # Per column: an upper bound on h(p) (`without`), and how far it was tightened.
        self._without: np.ndarray | None = None
        self._without_effort = np.zeros(self.base.num_cols, dtype=np.int8)
        self.answered = 0  # challenges answered by the split
        self.declined = 0  # challenges left to the one MILP

    # --- the holder's terms ---------------------------------------------------------------

    def kink(self, holder: Proposal) -> Kink | None:
        """The holder's a_p, δ_p, τ and A, or None where the split does not apply."""
        model = self.challenges  # attempt 4, a market without resources (`ChallengeModel`)
        h = model.load(holder)
        columns = np.array(list(h.indicator.values()), dtype=np.int64)
        floors = np.array([h.floors[p] for p in h.indicator])
        slack = np.array([h.slack[p] for p in h.indicator])
        # g_p: the base objective is the welfare's coefficient, the holder's model has the
        # coefficient on b's terms (a request's payment, a node's reward net of its cost).
        keeps = self.base.objective[columns] - h.objective[columns]
        a = slack + floors
        total = math.fsum(a)
        tau = total - holder.slack - model.tick
        if not tau > 0:
            return None  # the ∇ row binds everywhere: one regime, the one MILP is as good
        return Kink(columns, a, keeps - slack, tau, total)

    # --- the two knapsack regimes ---------------------------------------------------------

    def _regime(
        self, kink: Kink, kept: np.ndarray, keep_at_most_tau: bool
    ) -> tuple[MilpEncoding, float, list]:
        """B (`keep_at_most_tau`: a(D) ≤ τ) or A2 (a(D) ≥ τ), the participants `kept` kept:
        the model, the constant that turns its objective into a gain (before K), and the
        rows it adds to the base encoding."""
        costs = self.base.objective.copy()
        costs[kink.columns] -= kink.delta + (kink.a if keep_at_most_tau else 0.0)
        lower = self.base.col_lower.copy()
        lower[kink.columns[kept]] = 1.0
        small = ~kept
        weight = math.fsum(kink.a[small])
        row = dict(zip(kink.columns[small].tolist(), kink.a[small].tolist(), strict=True))
        # Σ_small a_p c_p = weight - a(D): B wants it ≥ weight - τ, A2 ≤ weight - τ.
        if keep_at_most_tau:
            knapsack = (row, weight - kink.tau, math.inf)
        else:
            knapsack = (row, -math.inf, weight - kink.tau)
        rows = [knapsack, (dict.fromkeys(kink.columns.tolist(), 1.0), 1.0, math.inf)]
        model = dataclasses.replace(self.base, objective=costs, col_lower=lower).extended(rows)
        return model, 0.0 if keep_at_most_tau else kink.tau - kink.total, rows

    def _bound(self, model: MilpEncoding, rows: list):
        """The Lagrangian bound of a regime model, from its LP kept between turns (only the
        costs and bounds of the holder's participants and the two rows change), or None if
        the regime is empty."""
        base = self.base
        if self._lp is None:
            self._lp = LpRelaxation(base)
        lp = self._lp
        changed = np.nonzero(model.objective != self._lp_costs)[0]
        lp.set_costs(changed, model.objective[changed])
        self._lp_costs = model.objective.copy()
        moved = np.nonzero(model.col_lower != self._lp_lower)[0]
        lp.set_bounds(moved, model.col_lower[moved], model.col_upper[moved])
        self._lp_lower = model.col_lower.copy()
        lp.truncate(base.num_cols, base.num_rows)
        lp.append(np.zeros(0), np.zeros(0), np.zeros(0), rows)
        self.challenges.lp_solves += 1
        solution = lp.solve(may_be_infeasible=True)
        return None if solution is None else lagrangian_bound(model, solution.duals)

    def _restricted(
        self, model, bound, known: float, cutoff_row: bool = False
    ) -> tuple[float, np.ndarray, Allocation] | None:
        """The regime's optimum among points worth at least `known` (model units), its point
        and its allocation, or None if there is none: the MILP after reduced-cost fixing at
        `known`, solved by the challenge model (`ChallengeModel.solve`: presolved, and so
        without a start, see `mercat.clearing.highs.solve_max`).

        `cutoff_row` adds the row objective · x ≥ known. For a regime that seldom beats
        `known` (A2), HiGHS then proves a feasibility problem infeasible instead of proving
        an optimum below `known`: on 54 A2 MILPs captured from the 200 × 50 benchmark, 5.1
        CPU s with the row against 13.3 without. Where the regime usually improves (B) it
        changes nothing, so B goes without."""
        # Imported here: the challenge module imports this one.
        from mercat.clearing.posted_price.challenge import RESTRICTED_MILP_OPTIONS

        lower, upper, _ = fix_columns(model, bound, known)
        restricted = dataclasses.replace(model, col_lower=lower, col_upper=upper)
        if cutoff_row:
            costs = np.nonzero(model.objective)[0]
            row = dict(zip(costs.tolist(), model.objective[costs].tolist(), strict=True))
            restricted = restricted.extended([(row, known, math.inf)])
        result, allocation = self.challenges.solve(restricted, RESTRICTED_MILP_OPTIONS)
        if result.status == "Infeasible":
            return None
        if not result.proven:
            raise SolverError(f"HiGHS did not prove a regime's challenge (status {result.status})")
        return result.objective, result.x, allocation

    # --- the welfare without a participant ------------------------------------------------

    def bounds_without(self, columns: np.ndarray) -> np.ndarray:
        """The current upper bounds on h(p) of these columns (step 1 of `without` at first)."""
        if self._without is None:
            self._welfare_lp = LpRelaxation(self.base)
            self.challenges.lp_solves += 1
            welfare = lagrangian_bound(self.base, self._welfare_lp.solve().duals)
            self._without = welfare.value - np.maximum(0.0, welfare.reduced)
            self._without_effort[:] = 1
        return self._without[columns]

    def without(self, column: int, beat: float = math.inf, effort: int = 3) -> float:
        """An upper bound on h(p), the welfare of an allocation that leaves `column` (p's
        conflict indicator) at 0, tightened only as far as `beat` asks and kept for the run:

        1. the welfare LP's Lagrangian bound U less the column's positive reduced cost (the
           same duals bound the model with the column fixed at 0), one LP for every column;
        2. above `beat`, the Lagrangian bound of that LP re-solved with the column fixed
           (one HiGHS instance, warm from the last such LP);
        3. above `beat` still, HiGHS's proven optimum of the welfare MILP.

        `effort` says how many of these steps may be taken."""
        known = float(self.bounds_without(np.array([column]))[0])
        done = self._without_effort[column]
        if known <= beat or done >= effort:
            return known
        upper = self.base.col_upper.copy()
        upper[column] = 0.0
        without = dataclasses.replace(self.base, col_upper=upper)
        if done < 2:
            index = np.array([column])
            lp = self._welfare_lp
            lp.set_bounds(index, self.base.col_lower[index], upper[index])
            self.challenges.lp_solves += 1
            duals = lp.solve().duals
            lp.set_bounds(index, self.base.col_lower[index], self.base.col_upper[index])
            known = min(known, lagrangian_bound(without, duals).value)
            done = 2
        if known > beat and effort >= 3:
            result, _ = self.challenges.solve(without, None)
            if not result.proven:
                raise SolverError(f"HiGHS did not prove a welfare optimum ({result.status})")
            known = min(known, result.bound)
            done = 3
        self._without[column], self._without_effort[column] = known, done
        return known

    # --- the answer -----------------------------------------------------------------------------

    def best(
        self,
        holder: Proposal,
        constant: float,
        candidates: list[tuple[Offer, Allocation]],
        price: Callable[[Allocation], Offer | None],
    ) -> Offer | None:
        """The best challenge when the split decides it, else None (the module docstring).
        `candidates` are offers already priced against this holder, the holder's own
        allocation among them."""
        kink = self.kink(holder)
        big = None if kink is None else kink.a >= kink.tau
        if big is None or not big.any():
            # With no participant of a_p ≥ τ (early in a run, while every slack is small),
            # B's relaxation is about as weak as the one MILP's and A2 needs a MILP of its
            # own: the one MILP costs less than the two (200 × 50 benchmark).
            self.declined += 1
            return None
        known = max(candidates, key=lambda c: c[0].gain)[0]
        # An allocation that drops p earns at most h(p) + (τ - A + K + Σ max(0, -δ)): it
        # beats a gain g only if h(p) > g - that.
        lift = kink.tau - kink.total + constant + kink.upward
        # Kept in both regimes: every big participant, whose drop alone reaches τ (checked
        # below), and every other whose first bound on h(p) cannot beat `known`.
        kept = big | (self.bounds_without(kink.columns) <= known.gain + GAIN_TOL - lift)
        best_offer: Offer | None = known
        best_gain = known.gain
        best: Allocation | None = None  # a MILP's answer
        # B (H kept, at most τ dropped), then A2 (H kept, τ or more dropped): each regime's
        # best above the best so far, if any.
        for at_most_tau in (True, False):
            if not at_most_tau and math.fsum(kink.a[~kept]) < kink.tau:
                continue  # A2 is empty
            model, offset, rows = self._regime(kink, kept, keep_at_most_tau=at_most_tau)
            bound = self._bound(model, rows)
            if bound is None or bound.value + offset + constant <= best_gain + GAIN_TOL:
                continue
            found = self._restricted(
                model, bound, best_gain - offset - constant, cutoff_row=not at_most_tau
            )
            gain = -math.inf if found is None else found[0] + offset + constant
            if gain > best_gain + GAIN_TOL:
                best_gain, best, best_offer = gain, found[2], None

        # No allocation that drops a kept participant may beat the answer (h(p) tightened,
        # up to its proof, only where its bound does not already say so).
        beat = best_gain + GAIN_TOL - lift
        kept_columns = kink.columns[kept]
        for column in kept_columns[self.bounds_without(kept_columns) > beat]:
            if self.without(int(column), beat) > beat:
                self.declined += 1
                return None

        if best is not None:
            offer = price(best)
            best_offer = as_solved(offer, best_gain, "the split challenge's MILP")
        self.answered += 1
        return best_offer


__all__ = ["Kink", "RegimeSplit"]
