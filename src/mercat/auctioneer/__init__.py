"""The distributed auctioneer (seed 003): providers that together replace a trusted auctioneer."""

import logging

# A library logs, the application decides where to: without a handler of its own, Python
# would print every dropped message of a simulation on stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())
