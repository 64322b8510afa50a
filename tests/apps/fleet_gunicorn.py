"""gunicorn config for the fleet test: instrument tokentrace in every worker after fork."""

from __future__ import annotations

import json
import os
from typing import Any

workers = int(os.environ.get("TT_WORKERS", "4"))
threads = 4


def post_fork(server: Any, worker: Any) -> None:
    import tokentrace

    tokentrace.instrument(ledger=os.environ["TT_LEDGER"], prices=json.loads(os.environ["TT_PRICES"]),
                          budgets=[tokentrace.Budget("fleet-daily", limit_usd=float(os.environ["TT_LIMIT_USD"]),
                                                     action=os.environ.get("TT_ACTION", "block"))])


def worker_exit(server: Any, worker: Any) -> None:
    import tokentrace

    tokentrace.flush()
