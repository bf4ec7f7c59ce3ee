"""The researcher's workbench: scenario files, sweeps, tidy results, plots (docs/workbench.md).

    from mercat.workbench import read_scenario, run_sweep, load

    scenario = read_scenario("examples/scenarios/collective-sweep.toml")
    run_sweep(scenario, "out/sweep", backend="local", workers=2)
    runs = load("out/sweep")["runs"]          # a pandas DataFrame, one row per run

- `mercat.workbench.scenario`: the scenario file format, checked, expanded into points;
- `mercat.workbench.simulation`: what a scenario can run (`SIMULATIONS`, plug-ins too);
- `mercat.workbench.sweep`: running points locally or on Ray, resumably;
- `mercat.workbench.store`: the results directory;
- `mercat.workbench.results`: `load(DIR)`, the tables as DataFrames;
- `mercat.workbench.plot`: the standard figures (`mercat plot DIR`).
"""

from mercat.workbench.results import Results, load
from mercat.workbench.scenario import Point, Scenario, parse_scenario, read_scenario
from mercat.workbench.simulation import SIMULATIONS, Parameter, PointTables, Simulation, Steps
from mercat.workbench.store import DamagedResultsError, ResultsInUseError
from mercat.workbench.sweep import SweepError, SweepInterrupted, SweepReport, run_sweep

__all__ = [
    "SIMULATIONS",
    "DamagedResultsError",
    "Parameter",
    "Point",
    "PointTables",
    "Results",
    "ResultsInUseError",
    "Scenario",
    "Simulation",
    "Steps",
    "SweepError",
    "SweepInterrupted",
    "SweepReport",
    "load",
    "parse_scenario",
    "read_scenario",
    "run_sweep",
]
