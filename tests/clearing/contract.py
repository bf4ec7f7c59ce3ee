"""The mechanism contract now ships with mercat (`mercat.testing.contract`), so that a plug-in
can run it on itself; this name stays for the tests that import it from here."""

from mercat.testing.contract import MechanismContract

__all__ = ["MechanismContract"]
