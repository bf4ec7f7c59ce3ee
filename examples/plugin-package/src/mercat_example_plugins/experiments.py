"""An experiment as a plug-in: `mercat reproduce slash-vs-coll-sr`."""

from __future__ import annotations

from mercat.report.experiments import Experiment, ExperimentContext, write_csv
from mercat.report.html import Section, Table
from mercat.scenarios.collective_config import CollectiveConfig
from mercat.scenarios.collective_sim import simulate


def run(context: ExperimentContext) -> Section:
    runs = context.runs or (4 if context.quick else 20)
    rows = []
    for rule in ("coll-sr", "slash-fraction"):
        config = CollectiveConfig(mechanism=rule, assets=50, tasks=1000 if context.quick else 4000)
        summary = simulate(config, runs=runs, seed=context.seed, engine="reference").summary()
        rows.append((rule, summary["removal_precision_pct"], summary["task_failure_rate_pct"]))
    columns = ("rule", "removal_precision_pct", "task_failure_rate_pct")
    csv = write_csv(context.out_dir / "slash.csv", columns, rows)
    return Section(
        key="slash-vs-coll-sr",
        title="Slashing a fraction of the stake against Coll-SR",
        summary="<p>Seed 000's market under Coll-SR and under the slash-fraction plug-in.</p>",
        tables=(Table("removal precision and task failure rate", columns, tuple(rows), csv),),
        facts={rule: {"precision": p, "failure_rate": f} for rule, p, f in rows},
    )


SLASH_VS_COLL_SR = Experiment(
    "slash-vs-coll-sr",
    "Plug-in: slash a fraction against Coll-SR",
    "Seed 000's market under a plug-in collective rule and under Coll-SR.",
    run,
)
