"""The one exception hierarchy of mercat.

Every error a user can cause (a bad parameter, a malformed market file, an unknown
mechanism name, a rejected ledger operation) is raised as a subclass of `MercatError`
with a message that names the offending value and says what was expected. The command
line turns these into a one-line message and exit code 2, never a traceback.

Rules every module follows:
- validate inputs *before* writing anything, so a rejected call changes nothing;
- raise the most specific class that fits, so callers can catch what they handle;
- classes that describe a bad value also derive from `ValueError` (and unknown names
  from `LookupError`), so generic callers keep working.
"""

from __future__ import annotations


class MercatError(Exception):
    """Base class of every error mercat raises on purpose."""


# --- bad input -------------------------------------------------------------------------


class InvalidParameterError(MercatError, ValueError):
    """A parameter lies outside its domain (a negative stake, a target outside (0, 1), ...)."""


class UnknownNameError(MercatError, LookupError):
    """A name (mechanism, experiment, strategy, ...) that no registry knows."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0])


class InvalidMarketError(MercatError, ValueError):
    """A market description that is malformed or inconsistent (duplicate ids, dangling refs)."""


# --- computation -----------------------------------------------------------------------


class SolverError(MercatError, RuntimeError):
    """An optimisation backend failed or returned a status mercat cannot use."""


class NotProvenOptimalError(SolverError):
    """A result that needs a proven optimum (exact VCG payments) got only a bounded one."""


# --- protocols, ledger, chain ----------------------------------------------------------


class ProtocolError(MercatError):
    """A protocol message or run that violates the protocol (malformed, unauthenticated)."""


class LedgerError(MercatError):
    """A ledger operation was refused; nothing was written."""
