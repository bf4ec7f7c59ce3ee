"""Seed 000, Fig. 3: ruin probability against the stake ratio x for several task failure rates.

The seed plots, for F_t^target = 20% and a horizon of 10^4 tasks, the probability that an
asset's stake is ruined, for experienced failure rates F from 10% to 30%, and states: ruin
falls exponentially in x, the faster the further F lies below the target, and tends to 1
above it. We compute it exactly (dynamic programming, no sampling error) in two readings:

- the asset's own process (the paper's text): one task per step failing with probability F,
  reward R = 0.25 or penalty P = 1, ruin when S < P, N = 10^4 tasks; next to it the
  Lundberg bound and the diffusion approximation, and a Monte Carlo check;
- the authors' script (`stake_survivability.py`): a Cramér–Lundberg process with premium
  0.25 per period and Poisson(F) claims of size 1, ruin when S < 0, 1000 periods, which
  they estimate from 1000 simulated paths per point (we compute it exactly).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from mercat.incentives import ruin as r
from mercat.progress import progress_bar
from mercat.report.claims import Claim, verdict
from mercat.report.experiments import Experiment, ExperimentContext, register, write_csv
from mercat.report.html import Figure, Section, Table

TARGET = 0.20
FAILURE_RATES = (0.10, 0.15, 0.19, 0.20, 0.21, 0.25, 0.30)
HORIZON = 10_000
AUTHORS_HORIZON = 1_000
MC_STAKE_RATIO = 5
MC_SAMPLES = 20_000


def _slope(xs: np.ndarray, ps: np.ndarray) -> float:
    """Slope of log(ruin) against x, over the points where ruin is resolvable (> 1e-300)."""
    return _log_fit(xs, ps)[0]


def _log_fit(xs: np.ndarray, ps: np.ndarray) -> tuple[float, float]:
    """Slope and R² of the straight line through log(ruin) against x (resolvable points):
    an R² near 1 is what "decreases exponentially" means on the data."""
    keep = ps > 1e-300
    if keep.sum() < 3:
        return math.nan, math.nan
    logs = np.log(ps[keep])
    slope, intercept = np.polyfit(xs[keep], logs, 1)
    residual = logs - (slope * xs[keep] + intercept)
    spread = float(((logs - logs.mean()) ** 2).sum())
    r2 = 1 - float((residual**2).sum()) / spread if spread > 0 else math.nan
    return float(slope), r2


def run_fig3(context: ExperimentContext) -> Section:
    from mercat.report.plots import plt, save

    ratios = np.arange(1, 11 if context.quick else 16, dtype=float)
    authors_ratios = np.arange(0, 11, dtype=float)
    rows, facts = [], {}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(FAILURE_RATES)))
    steps = len(FAILURE_RATES) * (len(ratios) + len(authors_ratios) + 1)
    mc_checks = []
    with progress_bar("Fig. 3", steps, context.show_progress) as advance:
        for f, color in zip(FAILURE_RATES, colors, strict=True):
            ours = {"exact": [], "lundberg": [], "diffusion": []}
            for x in ratios:
                problem = r.RuinProblem(x, f, TARGET, HORIZON)
                for method in ours:
                    ours[method].append(r.ruin_probability(problem, method).probability)
                rows.append(["bernoulli", f, x, HORIZON, "S<P"] + [ours[m][-1] for m in ours])
                advance(1)
            authors = []
            for x in authors_ratios:
                problem = r.RuinProblem(x, f, TARGET, AUTHORS_HORIZON, level=0.0, claims="poisson")
                authors.append(r.ruin_exact(problem).probability)
                rows.append(["poisson", f, x, AUTHORS_HORIZON, "S<0", authors[-1], None, None])
                advance(1)
            check = r.RuinProblem(MC_STAKE_RATIO, f, TARGET, HORIZON)
            samples = MC_SAMPLES // 5 if context.quick else MC_SAMPLES
            mc = r.ruin_monte_carlo(check, samples=samples, seed=context.seed)
            exact = ours["exact"][list(ratios).index(MC_STAKE_RATIO)]
            mc_checks.append((f, exact, mc.probability, mc.low, mc.high))
            advance(1)
            exact_arr = np.array(ours["exact"])
            facts[f"F={f}"] = {
                "log_slope_per_x": _slope(ratios, exact_arr),
                "log_linear_r2": _log_fit(ratios, exact_arr)[1],
                "ruin_at_x10": float(exact_arr[list(ratios).index(10)]),
                "authors_reading_ruin_at_x10": authors[-1],
                "monte_carlo_in_ci": bool(mc.low <= exact <= mc.high),
            }
            label = f"F = {100 * f:.0f}%"
            ax.plot(ratios, np.maximum(exact_arr, 1e-300), "+-", color=color, label=label)
            ax.plot(ratios, ours["lundberg"], "--", color=color, linewidth=0.7)
            ax.plot(ratios, np.maximum(ours["diffusion"], 1e-300), "-.", color=color, lw=0.7)
            ax.errorbar(
                [MC_STAKE_RATIO],
                [max(mc.probability, 1e-300)],
                yerr=[[mc.probability - mc.low], [mc.high - mc.probability]],
                fmt="o",
                color=color,
                markersize=4,
                capsize=2,
            )
            ax2.plot(authors_ratios, np.maximum(authors, 1e-300), "+-", color=color, label=label)
    for axis, title in (
        (
            ax,
            f"asset process: ruin S < P within {HORIZON} tasks\n(+ exact, -- Lundberg bound, "
            f"-. diffusion, o Monte Carlo at x = {MC_STAKE_RATIO})",
        ),
        (
            ax2,
            f"authors' script: Poisson claims, ruin S < 0\n"
            f"within {AUTHORS_HORIZON} periods (exact)",
        ),
    ):
        axis.set_yscale("log")
        axis.set_ylim(1e-8, 1.5)
        axis.set_xlabel("initial stake / penalty x")
        axis.set_title(title, fontsize=9)
    ax.set_ylabel("probability of ruin")
    ax2.legend(loc="lower left", ncols=2)
    png = save(fig, context.out_dir / "fig3.png")
    columns = ["claims", "F", "x", "horizon", "ruin", "exact", "lundberg", "diffusion"]
    write_csv(context.out_dir / "fig3.csv", columns, rows)
    in_ci = sum(1 for _, e, _, lo, hi in mc_checks if lo <= e <= hi)
    below = [f for f in FAILURE_RATES if f < TARGET]
    summary = (
        "<p>F<sub>t</sub><sup>target</sup> = 20% (R = 0.25, P = 1). Exact ruin probabilities, "
        "two readings (module docstring of <code>mercat.scenarios.experiments_ruin</code>). "
        "The seed's "
        "claims hold in both: for F below the target ruin falls exponentially in x, "
        "with log-slopes "
        + ", ".join(f"{facts[f'F={f}']['log_slope_per_x']:.2f} (F = {100 * f:.0f}%)" for f in below)
        + "; above the target it tends to 1 (at x = 10: "
        + ", ".join(
            f"{facts[f'F={f}']['ruin_at_x10']:.3f} (F = {100 * f:.0f}%)"
            for f in FAILURE_RATES
            if f > TARGET
        )
        + f"). Monte Carlo ({samples} paths, x = {MC_STAKE_RATIO}) covers the exact value with "
        f"its 95% interval for {in_ci} of {len(mc_checks)} rates.</p>"
    )
    mc_table = Table(
        f"Monte Carlo check at x = {MC_STAKE_RATIO}",
        ("F", "exact", "monte_carlo", "ci_low", "ci_high"),
        tuple(mc_checks),
    )
    grid = Table(
        "exact ruin probability (asset process), by x",
        ("x", *[f"F={f}" for f in FAILURE_RATES]),
        tuple(
            (x, *[row[5] for row in rows if row[0] == "bernoulli" and row[2] == x]) for x in ratios
        ),
        "fig3.csv",
    )
    return Section(
        key="fig3",
        title="Fig. 3: ruin probability against stake (seed 000)",
        summary=summary,
        tables=(grid, mc_table),
        figures=(
            Figure(
                png,
                "Fig. 3: ruin probability against x = S0/P for several F. Left: the exact "
                "probability, the Lundberg bound, the diffusion approximation and Monte Carlo "
                f"({samples} paths, 95% interval) at x = {MC_STAKE_RATIO}; right: the authors' "
                "script's reading. The seed's Fig. 3 is an image without printed values, so "
                "no seed values are drawn; its claims are in the table above.",
            ),
        ),
        facts=facts,
        paper="000",
        claims=_claims(facts, below),
    )


def _claims(facts: dict, below: list[float]) -> tuple[Claim, ...]:
    """Fig. 3's three statements (seed 000, §III.D.1), judged on the exact probabilities."""
    fits = {f: facts[f"F={f}"] for f in FAILURE_RATES}
    worst_r2 = min(fits[f]["log_linear_r2"] for f in below)
    steeper = all(
        fits[lo]["log_slope_per_x"] < fits[hi]["log_slope_per_x"] < 0
        for lo, hi in itertools.pairwise(below)
    )
    above = [f for f in FAILURE_RATES if f > TARGET]
    top = fits[above[-1]]["ruin_at_x10"]
    rising = all(
        fits[lo]["ruin_at_x10"] <= fits[hi]["ruin_at_x10"] + 1e-9  # DP rounding near 1
        for lo, hi in itertools.pairwise(above)
    )
    where = f"Fig. 3 (F_t target {100 * TARGET:.0f}%, N_t = {HORIZON})"
    return (
        Claim(
            "000",
            where,
            "below the target, ruin decreases exponentially with x",
            "exponential in x",
            f"log-linear R² ≥ {worst_r2:.3f} for F = "
            + ", ".join(f"{100 * f:.0f}%" for f in below),
            verdict(worst_r2 >= 0.95),
            "holds if a straight line in log(ruin) against x explains ≥ 95% of the variance",
        ),
        Claim(
            "000",
            where,
            "the smaller F_t below the target, the steeper the decrease",
            "steeper for smaller F_t",
            "log-slopes "
            + ", ".join(f"{fits[f]['log_slope_per_x']:.2f}" for f in below)
            + " per unit x",
            verdict(steeper),
            "holds if the log-slope is negative and falls with F_t",
        ),
        Claim(
            "000",
            where,
            "above the target, ruin tends to 1",
            "→ 1",
            f"{top:.3f} at x = 10, F = {100 * above[-1]:.0f}%",
            verdict(rising and top >= 0.9),
            "holds if ruin at x = 10 rises with F_t and reaches ≥ 0.9 at the largest F_t",
        ),
    )


register(
    Experiment(
        "fig3",
        "Fig. 3: ruin probability versus stake",
        "Exact, Lundberg, diffusion and Monte Carlo ruin probabilities against x.",
        run_fig3,
    )
)
