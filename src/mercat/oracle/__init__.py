"""Oracles: signed SLA reports on tasks, the q-of-n quorum before a task settles, and the
provider profit (seed 002, eq. 2) and requester utility (eq. 3) from settled records."""

from mercat.oracle.quorum import QuorumRule, Verdict, tally
from mercat.oracle.report import OracleReport, SignedReport

__all__ = ["OracleReport", "QuorumRule", "SignedReport", "Verdict", "tally"]
