"""Sampled misreports now ship with mercat (`mercat.testing.truthfulness`); this name stays
for the tests that import them from here."""

from mercat.testing.truthfulness import misreport, misreport_gains, misreports_pay, true_utility

__all__ = ["misreport", "misreport_gains", "misreports_pay", "true_utility"]
