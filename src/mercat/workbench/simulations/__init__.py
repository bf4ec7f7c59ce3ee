"""mercat's own simulations for scenario files, in the order listings follow."""

from mercat.workbench.simulations.clearing import ClearingSimulation
from mercat.workbench.simulations.cloudchain import CloudChainSimulation
from mercat.workbench.simulations.collective import CollectiveSimulation
from mercat.workbench.simulations.fedavg import FedAvgSimulation
from mercat.workbench.simulations.marketplace import MarketplaceSimulation

BUILTIN = (
    CollectiveSimulation,
    FedAvgSimulation,
    ClearingSimulation,
    MarketplaceSimulation,
    CloudChainSimulation,
)
