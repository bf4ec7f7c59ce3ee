"""Plots and the HTML report: experiments return `Section`s, `write_report` assembles them."""

from mercat.report.html import Figure, Section, Table, write_report

__all__ = ["Figure", "Section", "Table", "write_report"]
