"""Reports: HTML (self-contained) and terminal tables, built from the store only."""

from judgegap.report.html import build_report

__all__ = ["build_report"]
