"""Seed 002, Fig. 3-5: the 30-day simulation of cloud and community providers, run through
the round pipeline (`mercat.scenarios.cloudchain`).

What the seed reports and what we compare:
- Fig. 3: throughput "almost linear" as requesters grow from 10 to 300;
- Fig. 4: tokens over 30 days among 28 providers: AWS, Google Cloud and Azure most, community
  nodes "a substantial share";
- Fig. 5: Jain's fairness index "using various sizes of requester groups", "at least 0.89".
  mercat measures it over requester groups that differ in size, budget and workload (and
  over single requesters), and runs controls that drop jobs at random or from one group,
  to show that the index tells an unfair allocation from a fair one;
- SLA compliance and utilization (no numbers given); utilization both pooled by capacity
  and as the unweighted mean over providers.
Beside the figures: the four collective rules of seed 000 on the same market.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np

from mercat.progress import progress_bar
from mercat.report.claims import Claim, verdict
from mercat.report.experiments import Experiment, ExperimentContext, register, write_csv
from mercat.report.html import Figure, Section, Table
from mercat.scenarios.cloudchain import simulate
from mercat.scenarios.cloudchain_config import CloudChainConfig
from mercat.scenarios.cloudchain_metrics import CloudChainResult

REQUESTERS = (10, 50, 100, 200, 300)  # the seed's range of requesters (Fig. 3, 5)
TOKENS_AT = 100  # requesters in the runs whose token distribution Fig. 4 shows
CONTROLS_AT = 100  # requesters in the fairness controls (the market serves groups alike)
CONTROL_DROP = 0.3  # share of jobs a control drops
CONTROLS = (
    ("market", {}),
    ("drop 30% of all jobs", {"drop": "random"}),
    ("drop 30% of independents' jobs", {"drop": "group", "drop_group": "independents"}),
    ("drop 30% of labs' jobs", {"drop": "group", "drop_group": "labs"}),
)
VARIANTS = ("free", "coll-stake", "coll-rep", "coll-sr")  # seed 000's collective rules
SEED_JAIN_FLOOR = 0.89  # Fig. 5 of seed 002: "individual indexes are at least 0.89"
#: Fig. 4 of seed 002: "large cloud vendors, including AWS, Google Cloud, and Azure, secured
#: the most tokens".
SEED_TOP_EARNERS = ("AWS", "Google Cloud", "Azure")
#: Fig. 3 of seed 002: throughput "almost linear" from 10 to 300 requesters; we read "almost
#: linear" as a least-squares line explaining at least 95% of the variance.
LINEAR_R2 = 0.95
DAYS, QUICK_DAYS = 30, 7
WORKERS = min(2, os.cpu_count() or 1)


def _run(job: tuple[CloudChainConfig, int]) -> CloudChainResult:
    config, seed = job
    return simulate(config, seed=seed)


def _run_all(
    jobs: list[tuple[CloudChainConfig, int]], show: bool, days: int
) -> list[CloudChainResult]:
    """Every (config, seed) run, in `WORKERS` processes (results do not depend on how many)."""
    with progress_bar(f"seed 002 {days}-day market (runs)", len(jobs), show) as advance:
        if WORKERS == 1:
            results = []
            for job in jobs:
                results.append(_run(job))
                advance(1)
            return results
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
            results = []
            for result in pool.map(_run, jobs):
                results.append(result)
                advance(1)
            return results


def _mean(results: list[CloudChainResult], measure) -> float:  # type: ignore[no-untyped-def]
    return float(np.mean([measure(r) for r in results]))


def run_cloudchain(context: ExperimentContext) -> Section:
    from mercat.report.plots import plt, save

    seeds = context.runs or (1 if context.quick else 3)
    days = QUICK_DAYS if context.quick else DAYS
    base = CloudChainConfig(days=days)
    seed_list = [context.seed + s for s in range(seeds)]
    # Every run the section needs, keyed so that shared runs (the market at CONTROLS_AT and
    # TOKENS_AT, the default rule among the variants) are made once.
    configs: dict[tuple[str, object], CloudChainConfig] = {}
    for n in REQUESTERS:
        configs[("n", n)] = replace(base, requesters=n)
    for label, change in CONTROLS:
        drop = {**change, "drop_probability": CONTROL_DROP} if change else {}
        configs[("control", label)] = replace(base, requesters=CONTROLS_AT, **drop)
    for rule in VARIANTS:
        configs[("rule", rule)] = replace(base, requesters=TOKENS_AT, mechanism=rule)
    unique = list(dict.fromkeys(configs.values()))
    jobs = [(c, s) for c in unique for s in seed_list]
    results = _run_all(jobs, context.show_progress, days)
    by_config = {c: results[i * seeds : (i + 1) * seeds] for i, c in enumerate(unique)}

    rows = []
    for n in REQUESTERS:
        rs = by_config[configs[("n", n)]]
        rows.append(
            (
                n,
                *(
                    _mean(rs, measure)
                    for measure in (
                        lambda r: r.gpu_hours_per_hour,
                        lambda r: r.jobs_per_hour,
                        lambda r: r.jain_groups,
                        lambda r: r.jain_requesters,
                        lambda r: r.sla_compliance,
                        lambda r: r.utilization_by_capacity,
                        lambda r: r.utilization_mean_over_providers,
                        lambda r: r.jobs_completed_share,
                        lambda r: r.cloud_token_share,
                        lambda r: len(r.removed),
                    )
                ),
            )
        )
    group_names = [g.name for g in base.groups]
    control_rows = []
    for label, _ in CONTROLS:
        rs = by_config[configs[("control", label)]]
        shares = np.mean([[g["served_share"] for g in r.groups_table()] for r in rs], axis=0)
        control_rows.append(
            (
                label,
                _mean(rs, lambda r: r.jain_groups),
                _mean(rs, lambda r: r.jain_requesters),
                *(float(s) for s in shares),
            )
        )
    variant_rows = []
    for rule in VARIANTS:
        rs = by_config[configs[("rule", rule)]]
        variant_rows.append(
            (
                rule,
                _mean(rs, lambda r: r.gpu_hours_per_hour),
                _mean(rs, lambda r: r.sla_compliance),
                _mean(rs, lambda r: len(r.removed)),
                _mean(rs, lambda r: 1 - r.cloud_token_share),
                _mean(rs, lambda r: r.jain_groups),
            )
        )

    token_runs = by_config[configs[("n", TOKENS_AT)]]
    providers = base.providers
    tokens = np.mean([r.tokens for r in token_runs], axis=0)
    token_rows = tuple(
        (p.name, "cloud" if p.cloud else "community", p.cost, p.gpus, float(t))
        for p, t in zip(providers, tokens, strict=True)
    )
    per_requester = [row[1] / row[0] for row in rows]
    linear_fit = np.polyfit([row[0] for row in rows], [row[1] for row in rows], 1)
    index_at = [r[0] for r in rows].index(TOKENS_AT)
    facts = {
        "throughput_gpu_hours_per_hour": {str(r[0]): r[1] for r in rows},
        "throughput_per_requester": {
            str(r[0]): v for r, v in zip(rows, per_requester, strict=True)
        },
        "jain_groups": {str(r[0]): r[3] for r in rows},
        "jain_requesters": {str(r[0]): r[4] for r in rows},
        "jain_controls": {r[0]: {"groups": r[1], "requesters": r[2]} for r in control_rows},
        "sla_compliance": {str(r[0]): r[5] for r in rows},
        "utilization_by_capacity": {str(r[0]): r[6] for r in rows},
        "utilization_mean_over_providers": {str(r[0]): r[7] for r in rows},
        "cloud_token_share_at_100": rows[index_at][9],
        "variants": {
            r[0]: {"sla_compliance": r[2], "servers_removed": r[3], "community_share": r[4]}
            for r in variant_rows
        },
        "days": days,
        "seeds": seeds,
    }

    fig, (a3, a4, a5, ac) = plt.subplots(1, 4, figsize=(18, 3.9))
    xs_n = [r[0] for r in rows]
    a3.plot(xs_n, [r[1] for r in rows], "o-", label="mercat")
    xs = np.array([0, REQUESTERS[-1]])
    a3.plot(xs, linear_fit[0] * xs + linear_fit[1], ":", color="gray", label="least-squares line")
    a3.set_xlabel("requesters")
    a3.set_ylabel("GPU-hours completed per hour")
    a3.set_title("Fig. 3: throughput", fontsize=9)
    a3.legend(fontsize=7)
    order = np.argsort(-tokens)
    colors = ["tab:blue" if providers[i].cloud else "tab:orange" for i in order]
    bars = a4.bar(range(len(order)), tokens[order] / 1e3, color=colors)
    # The seed names its top earners (no values): their bars are hatched, wherever they rank.
    named = [bar for bar, i in zip(bars, order, strict=True)
             if providers[i].name in SEED_TOP_EARNERS]  # fmt: skip
    for bar in named:
        bar.set_hatch("///")
        bar.set_edgecolor("k")
    if named:
        named[0].set_label("seed 002 (Fig. 4): the top earners " + ", ".join(SEED_TOP_EARNERS))
        a4.legend(fontsize=6, loc="upper right")
    a4.set_xticks(
        range(len(order)),
        [providers[i].name.replace("Community Node ", "C") for i in order],
        rotation=90,
        fontsize=6,
    )
    a4.set_ylabel(f"tokens (thousands), {days} days")
    a4.set_title(f"Fig. 4: tokens by provider ({TOKENS_AT} requesters; blue: clouds)", fontsize=9)
    a5.plot(xs_n, [r[3] for r in rows], "o-", label="over groups")
    a5.plot(xs_n, [r[4] for r in rows], "s--", label="over requesters")
    a5.axhline(SEED_JAIN_FLOOR, color="k", linestyle=":",
               label=f"seed 002 (Fig. 5): >= {SEED_JAIN_FLOOR}")  # fmt: skip
    a5.set_ylim(0.5, 1.01)
    a5.set_xlabel("requesters")
    a5.set_ylabel("Jain's index of served share of demand")
    a5.set_title("Fig. 5: fairness", fontsize=9)
    a5.legend(fontsize=7)
    positions = np.arange(len(control_rows))
    ac.bar(positions - 0.2, [r[1] for r in control_rows], 0.4, label="over groups")
    ac.bar(positions + 0.2, [r[2] for r in control_rows], 0.4, label="over requesters")
    ac.set_xticks(positions, [r[0].replace(" jobs", "") for r in control_rows], fontsize=6,
                  rotation=15)  # fmt: skip
    ac.set_ylim(0.5, 1.01)
    ac.set_title(f"Jain's index under controls ({CONTROLS_AT} requesters)", fontsize=9)
    ac.legend(fontsize=7, loc="lower left")
    png = save(fig, context.out_dir / "seed002_cloudchain.png")

    columns = (
        "requesters",
        "gpu_hours_per_hour",
        "jobs_per_hour",
        "jain_groups",
        "jain_requesters",
        "sla_compliance",
        "utilization_by_capacity",
        "utilization_mean_over_providers",
        "jobs_completed_share",
        "cloud_token_share",
        "servers_removed",
    )
    csv = write_csv(context.out_dir / "seed002_cloudchain.csv", columns, rows)
    control_columns = ("control", "jain_groups", "jain_requesters",
                       *(f"served_share_{g}" for g in group_names))  # fmt: skip
    control_csv = write_csv(
        context.out_dir / "seed002_cloudchain_controls.csv", control_columns, control_rows
    )
    variant_columns = ("rule", "gpu_hours_per_hour", "sla_compliance", "servers_removed",
                       "community_token_share", "jain_groups")  # fmt: skip
    variant_csv = write_csv(
        context.out_dir / "seed002_cloudchain_rules.csv", variant_columns, variant_rows
    )
    community_share = 1 - facts["cloud_token_share_at_100"]
    top = [providers[i].name for i in order[:3]]
    market_jain = control_rows[0][1]
    summary = (
        f"<p>{days} days of hourly rounds through the round pipeline (premium and open double "
        f"auctions, sampled execution, a 3-of-5 oracle quorum, the collective rule "
        f"{base.mechanism}, an audited in-memory book), {len(providers)} providers (5 clouds, "
        f"{len(providers) - 5} community nodes), requester groups "
        f"{', '.join(group_names)}, {seeds} seed(s) per point; model in "
        "<code>mercat.scenarios.cloudchain</code> (the seed gives no parameters). "
        f"Fig. 3: throughput per requester is {per_requester[0]:.2f} GPU-hours per hour at "
        f"{REQUESTERS[0]} requesters and {per_requester[-1]:.2f} at {REQUESTERS[-1]}. "
        f"Fig. 5: Jain's index over groups' served share of demand is "
        f"{min(r[3] for r in rows):.3f}-{max(r[3] for r in rows):.3f} (seed: at least "
        f"{SEED_JAIN_FLOOR}); at {CONTROLS_AT} requesters it is {market_jain:.3f} for the "
        f"market, {control_rows[1][1]:.3f} when 30% of all jobs are dropped (equal "
        f"treatment), {control_rows[2][1]:.3f} and {control_rows[3][1]:.3f} when 30% of one "
        f"group's jobs are. Fig. 4: at {TOKENS_AT} requesters the clouds earn "
        f"{100 * (1 - community_share):.0f}% of the tokens and community nodes "
        f"{100 * community_share:.0f}%; the top earners are {', '.join(top)}.</p>"
    )
    fit_r2 = _r2([r[0] for r in rows], [r[1] for r in rows], linear_fit)
    facts["throughput_linear_r2"] = fit_r2
    return Section(
        key="seed002-cloudchain",
        title=f"Seed 002: {days}-day multi-provider simulation (Fig. 3-5)"
        + ("" if days == DAYS else f", shortened from the seed's {DAYS} days"),
        paper="002",
        claims=_claims(rows, fit_r2, providers, tokens, days),
        summary=summary,
        tables=(
            Table("by number of requesters", columns, tuple(rows), csv),
            Table(
                f"fairness controls ({CONTROLS_AT} requesters): Jain's index and served share "
                "by group",
                control_columns,
                tuple(control_rows),
                control_csv,
            ),
            Table(
                f"seed 000's collective rules on the same market ({TOKENS_AT} requesters)",
                variant_columns,
                tuple(variant_rows),
                variant_csv,
            ),
            Table(
                f"tokens over {days} days by provider ({TOKENS_AT} requesters, eq. 2)",
                ("provider", "kind", "cost_per_gpu_hour", "gpus", "tokens"),
                token_rows,
            ),
        ),
        figures=(
            Figure(
                png,
                f"{days} days, {seeds} seed(s) per point: Fig. 3 throughput, Fig. 4 tokens, "
                f"Fig. 5 fairness with the seed's floor of {SEED_JAIN_FLOOR} drawn (seed 002, "
                "Fig. 5), and the fairness controls. In Fig. 4 the providers the seed names as "
                "the top earners are hatched; the seed prints no values for Fig. 3 and Fig. 4.",
            ),
        ),
        facts=facts,
    )


def _r2(xs: list[float], ys: list[float], fit: np.ndarray) -> float:
    """Share of the variance of ys that the least-squares line explains."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    spread = float(((y - y.mean()) ** 2).sum())
    residual = float(((y - np.polyval(fit, x)) ** 2).sum())
    return 1 - residual / spread if spread > 0 else float("nan")


def _claims(rows: list, fit_r2: float, providers, tokens, days: int) -> tuple[Claim, ...]:  # type: ignore[no-untyped-def]
    """Seed 002's numbered statements about its 30-day simulation (Fig. 3-5)."""
    period = f"{days} days" + ("" if days == DAYS else f" (the seed: {DAYS})")
    order = np.argsort(-tokens)
    top = [providers[i].name for i in order[: len(SEED_TOP_EARNERS)]]
    cost = {p.name: p.cost for p in providers}
    cheaper = sorted(cost.values())[len(cost) // 2]
    jain = [r[3] for r in rows]
    return (
        Claim(
            "002",
            "Fig. 3",
            f"throughput grows almost linearly from {REQUESTERS[0]} to {REQUESTERS[-1]} requesters",
            "almost linear",
            f"R² {fit_r2:.3f}; {rows[0][1] / rows[0][0]:.2f} → {rows[-1][1] / rows[-1][0]:.2f} "
            "GPU-hours per hour per requester",
            verdict(fit_r2 >= LINEAR_R2),
            f"holds if a straight line explains ≥ {100 * LINEAR_R2:.0f}% of the variance, {period}",
        ),
        Claim(
            "002",
            "Fig. 4",
            "the large clouds " + ", ".join(SEED_TOP_EARNERS) + " secure the most tokens",
            ", ".join(SEED_TOP_EARNERS),
            "top earners: " + ", ".join(top),
            verdict(set(top) == set(SEED_TOP_EARNERS)),
            "mercat's auctions pay for GPU-hours delivered at the clearing price, so the "
            f"cheapest win; {', '.join(SEED_TOP_EARNERS)} ask "
            + ", ".join(f"{cost[n]:g}" for n in SEED_TOP_EARNERS if n in cost)
            + f" tokens per GPU-hour against a median ask of {cheaper:g}"
            if set(top) != set(SEED_TOP_EARNERS)
            else f"the three largest token totals over {period}",
        ),
        Claim(
            "002",
            "Fig. 5",
            "Jain's fairness index over requester groups of various sizes is at least "
            f"{SEED_JAIN_FLOOR}",
            f"≥ {SEED_JAIN_FLOOR}",
            f"{min(jain):.3f}-{max(jain):.3f}",
            verdict(min(jain) >= SEED_JAIN_FLOOR),
            f"holds if the index over groups is ≥ {SEED_JAIN_FLOOR} at every number of "
            f"requesters, {period}",
        ),
    )


register(
    Experiment(
        "seed002-cloudchain",
        "Seed 002: multi-provider simulation (30 days, 7 with --quick)",
        "Throughput, tokens, Jain fairness over requester groups with controls, SLA "
        "compliance and utilization over 30 days, through the round pipeline.",
        run_cloudchain,
    )
)
