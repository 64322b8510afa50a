"""``tokentrace.reports``, the public path of the ledger's reports: the module is ``tokentrace.ledger.reports``, and
this name is that module (the same object, so attributes set on one are set on the other)."""

from __future__ import annotations

import sys

from .ledger import reports as _reports
from .ledger.reports import (  # the public names, for type checkers
    CLI_NAMES,
    HTTP_NAMES,
    ReportError,
    budget_row,
    budget_status,
    export_rows,
    report,
    stats,
    to_csv,
    to_jsonl,
)

__all__ = ["CLI_NAMES", "HTTP_NAMES", "ReportError", "budget_row", "budget_status", "export_rows", "report", "stats",
           "to_csv", "to_jsonl"]

sys.modules[__name__] = _reports
