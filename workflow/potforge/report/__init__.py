"""The campaign report: one self-contained HTML page of a campaign folder's results."""

from potforge.report.html import write_report

__all__ = ["write_report"]
