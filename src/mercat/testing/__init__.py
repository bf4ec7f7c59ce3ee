"""Contracts a plug-in runs on itself (they need pytest, mercat's dev extra).

- `mercat.testing.contract.MechanismContract`: a clearing mechanism's contract
  (reproducible, valid allocations, every declared property checked on generated markets).
- `mercat.testing.collective_rule.CollectiveRuleContract`: a collective rule's contract
  (calibration, finite stakes, removal as a threshold, base units, reproducible reference
  runs, conservation on the round pipeline's book, the engines agreeing).
- `mercat.testing.provider_strategy.ProviderStrategyContract`: a provider strategy's
  contract (registered, valid asks before and after every kind of round, deterministic,
  a marketplace run with its book balanced).
- `pytest --pyargs mercat.testing.installed`: both contracts on every mechanism and
  collective rule installed through entry points, without writing a test.

A plug-in's test module subclasses a contract and names its class:

    from mercat.testing.contract import MechanismContract

    class TestFairShare(MechanismContract):
        mechanism = FairShare
"""
