"""Differential privacy for federated learning (seed 002, eq. 4 and Alg. 1-2).

- `gaussian`: clipping and the Gaussian noise of eq. 4 (Alg. 1);
- `accountant`: what a run of noisy releases spends, on Google's `dp_accounting` (Alg. 2),
  with an exact closed-form twin for un-sampled runs;
- `fedavg`: federated averaging with clipped, noised client updates, a vectorized fast path
  beside a readable per-client reference.
"""
