"""Smart contracts (Vyper) that settle the round pipeline's tasks by its money rule, on an
embedded EVM by default and on any EVM JSON-RPC node through web3.py. See docs/chain.md.

Public surface:

    ChainBook(rule, ...)                       the contracts as a book of the round pipeline
    ChainMarket.deploy(backend, rule, ...)     token + market (+ oracle quorum), one interface
    BoaBackend()                               titanoboa's in-process EVM (the default)
    Web3Backend.eth_tester() / .http(url)      web3.py over py-evm in process / a JSON-RPC node
    GanacheNode(install_dir)                   a local ganache node from npm, stopped by PID
    integer_rule(mechanism, S0, target, P)     a mechanism's collective rule in base units
    compile_contract(name), CONTRACT_NAMES     the shipped .vy contracts, compiled by vyper
    encoding                                   names, offers, terms and tasks as contract args
    ops, reference, scenario                   operations as data, the rules in plain Python
                                               (ReferenceBook), random scenarios, their replay

Backends are imported lazily by their modules, so `import mercat.chain` needs eth-abi and
eth-utils beside mercat's own dependencies; vyper, titanoboa and web3 load when a backend
or compile is used.
"""

from mercat.chain.backend import ChainBackend, Receipt
from mercat.chain.boa_backend import BoaBackend
from mercat.chain.book import ChainBook
from mercat.chain.contracts import CONTRACT_NAMES, ContractArtifact, Event, compile_contract
from mercat.chain.ganache import GanacheNode, install_ganache
from mercat.chain.market import (
    ChainMarket,
    Settlement,
    TxResult,
    Verdict,
    default_min_stake,
    integer_rule,
)
from mercat.chain.web3_backend import Web3Backend

__all__ = [
    "CONTRACT_NAMES",
    "BoaBackend",
    "ChainBackend",
    "ChainBook",
    "ChainMarket",
    "ContractArtifact",
    "Event",
    "GanacheNode",
    "Receipt",
    "Settlement",
    "TxResult",
    "Verdict",
    "Web3Backend",
    "compile_contract",
    "default_min_stake",
    "install_ganache",
    "integer_rule",
]
