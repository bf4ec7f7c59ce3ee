"""Seed 003's evaluation in the report: `mercat reproduce seed003`.

Fig. 4 (double auction: trusted auctioneer against k = 1, 2, 3), Fig. 5 (VCG: p = 1, 2, 4
payment groups), both measured on provider processes over TCP (`mercat.auctioneer.measure`),
and the deviation trials (`mercat.auctioneer.trials`) counted. `--quick` shrinks the sizes
so that `make run` stays short; the full sizes are the benchmark's
(`benchmarks/bench_auctioneer.py`).
"""

from __future__ import annotations

from typing import Any

from mercat.progress import progress_bar
from mercat.report.claims import Claim, fmt_ratio, verdict
from mercat.report.experiments import Experiment, ExperimentContext, register, write_csv
from mercat.report.html import Figure, Section, Table

FULL = {"fig4_users": [100, 300, 1000, 3000, 10000], "fig4_rounds": 100, "fig5_users": [100, 125],
        "trials": 5, "trial_mechanisms": ("double", "vcg", "double-coin")}  # fmt: skip
QUICK = {"fig4_users": [100, 1000, 3000], "fig4_rounds": 3, "fig5_users": [20, 30],
         "trials": 1, "trial_mechanisms": ("double",)}  # fmt: skip
#: Seed 003, §6.2 (Fig. 4): "even when 8 providers and 1000 users are used, the distributed
#: implementation finishes in less than a second".
SEED_FIG4_USERS, SEED_FIG4_SECONDS, SEED_FIG4_K = 1000, 1.0, 3


def _label(row: dict[str, Any]) -> str:
    if row["executing"] == 1:
        return "trusted auctioneer"
    if row["mechanism"] == "vcg":
        return f"p = {row['groups']} (k = {row['k']})"
    return f"k = {row['k']} ({row['executing']} providers)"


def run_seed003(context: ExperimentContext) -> Section:
    from mercat.auctioneer import measure
    from mercat.auctioneer.deviations import CATALOGUE
    from mercat.auctioneer.trials import CONFIGS, run_coalition_trials
    from mercat.report.plots import plt, save

    sizes = QUICK if context.quick else FULL
    fig4_total = len(measure.FIG4_CONFIGS) * len(sizes["fig4_users"]) * sizes["fig4_rounds"]
    with progress_bar("Fig. 4 (double auction)", fig4_total, context.show_progress) as advance:
        fig4 = measure.fig4(sizes["fig4_users"], rounds=sizes["fig4_rounds"], progress=advance)
    fig5_total = len(measure.FIG5_GROUPS) * len(sizes["fig5_users"])
    with progress_bar("Fig. 5 (VCG)", fig5_total, context.show_progress) as advance:
        fig5 = measure.fig5(sizes["fig5_users"], progress=advance)
    trial_total = (
        sizes["trials"] * len(sizes["trial_mechanisms"]) * len(CONFIGS) * (len(CATALOGUE) + 1)
    )
    with progress_bar("deviation trials", trial_total, context.show_progress) as advance:
        tallies = run_coalition_trials(
            sizes["trials"],
            mechanisms=sizes["trial_mechanisms"],
            seed=context.seed,
            progress=advance,
        )

    columns = [
        "mechanism", "users", "executing", "k", "groups", "ok_rounds", "rounds",
        "outputs_equal_centralized", "seconds_median", "seconds_min", "seconds_max",
        "cpu_seconds_all_providers_per_round", "cpu_seconds_busiest_provider_per_round",
    ]  # fmt: skip
    fig4_csv, fig5_csv = (
        write_csv(context.out_dir / name, columns, [[r.get(c) for c in columns] for r in rows])
        for name, rows in (("fig4.csv", fig4), ("fig5.csv", fig5))
    )

    figures = []
    for rows, name, title in (
        (fig4, "fig4", "Fig. 4: double auction, running time per round"),
        (fig5, "fig5", "Fig. 5: VCG standard auction, running time per round"),
    ):
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        for label in dict.fromkeys(_label(r) for r in rows):
            mine = [r for r in rows if _label(r) == label]
            ax.plot(
                [r["users"] for r in mine],
                [r["seconds_median"] for r in mine],
                marker="o",
                label=label,
            )
        if name == "fig4":
            ax.plot([SEED_FIG4_USERS], [SEED_FIG4_SECONDS], marker="v", color="k", markersize=9,
                    linestyle="none", label=f"seed 003 (Fig. 4): < {SEED_FIG4_SECONDS:.0f} s at "
                    f"n = {SEED_FIG4_USERS}, k = {SEED_FIG4_K}")  # fmt: skip
        if name == "fig5":
            for label in dict.fromkeys(_label(r) for r in rows if r["executing"] > 1):
                mine = [r for r in rows if _label(r) == label]
                ax.plot(
                    [r["users"] for r in mine],
                    [r["cpu_seconds_busiest_provider_per_round"] for r in mine],
                    linestyle=":",
                    marker="x",
                    label=f"{label}: CPU of the busiest provider",
                )
        ax.set_xscale("log" if name == "fig4" else "linear")
        ax.set_yscale("log")
        ax.set_xlabel("users n")
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"{title} ({measure.usable_cpus()} cores)")
        ax.legend(fontsize="x-small")
        seed_note = (
            f"; the seed's one stated value, under {SEED_FIG4_SECONDS:.0f} s at n = "
            f"{SEED_FIG4_USERS} with k = {SEED_FIG4_K}, is the black triangle (seed 003, §6.2)"
            if name == "fig4"
            else "; the seed prints no values for Fig. 5 (a sharp rise near n = 100, hours "
            "beyond), so none are drawn"
        )
        figures.append(
            Figure(
                save(fig, context.out_dir / f"{name}.png"),
                f"{title}: median seconds per round against users, log scale{seed_note}",
            )
        )

    bar = measure.fig4_bar(fig4, 1000) if 1000 in sizes["fig4_users"] else {}
    speedups = measure.fig5_speedups(fig5)
    totals = {"trials": 0, "honest": 0, "bottom": 0, "mixed": 0, "manipulated": 0}
    for tally in tallies.values():
        for kind, value in tally.as_dict().items():
            totals[kind] += value
    equal = all(r["outputs_equal_centralized"] for r in fig4 + fig5 if r["ok_rounds"])
    summary = _summary(bar, speedups, totals, equal, context.quick)
    trial_rows = tuple(
        (mech, m, k, dev, t.honest, t.bottom, t.mixed, t.manipulated)
        for (mech, m, k, dev), t in tallies.items()
    )
    return Section(
        key="seed003",
        title="Seed 003: the distributed auctioneer (Fig. 4, Fig. 5, deviation trials)",
        summary=summary,
        tables=(
            Table(
                "Fig. 4 and Fig. 5 rows (median over rounds)",
                ("mechanism", "users", "executing", "k", "groups", "seconds", "busiest CPU s"),
                tuple(
                    (
                        r["mechanism"],
                        r["users"],
                        r["executing"],
                        r["k"],
                        r["groups"],
                        r["seconds_median"],
                        r["cpu_seconds_busiest_provider_per_round"],
                    )
                    for r in fig4 + fig5
                ),
                fig4_csv,
            ),
            Table(
                "Fig. 5 rows",
                tuple(columns),
                tuple(tuple(r[c] for c in columns) for r in fig5),
                fig5_csv,
            ),
            Table(
                "deviation trials at the providers outside the coalition",
                ("mechanism", "m", "k", "deviation", "honest", "⊥", "split", "manipulated"),
                trial_rows,
            ),
        ),
        figures=tuple(figures),
        paper="003",
        claims=_claims(bar, speedups, totals, equal, sizes),
        facts={
            "fig4_bar": bar,
            "fig5_speedups": speedups,
            "deviation_trials": totals,
            "outputs_equal_centralized": equal,
            "cpus": measure.usable_cpus(),
        },
    )


def _summary(
    bar: dict[str, Any],
    speedups: dict[str, Any],
    totals: dict[str, int],
    equal: bool,
    quick: bool,
) -> str:
    parts = [
        f"<p>Providers are OS processes talking ZeroMQ over TCP on loopback; {speedups['cpus']} "
        "cores. A round's time runs from generating the bids to the client holding every "
        "provider's result. Every delivered output was "
        + ("equal to" if equal else "<b>not</b> always equal to")
        + " the trusted auctioneer's, bit for bit."
        + (" Quick sizes (<code>--quick</code>)." if quick else "")
        + "</p>"
    ]
    if bar:
        ks = [key for key in bar if key.startswith("k")]
        parts.append(
            "<p>Fig. 4 at n = 1000: trusted auctioneer "
            f"{1000 * bar['centralized_seconds']:.1f} ms; "
            + ", ".join(
                f"k = {key[1:]} ({bar[key]['executing']} providers) "
                f"{1000 * bar[key]['seconds']:.1f} ms "
                f"({fmt_ratio(bar[key]['ratio_to_centralized'], 1)})"
                for key in ks
            )
            + ". The seed's goal: under 1 s (met: "
            + ", ".join(key for key in ks if bar[key]["under_1s"])
            + "), and mercat's: at most 2× the trusted auctioneer (met: "
            + (", ".join(key for key in ks if bar[key]["within_2x"]) or "none")
            + "). "
            + _floor_text(bar, ks)
            + "</p>"
        )
    headline = speedups.get("headline")
    last = speedups["by_users"][-1] if speedups["by_users"] else None
    shown = headline or last
    if shown:
        parts.append(
            f"<p>Fig. 5 at n = {shown['users']} (trusted auctioneer "
            f"{shown['centralized_seconds']:.2f} s"
            + ("" if headline else f"; below the {speedups['threshold_seconds']:.0f} s threshold")
            + "): speed-up in wall time "
            + ", ".join(
                f"p = {g}: {fmt_ratio(shown[f'p{g}_speedup'])}"
                for g in (2, 4)
                if f"p{g}_speedup" in shown
            )
            + "; in CPU time of the busiest provider (what one core per provider would give) "
            + ", ".join(
                f"p = {g}: {fmt_ratio(shown[f'p{g}_cpu_speedup_of_busiest_provider'])}"
                for g in (2, 4)
                if f"p{g}_speedup" in shown
            )
            + ". With fewer cores than the 8 providers, every provider computes the allocation "
            "and k+1 providers compute each payment, so the wall time cannot shrink here: "
            f"the providers' CPU time caps the speed-up on {speedups['cpus']} cores at "
            + ", ".join(
                f"p = {g}: {fmt_ratio(shown[f'p{g}_speedup_ceiling_on_cpus'])}"
                for g in (2, 4)
                if f"p{g}_speedup" in shown
            )
            + ".</p>"
        )
    parts.append(
        f"<p>Deviation trials: {totals['trials']} trials, {totals['honest']} honest outcome, "
        f"{totals['bottom']} ⊥, {totals['mixed']} split between the honest outcome and ⊥, "
        f"<b>{totals['manipulated']} manipulated</b>.</p>"
    )
    return "".join(parts)


def _floor_text(bar: dict[str, Any], ks: list[str]) -> str:
    """What no protocol could beat on these cores, or why it cannot be said."""
    known = [key for key in ks if bar[key]["cpu_floor_ratio"] is not None]
    if not known:
        return (
            "The floor no protocol could beat on these cores is not measurable in this run: "
            "the trusted auctioneer's CPU time per round was below the clock's resolution."
        )
    return (
        "No protocol could beat "
        + ", ".join(f"{bar[key]['cpu_floor_ratio']:.2f}× for {key}" for key in known)
        + f" on these {bar['cpus']} cores: each executing provider does at least the "
        "trusted auctioneer's own work."
    )


def _claims(
    bar: dict[str, Any],
    speedups: dict[str, Any],
    totals: dict[str, int],
    equal: bool,
    sizes: dict[str, Any],
) -> tuple[Claim, ...]:
    """Seed 003's stated numbers (§3.2, §4.1, §6.2, §6.3) against this run."""
    key = f"k{SEED_FIG4_K}"
    fig4 = bar.get(key)
    claims = [
        Claim(
            "003",
            "Fig. 4 (§6.2)",
            f"with 8 providers (k = {SEED_FIG4_K}) and {SEED_FIG4_USERS} users the distributed "
            "double auction finishes in less than a second",
            f"< {SEED_FIG4_SECONDS:.0f} s",
            f"{fig4['seconds']:.3f} s (trusted auctioneer {bar['centralized_seconds']:.3f} s)"
            if fig4
            else "not run",
            verdict(fig4["under_1s"] if fig4 else None),
            f"median over {sizes['fig4_rounds']} round(s) on {bar.get('cpus', '?')} cores, "
            "providers as processes over TCP"
            if fig4
            else f"this run's sizes do not include n = {SEED_FIG4_USERS} with k = {SEED_FIG4_K}",
        )
    ]
    shown = speedups.get("headline") or (speedups["by_users"] or [None])[-1]
    if shown is not None:
        gains = {g: shown.get(f"p{g}_speedup") for g in (2, 4) if f"p{g}_speedup" in shown}
        ceilings = {g: shown.get(f"p{g}_speedup_ceiling_on_cpus") for g in gains}
        gained = [g for g, v in gains.items() if v is not None and v > 1]
        capped = all(c is not None and c <= 1.05 for c in ceilings.values())
        if len(gained) == len(gains):
            outcome, why = True, "holds if the wall-time speed-up exceeds 1× for every p > 1"
        elif capped:
            outcome = None
            why = (
                f"{speedups['cpus']} cores for 8 providers: their CPU time caps the speed-up "
                "at " + ", ".join(f"p = {g}: {fmt_ratio(c)}" for g, c in ceilings.items())
            )
        else:
            outcome, why = False, "the speed-up stays at or below 1× with cores to spare"
        claims.append(
            Claim(
                "003",
                "Fig. 5 (§6.3)",
                "parallel payment groups offset the overhead of distributing the VCG auction",
                "speed-up > 1× (p = 2, 4)",
                f"n = {shown['users']}: "
                + ", ".join(f"p = {g}: {fmt_ratio(v)}" for g, v in gains.items()),
                verdict(outcome),
                why,
            )
        )
    claims.append(
        Claim(
            "003",
            "§4.1, Theorem 1 (k-resilience)",
            "no coalition of at most k providers changes the outcome; it can only abort it",
            "0 manipulated",
            f"{totals['manipulated']} manipulated of {totals['trials']} trials",
            verdict(totals["manipulated"] == 0 if totals["trials"] else None),
            "holds if no trial's honest providers accepted a manipulated outcome",
        )
    )
    claims.append(
        Claim(
            "003",
            "§3.2 (simulating the auctioneer)",
            "the providers together compute what the trusted auctioneer would",
            "identical outcome",
            "identical, bit for bit" if equal else "not always identical",
            verdict(equal),
            "every delivered output compared with the trusted auctioneer's on the same bids",
        )
    )
    return tuple(claims)


register(
    Experiment(
        "seed003",
        "Seed 003: distributed auctioneer",
        "Fig. 4 (double auction), Fig. 5 (VCG payment groups), deviation trials.",
        run_seed003,
    )
)
