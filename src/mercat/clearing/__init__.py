"""Market clearing: one protocol (`Mechanism`), many mechanisms, one registry.

- `mercat.clearing.base`: the `Mechanism` protocol and the declared `Property` names;
- `mercat.clearing.registry`: the explicit list of mechanisms that `mercat clear
  --mechanism NAME` reads (`get`, `create`, `names`, `mechanisms`);
- one module per mechanism (`optimal`, `double_auction`, ...).

Mechanism modules import `mercat.clearing.base`, never this package's names, so the registry
can import them without a cycle.
"""

from mercat.clearing.base import Mechanism, Property

__all__ = ["Mechanism", "Property"]
