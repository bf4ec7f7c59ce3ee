"""mercat: an engine for decentralized compute marketplaces.

The public surface re-exports what users need most; the modules own the details:

- `mercat.incentives`: collective incentives (seed 000): calibration, ruin, settlement rule;
- `mercat.scenarios`: experiments and simulation engines (readable reference + fast twin);
- `mercat.report`: plots and the HTML report;
- `mercat.errors`: the exception hierarchy.
"""

from mercat.errors import MercatError

__version__ = "0.1.0"

__all__ = ["MercatError", "__version__"]
