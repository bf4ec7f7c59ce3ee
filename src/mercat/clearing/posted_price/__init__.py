"""Seed 001's posted prices with competing market-makers: the sequential-improvement
template (`template`), proposals and their pricing, best responses (`response`, with the
certified fast path in `certificate` and `pool`), strategies (`makers`), best-response
dynamics (`dynamics`) and the clearing mechanism (`mechanism`)."""

from mercat.clearing.posted_price.mechanism import PostedPrice

__all__ = ["PostedPrice"]
