"""A market-maker's exact best response to the current standing, solved with HiGHS.

The maker wants the winning proposal that earns it most (`posted_price_pricing.offer_for`
prices one allocation; a best response is the best allocation). By rule:

- opening, attempt 1 (the central maker) and attempt 2: the gain grows with the believed
  welfare Ŵ(α), so the best allocation is the welfare optimum of the maker's beliefs
  (`mercat.clearing.optimal.solve_welfare`);
- attempts 3 and 4: the margin of `offer_for` is linear in α's served requests and node
  workloads once the improvements e_p and (attempt 4) Δ = max(Σ e_p, ∇(C) + tick) are
  written with auxiliary columns, so the best challenge is one MILP over V's encoding
  (`mercat.market.constraints.encode`) with, for the holder's participants p:
    c_p ∈ {0, 1}: p is a conflicting participant under α (a request's served column; for
                  a node, an indicator tied to its pair columns: used at all in a market
                  without resources, used on exactly b's workload in one with resources);
    e_p ≥ tick·c_p and e_p ≥ (π_b(p) - v̂_p)·c_p, or e_n ≥ (ĉ_n(b) - φ_b(n))·c_n;
    attempt 3: maximise B(α) - Σ e_p; attempt 4: maximise B(α) - z with z ≥ Σ e_p and
    z ≥ ∇_b + tick - Σ_p slack_p·c_p; and Σ_p c_p ≥ 1 (a conflicting participant);
  where B(α) is the margin with conflicting participants on the holder's terms (served
  values v̂ and node costs ĉ_n(α) elsewhere; π_b and φ_b for them). With the
  specialization extension each member k gets an indicator m_k ≥ c_p (p in k), m_k ≥ [t
  served] for every request t in a state conflict with k's requests and m_k ≥ [n used] for
  k's nodes; ∇ becomes Σ_k ∇_k·m_k, and the maker's own displaced members cost it their
  margin. Appending is a second solve: the welfare optimum of the market the standing
  leaves free.

The decoded allocation is priced again by `offer_for`, and the two margins must agree (a
`SolverError` otherwise): the MILP chooses, the closed form prices. HiGHS must prove
optimality (`rel_gap` 1e-9), so the response is exact up to the solver's tolerances.
Ties go to the holder's own allocation (a re-proposal), then to the challenge, then to an
append. `BestResponder` is the readable reference that solves every response afresh;
`mercat.clearing.posted_price.certificate` is the fast path beside it.
"""

from __future__ import annotations

import math

from mercat.clearing.optimal import solve_welfare
from mercat.clearing.posted_price.pricing import Offer, as_solved, believed_terms, offer_for
from mercat.clearing.posted_price.proposal import Interference, Proposal, Standing
from mercat.clearing.posted_price.reference import GAIN_TOL
from mercat.clearing.posted_price.template import SequentialImprovement
from mercat.errors import InvalidParameterError, SolverError
from mercat.market.constraints import MilpEncoding, Row, encode
from mercat.market.economics import node_cost
from mercat.market.model import Allocation, Market


class BestResponder:
    """One maker's exact best responses in one market (caches what does not change)."""

    def __init__(
        self, beliefs: Market, mechanism: SequentialImprovement, maker: str, tick: float
    ) -> None:
        if beliefs.divisible:
            raise InvalidParameterError("posted-price market-makers work on indivisible markets")
        if not (isinstance(tick, int | float) and math.isfinite(tick) and tick > 0):
            raise InvalidParameterError(f"tick must be a number > 0, got {tick!r}")
        self.beliefs = beliefs
        self.mechanism = mechanism
        self.maker = maker
        self.tick = float(tick)
        self.milp_solves = 0  # HiGHS solves so far (the benchmark reports them)
        self._encoding: MilpEncoding | None = None
        self._optimum: Allocation | None = None
        self._interference = Interference.of(beliefs)

    # --- public ----------------------------------------------------------------------------

    def respond(self, standing: Standing) -> Offer | None:
        """The most profitable winning offer, or None when nothing gains more than GAIN_TOL."""
        return self.exact(standing)

    def exact(self, standing: Standing) -> Offer | None:
        """Solve the best response from scratch (no certificate)."""
        mechanism = self.mechanism
        opening = not standing or (not mechanism.empty_holder_binds and not standing.serves_anyone)
        candidates: list[Offer | None] = []
        if opening or mechanism.attempt in (1, 2):
            candidates.append(self.offer(self.welfare_optimum(), standing))
        elif not mechanism.specialization:
            (holder,) = standing.members
            candidates.append(self.offer(holder.allocation, standing))
            candidates.append(self.challenge(standing))
        else:
            candidates.append(self.challenge(standing))
            candidates.append(self.append(standing))
        return pick(candidates)

    def offer(self, allocation: Allocation, standing: Standing) -> Offer | None:
        return offer_for(
            self.beliefs,
            allocation,
            standing,
            self.mechanism,
            self.maker,
            self.tick,
            self._interference,
        )

    def welfare_optimum(self) -> Allocation:
        """argmax Ŵ(α) over V (solved once per market)."""
        if self._optimum is None:
            self.milp_solves += 1
            optimum = solve_welfare(self.beliefs)
            if not optimum.proven:
                raise SolverError("HiGHS did not prove the welfare optimum of the maker's beliefs")
            self._optimum = optimum.allocation
        return self._optimum

    # --- appending (specialization) ----------------------------------------------------------

    def append(self, standing: Standing) -> Offer | None:
        """The best proposal compatible with every member: the welfare optimum of the
        requests and nodes the standing leaves free (and that no member's state conflicts
        rule out)."""
        served = standing.allocation.served_requests
        used = standing.allocation.used_nodes
        blocked, busy = set(served), set(used)
        for t in served:
            blocked |= self._interference.requests.get(t, frozenset())
        for n in used:
            busy |= self._interference.nodes.get(n, frozenset())
        requests = tuple(t for t in self.beliefs.requests if t.id not in blocked)
        nodes = tuple(n for n in self.beliefs.nodes if n.id not in busy)
        if not requests or not nodes:
            return None
        ids = {t.id for t in requests}
        free = {n.id for n in nodes}
        groups = tuple(
            g
            for g in (tuple(n for n in g if n in free) for g in self.beliefs.exclusive_nodes)
            if len(g) > 1
        )
        residual = Market(
            requests,
            nodes,
            tuple(c for c in self.beliefs.conflicts if c.first in ids and c.second in ids),
            self.beliefs.resources,
            exclusive_nodes=groups,
        )
        self.milp_solves += 1
        optimum = solve_welfare(residual)
        if not optimum.proven:
            raise SolverError("HiGHS did not prove the optimum of the residual market")
        return self.offer(optimum.allocation, standing)

    # --- the challenge MILP ------------------------------------------------------------------

    def encoding(self) -> MilpEncoding:
        if self._encoding is None:
            self._encoding = encode(self.beliefs)
        return self._encoding

    def challenge(self, standing: Standing) -> Offer | None:
        """The best winning proposal that conflicts with the standing (attempts 3 and 4)."""
        from mercat.clearing.highs import solve_max

        model, constant = self._challenge_model(standing)
        self.milp_solves += 1
        result = solve_max(model, may_be_infeasible=True)
        if result.status == "Infeasible":
            return None  # no valid allocation shares a participant with the standing
        if not result.proven:
            raise SolverError(f"HiGHS did not prove the best response (status {result.status})")
        offer = self.offer(model.decode(result.x, self.beliefs), standing)
        return as_solved(offer, result.objective + constant, "the best-response MILP")

    def _challenge_model(self, standing: Standing) -> tuple[MilpEncoding, float]:
        """V's encoding extended with the shared-participant columns (module docstring)."""
        enc = self.encoding()
        beliefs, tick, attempt = self.beliefs, self.tick, self.mechanism.attempt
        members = standing.members
        base_mode = not self.mechanism.specialization
        by_workload = bool(beliefs.resources)
        objective = list(enc.objective)
        lower, upper = list(enc.col_lower), list(enc.col_upper)
        integral = list(enc.integral)
        rows: list[Row] = []

        def column(lo: float, hi: float, is_int: bool, obj: float) -> int:
            objective.append(obj)
            lower.append(lo)
            upper.append(hi)
            integral.append(is_int)
            return len(objective) - 1

        pairs_on: dict[str, dict[str, int]] = {}
        for (t, n), j in enc.pair_columns.items():
            pairs_on.setdefault(n, {})[t] = j

        indicator: dict[str, int] = {}  # participant -> its c_p column
        slack: dict[str, float] = {}
        need: dict[str, int] = {}  # participant -> its e_p column
        for member in members:
            # Sorted: a member's participants are sets, and the order of the columns added
            # here decides which of several equally good answers HiGHS returns (it changed
            # with PYTHONHASHSEED).
            for t in sorted(member.requests):
                j = enc.served_columns[t]
                indicator[t], slack[t] = j, member.request_slack(t)
                objective[j] = member.payments[t]
                e = need[t] = column(0.0, math.inf, False, -1.0 if attempt == 3 else 0.0)
                rows.append(({e: 1.0, j: -tick}, 0.0, math.inf))
                excess = member.payments[t] - beliefs.request(t).value
                if excess > tick:
                    rows.append(({e: 1.0, j: -excess}, 0.0, math.inf))
            for n in sorted(member.nodes):
                on_node = pairs_on.get(n, {})
                held = node_cost(beliefs, member.allocation, n)  # ĉ_n on b's workload
                # c_n: n is a conflicting participant (used, on the same workload if the
                # market has resources). Its cost then is `held`, and the margin pays φ_b(n)
                # instead: the objective's own cost terms plus (held - φ_b(n))·c_n.
                c = column(0.0, 1.0, True, held - member.rewards[n])
                if by_workload:
                    bundle = member.allocation.requests_on(n)
                    coeffs = {c: 1.0}
                    for t, j in on_node.items():
                        if t in bundle:
                            rows.append(({c: 1.0, j: -1.0}, -math.inf, 0.0))
                            coeffs[j] = -1.0
                        else:
                            rows.append(({c: 1.0, j: 1.0}, -math.inf, 1.0))
                            coeffs[j] = 1.0
                    rows.append((coeffs, 1.0 - len(bundle), math.inf))
                else:
                    for j in on_node.values():
                        rows.append(({j: 1.0, c: -1.0}, -math.inf, 0.0))
                    rows.append(({c: 1.0, **{j: -1.0 for j in on_node.values()}}, -math.inf, 0.0))
                indicator[n], slack[n] = c, member.node_slack(n)
                e = need[n] = column(0.0, math.inf, False, -1.0 if attempt == 3 else 0.0)
                rows.append(({e: 1.0, c: -tick}, 0.0, math.inf))
                excess = held - member.rewards[n]
                if excess > tick:
                    rows.append(({e: 1.0, c: -excess}, 0.0, math.inf))
        if not indicator:
            raise SolverError("challenge MILP against a standing with no participant")
        rows.append(({j: 1.0 for j in indicator.values()}, 1.0, math.inf))

        constant = 0.0
        member_columns: list[int] = []
        if base_mode:
            (holder,) = members
            if holder.maker == self.maker:
                constant = -holder.margin
        else:
            for member in members:
                own = member.margin if member.maker == self.maker else 0.0
                m = column(0.0, 1.0, True, -own)
                member_columns.append(m)
                # k conflicts with α iff α serves one of its requests or one in a state
                # conflict with them, or uses one of its nodes (on any workload) or a node
                # of the same machine: the union would not be in V.
                requests = set(member.requests)
                nodes = set(member.nodes)
                for t in member.requests:
                    requests |= self._interference.requests.get(t, frozenset())
                for n in member.nodes:
                    nodes |= self._interference.nodes.get(n, frozenset())
                ties = [enc.served_columns[t] for t in sorted(requests)]
                ties += [j for n in sorted(nodes) for j in pairs_on.get(n, {}).values()]
                for j in ties:
                    rows.append(({m: 1.0, j: -1.0}, 0.0, math.inf))
                # ... and only then (a member of negative margin would pull m_k up).
                rows.append(({m: 1.0, **dict.fromkeys(ties, -1.0)}, -math.inf, 0.0))
        if attempt == 4:
            z = column(0.0, math.inf, False, -1.0)
            rows.append(({z: 1.0, **{e: -1.0 for e in need.values()}}, 0.0, math.inf))
            coeffs = {z: 1.0, **{indicator[p]: slack[p] for p in indicator}}
            if base_mode:
                rows.append((coeffs, members[0].slack + tick, math.inf))
            else:
                for k, member in enumerate(members):
                    coeffs[member_columns[k]] = -member.slack
                rows.append((coeffs, tick, math.inf))

        model = enc.extended(
            rows, objective=objective, col_lower=lower, col_upper=upper, integral=integral
        )
        return model, constant


def pick(candidates: list[Offer | None]) -> Offer | None:
    """The candidate with the largest gain; earlier ones win ties; None if nothing gains."""
    best: Offer | None = None
    for offer in candidates:
        if offer is not None and (best is None or offer.gain > best.gain + GAIN_TOL):
            best = offer
    if best is None or best.gain <= GAIN_TOL:
        return None
    return best


def reproposal(responder: BestResponder, standing: Standing) -> Offer | None:
    """The holder's allocation offered again on the responder's terms (base mechanism)."""
    (holder,) = standing.members
    return responder.offer(holder.allocation, standing)


__all__ = ["BestResponder", "Offer", "Proposal", "believed_terms", "pick", "reproposal"]
