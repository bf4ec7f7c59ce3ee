"""The standard auction of seed 003 under VCG: set packing by column generation over an exact
knapsack (`colgen`, `knapsack`, `packing`), branch and price (`exact`), Clarke payments
(`mechanism`), and the plain MILP (`highs`) and brute force (`reference`) twins."""

from mercat.clearing.vcg.mechanism import VCGMechanism

__all__ = ["VCGMechanism"]
