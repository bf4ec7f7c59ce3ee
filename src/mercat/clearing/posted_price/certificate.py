"""The fast path for best responses: certify a whole run of undercuts with one MILP.

Best-response dynamics under attempts 3 and 4 spend most of their steps re-proposing the
holder's allocation a little cheaper: against a holder b that is individually rational for
the maker's beliefs (every g_p ≥ -tick, see `posted_price_pricing`), the re-proposal moves
every participant by exactly one tick, so the states form a ray

    b_s: same allocation and tolerances, π_s(t) = π_b(t) - s, φ_s(n) = φ_b(n) + s,  s ≥ 0,

along which the margin falls by P·s (P participants). Solving a MILP at every step is the
reference (`BestResponder`); here one MILP covers the ray. Why that is exact:

For the re-proposal, G_0(s) = M_b - P·s - P·tick. For any other allocation α sharing C with
b, B(α) falls by |C|·s, each e_p(s) = max(tick, -g_p - s) can only fall, and attempt 4's
∇(C) rises by (P - |C|)·s. So D_α(s) = gain_s(α) - G_0(s) is the minimum of
B_0 - M_b + P·tick + (P - |C|)·s - Σ_C e_p(s) (non-decreasing in s) and, in attempt 4,
B_0 - M_b + P·tick - ∇_0(C) - tick (constant): D_α is non-decreasing in s. The same holds
for the holder's own gain M(α) - M_b(s) = D_α(s) - P·tick. Hence, if the re-proposal is a
best response at the far end s = S of the ray (margin zero, S = M_b/P, beyond which no maker
goes), it is one at every s in [0, S], and the holder's best response there is to pass.

If a competitor α' beats the re-proposal at S, its crossing point s' (D_α'(s') = 0, found
by bisection on the closed-form prices) bounds the ray, and a MILP at s' either certifies
[0, s'] or names the next competitor; a few rounds give the certified stretch [0, s*].
States beyond s*, off the ray, or not eligible go to the exact solve. A state on no known
ray is solved exactly first, and a ray is certified from it only if its answer is the
undercut: a ray whose holder is beaten by a competitor would fail for nothing (the common
case while margins are large). The differential test
(tests/clearing/posted_price/test_posted_price_dynamics.py) holds the two responders to the
same traces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mercat.clearing.posted_price.challenge import ChallengeModel
from mercat.clearing.posted_price.placement import PlacementSolver
from mercat.clearing.posted_price.pool import NearOptimalPool
from mercat.clearing.posted_price.pricing import Offer, believed_terms
from mercat.clearing.posted_price.proposal import Proposal, Standing
from mercat.clearing.posted_price.reference import GAIN_TOL
from mercat.clearing.posted_price.response import BestResponder, pick
from mercat.errors import SolverError
from mercat.market.model import Allocation

MAX_COMPETITORS = 16
"""Give up certifying a ray after this many competitors (the exact path takes over)."""

SHIFT_TOL = 1e-9
"""A state lies on a ray if its price moves agree to within this (relative to the price)."""

POOL_LIMIT = 48
"""List at most this many allocations in the near-optimal pool (then rays or exact solves)."""

POOL_GROWTH_PER_RESPONSE = 4
"""Grow the pool by at most this many allocations (one MILP each) per best response. On large
markets thousands of allocations lie within the certificate's margin, so a pool never
certifies; without this budget the first response paid for all `POOL_LIMIT` solves at once
(212 s at 200 x 50) before falling back to the exact solve. The budget keeps a failing pool
to a few solves per response and lets a useful one fill up over a few turns."""

POOL_MISSES_ALLOWED = 3
"""Stop consulting the pool, for the rest of the run, after this many best responses in a
row that it could not answer (each cost up to `POOL_GROWTH_PER_RESPONSE` MILPs for
nothing). Correctness does not depend on it: a response the pool does not answer goes to
the rays or the exact solve."""

LARGE_MARKET_PAIRS = 300
"""A market whose encoding has at least this many (request, node) pairs is answered by the
rays and the challenge model, without the pool; a smaller one by the pool, the rays and the
reference's MILP. On a small market one HiGHS call on the reference's model costs less than
the challenge model's LP and restricted MILP, and the pool certifies most turns (10 × 5,
29 pairs: 7 solves for 94 turns, 0.15 s against 3.7 s through the challenge model); on a
large one allocations of equal welfare are so many (every reassignment of a request among
the used nodes is one) that the pool never certifies and its MILPs are lost (50 × 15, 472
pairs: 7.8 s without the pool, 8.9 s with it)."""

MISS = object()
"""A certificate's answer when it cannot decide."""

OTHER = "\x00someone else"
"""A maker id no real maker has: the certificate reasons for a maker that does not hold b."""


@dataclass(frozen=True)
class Ray:
    """States b_s for s in [0, limit] where the re-proposal is certified best."""

    base: Proposal
    limit: float
    tolerances_matter: bool = True  # attempt 4 reads them; attempt 3 never does

    def shift_of(self, member: Proposal) -> float | None:
        """The s with member = b_s (same allocation, same tolerances if they matter), or None."""
        base = self.base
        if member.allocation != base.allocation:
            return None
        if self.tolerances_matter and (
            member.max_payments != base.max_payments or member.min_rewards != base.min_rewards
        ):
            return None
        moves = [base.payments[t] - member.payments[t] for t in base.requests]
        scale = [abs(base.payments[t]) for t in base.requests]
        moves += [member.rewards[n] - base.rewards[n] for n in base.nodes]
        scale += [abs(base.rewards[n]) for n in base.nodes]
        s = moves[0]
        for move, size in zip(moves, scale, strict=True):
            if abs(move - s) > SHIFT_TOL * max(1.0, size):
                return None
        if s < -SHIFT_TOL or s > self.limit + SHIFT_TOL:
            return None
        return s


def shifted(base: Proposal, s: float, maker: str = OTHER) -> Standing:
    """The standing b_s, held by `maker`."""
    moved = Proposal(
        maker,
        base.allocation,
        {t: p - s for t, p in base.payments.items()},
        {n: r + s for n, r in base.rewards.items()},
        base.max_payments,
        base.min_rewards,
    )
    return Standing((moved,))


class CertifiedResponder(BestResponder):
    """Exact best responses with two certificates before any MILP (the fast path): the
    near-optimal pool (attempt 4) and certified undercut rays (attempts 3 and 4); what they
    leave is solved by the challenge model kept between turns
    (`posted_price_challenge.ChallengeModel`), or, with specialization, by the reference."""

    def __init__(
        self, *args, pool_limit: int = POOL_LIMIT, shared: dict | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.large = len(self.encoding().pair_columns) >= LARGE_MARKET_PAIRS
        self.shared = {} if shared is None else shared  # solver state shared within a run
        self.lp_solves = 0  # LP relaxations solved for this responder
        self.rays: list[Ray] = []
        self.pool_limit = pool_limit
        self.pool_misses = 0  # responses in a row the pool grew for and could not answer
        self.pool: NearOptimalPool | None = None
        self.certified = 0  # responses answered by a certificate
        self._challenges: ChallengeModel | None = None

    @property
    def pool_solves(self) -> int:
        return 0 if self.pool is None else self.pool.solves

    @property
    def challenge_model(self) -> ChallengeModel:
        """The challenge model, shared with every responder of the run that has the same
        beliefs, mechanism and tick (`shared`): the same MILP up to the maker's own margin,
        so one LP relaxation stays warm from turn to turn instead of from every other turn."""
        if self._challenges is None:
            key = ("challenge model", id(self.beliefs), self.mechanism.attempt, self.tick)
            model = self.shared.get(key)
            if model is None or model.beliefs is not self.beliefs:
                model = ChallengeModel(
                    self.beliefs, self.mechanism.attempt, self.tick, self.encoding()
                )
                self.shared[key] = model
            self._challenges = model
        return self._challenges

    @property
    def placement(self) -> PlacementSolver | None:
        """The challenge model's placement solver, if the model was made and has one."""
        return None if self._challenges is None else self._challenges.placement

    def welfare_optimum(self) -> Allocation:
        """The reference's welfare optimum (the opening proposal), solved by the challenge
        model's placement solver where it applies (a large market without resources, attempts
        3 and 4 without specialization): the same optimum in a fraction of the time (the
        200 × 50 benchmark's: 0.25 CPU s against 0.7)."""
        mechanism = self.mechanism
        if (
            self._optimum is not None
            or not self.large
            or mechanism.attempt not in (3, 4)
            or mechanism.specialization
            or self.challenge_model.placement is None
        ):
            return super().welfare_optimum()
        model = self.challenge_model
        self.milp_solves += 1
        result, allocation = model.placement.solve(model.base)
        if not result.proven or allocation is None:
            raise SolverError("HiGHS did not prove the welfare optimum of the maker's beliefs")
        self._optimum = allocation
        return allocation

    def solve(self, standing: Standing) -> Offer | None:
        """The exact best response, as `exact` defines it, with the challenge solved by the
        challenge model (a large market, base mechanism, attempts 3-4, a holder serving
        someone)."""
        mechanism = self.mechanism
        if (
            not self.large
            or mechanism.attempt not in (3, 4)
            or mechanism.specialization
            or len(standing.members) != 1
            or not standing.serves_anyone
        ):
            return self.exact(standing)
        (holder,) = standing.members
        return pick([self.offer(holder.allocation, standing), self.fast_challenge(standing)])

    def fast_challenge(self, standing: Standing) -> Offer | None:
        """`challenge`'s answer (the best conflicting proposal) from the challenge model."""
        (holder,) = standing.members
        model = self.challenge_model
        candidates = []
        for allocation in dict.fromkeys([holder.allocation, *reversed(model.recent)]):
            offer = self.offer(allocation, standing)
            if offer is not None:
                candidates.append((offer, allocation))
        milps, lps = model.milp_solves, model.lp_solves
        offer = model.best(holder, self.maker, candidates, lambda a: self.offer(a, standing))
        self.milp_solves += model.milp_solves - milps
        self.lp_solves += model.lp_solves - lps
        return offer

    def respond(self, standing: Standing) -> Offer | None:
        answer = self._from_pool(standing)
        if answer is not MISS:
            self.certified += 1
            return answer  # type: ignore[return-value]
        if not self._eligible(standing):
            return self.solve(standing)
        (holder,) = standing.members
        for ray in self.rays:
            if ray.shift_of(holder) is not None:
                self.certified += 1
                return self._on_ray(standing)
        # Solve this state exactly first: while margins are large the answer is usually a
        # competing allocation, and a ray would fail at its far end for nothing. Only when
        # the answer is the undercut is a ray certified, to answer the states that follow.
        answer = self.solve(standing)
        if (
            answer is None
            or holder.maker == self.maker
            or answer.proposal.allocation != holder.allocation
        ):
            return answer
        ray = self._certify(holder)  # a ray from the holder itself (shift 0), or None
        if ray is not None:
            self.rays = [*self.rays[-7:], ray]
        return answer

    # --- the near-optimal pool (attempt 4) ----------------------------------------------------

    def _from_pool(self, standing: Standing) -> Offer | object | None:
        """The best offer over the pool, if the bound proves nothing off the pool does better.

        Attempt 4, any holder b (module docstring of `posted_price_pool`): an allocation α
        wins at most M(α) ≤ B(α) - ∇(C) - tick = W̃_b(α) - ∇_b - tick, where W̃_b prices b's
        conflicting participants at b's tolerances; W̃_b(α) ≤ Ŵ(α) + O_b, with O_b what b's
        tolerances overstate the maker's beliefs by. Off the pool Ŵ(α) ≤ next_welfare.
        """
        mechanism = self.mechanism
        if self.large or mechanism.attempt != 4 or mechanism.specialization:
            return MISS
        if len(standing.members) != 1:
            return MISS
        if not standing.serves_anyone or self.pool_misses >= POOL_MISSES_ALLOWED:
            return MISS
        (holder,) = standing.members
        if self.pool is None:
            self.pool = NearOptimalPool(self.beliefs, self.encoding())
        values, costs = believed_terms(self.beliefs, holder.allocation)
        assert holder.max_payments is not None and holder.min_rewards is not None
        overstated = math.fsum(
            max(0.0, holder.max_payments[t] - values[t]) for t in holder.requests
        ) + math.fsum(max(0.0, costs[n] - holder.min_rewards[n]) for n in holder.nodes)
        own = holder.margin if holder.maker == self.maker else 0.0
        offset = overstated - holder.slack - self.tick - own
        candidates = [self.offer(holder.allocation, standing)]
        candidates += [self.offer(a, standing) for a in self.pool.allocations]
        grown_now = 0
        while True:
            best = pick(candidates)
            limit = GAIN_TOL if best is None else best.gain + GAIN_TOL
            if self.pool.next_welfare + offset <= limit:
                self.pool_misses = 0
                return best
            if (
                len(self.pool.allocations) >= self.pool_limit
                or grown_now >= POOL_GROWTH_PER_RESPONSE
            ):
                self.pool_misses += 1
                return MISS
            grown_now += 1
            grown = self.pool.grow()
            if grown is None:
                return best
            candidates.append(self.offer(grown, standing))

    def _eligible(self, standing: Standing) -> bool:
        """Attempts 3-4 without specialization, one holder serving someone, and its prices
        individually rational (to within a tick) for this maker's beliefs."""
        if self.mechanism.attempt not in (3, 4) or self.mechanism.specialization:
            return False
        if len(standing.members) != 1 or not standing.serves_anyone:
            return False
        (holder,) = standing.members
        values, costs = believed_terms(self.beliefs, holder.allocation)
        return all(values[t] - holder.payments[t] >= -self.tick for t in holder.requests) and all(
            holder.rewards[n] - costs[n] >= -self.tick for n in holder.nodes
        )

    def _on_ray(self, standing: Standing) -> Offer | None:
        (holder,) = standing.members
        if holder.maker == self.maker:
            return None  # every alternative earns the holder less than it has
        offer = self.offer(holder.allocation, standing)
        return offer if offer is not None and offer.gain > GAIN_TOL else None

    def _advantage(self, allocation, base: Proposal, s: float) -> float | None:
        """D(s): what α earns over the re-proposal at b_s (None if α cannot win)."""
        state = shifted(base, s)
        rival = self.offer(allocation, state)
        again = self.offer(base.allocation, state)
        if rival is None or again is None:
            return None
        return rival.gain - again.gain

    def _certify(self, base: Proposal) -> Ray | None:
        participants = len(base.requests) + len(base.nodes)
        s = max(0.0, base.margin / participants)
        for _ in range(MAX_COMPETITORS):
            state = shifted(base, s)
            best = self.fast_challenge(state) if self.large else self.challenge(state)
            again = self.offer(base.allocation, state)
            assert again is not None
            if best is None or best.gain <= again.gain + GAIN_TOL:
                return Ray(base, s, tolerances_matter=self.mechanism.attempt == 4)
            competitor = best.proposal.allocation
            lead = self._advantage(competitor, base, 0.0)
            if lead is None or lead > GAIN_TOL:
                return None  # the competitor already wins at b itself
            lo, hi = 0.0, s
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                if mid in (lo, hi):
                    break
                advantage = self._advantage(competitor, base, mid)
                if advantage is not None and advantage > GAIN_TOL:
                    hi = mid
                else:
                    lo = mid
            if lo >= s:
                return None
            s = lo
        return None
