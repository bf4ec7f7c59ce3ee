"""Smart contracts (Vyper) for escrow and collective stake; see docs/chain.md."""
