"""HTML pages of runs: ``report.html`` per run (``gankit report``, written at the end of every
run) and ``gankit compare``'s page over several runs. See ``pages`` and ``collect``."""

from gankit.report.pages import (REPORT_NAME, Comparison, write_compare, write_comparison,
                                 write_report)

__all__ = ["REPORT_NAME", "Comparison", "write_compare", "write_comparison", "write_report"]
