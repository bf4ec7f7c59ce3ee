"""Real workloads for the marketplace's provider agents (seed 002: providers run AI
workloads that requesters submit): preprocessing, training (logistic regression, a small
MLP), inference, and a round of differentially private federated learning, in numpy, small
enough for two cores and shipped with the project.

- `catalog`: the workloads by name, and `execute` (inputs' bytes in, output's bytes out);
- `spec`: a request's workload string (`NAME:KEY=VALUE,...`) and its parameters;
- `archive`: the NumPy archives they read and write, deterministic and bounded on read;
- `learning`, `federated`: the computations; `reference`: readable twins of the gradients;
- `sandbox` and `child`: a run in a child process with time, memory and output limits;
- `datasets`: synthetic datasets for requesters.

Every workload is deterministic given its inputs and workload string, so replicas of a task
and an oracle's re-execution produce the same output bytes, hence the same CID.
"""
