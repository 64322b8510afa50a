"""Budget admission latency against the shared ledger: p50 / p99 of one block-budget admission.

SQLite: 4 processes admit at once on one file while their ledger writers land rows and settle reservations.
PostgreSQL: the same with a throw-away local server (Debian's binaries, as in the tests), or ``--pg URL``.

    python benchmarks/admission.py [--calls 2000] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _worker(location: str, calls: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from tests.ledger_helpers import record

    from tokentrace import Budget
    from tokentrace._budget_store import SharedBudgets
    from tokentrace._ledger_db import row_of
    from tokentrace._ledger_store import open_db

    budget = Budget("bench", limit_usd=1e9, action="block")
    store = SharedBudgets(location, [budget], refresh_s=3600)
    writer = open_db(location, create=True)
    timings: list[float] = []
    pending: list[int] = []
    rows = []
    for i in range(calls):
        started = time.perf_counter()
        ids = store.admit([budget], 0.0002, 100, time.time())
        timings.append(time.perf_counter() - started)
        pending.extend(ids)
        rows.append(row_of(record(time.time(), cost=0.0001)))
        if i % 50 == 49:  # what the ledger writer does every ~200 ms: rows in, their reservations out
            writer.insert(rows, pending)
            rows, pending = [], []
    writer.insert(rows, pending)
    store.close()
    writer.close()
    queue.put(timings)


def measure(location: str, processes: int, calls: int) -> tuple[float, float, int]:
    from tokentrace._ledger_store import open_db

    open_db(location, create=True).close()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(location, calls, queue)) for _ in range(processes)]
    for w in workers:
        w.start()
    timings = [t for _ in workers for t in queue.get(timeout=600)]
    for w in workers:
        w.join()
    timings.sort()
    return statistics.median(timings) * 1e3, timings[int(len(timings) * 0.99)] * 1e3, len(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="admissions per process")
    parser.add_argument("--pg", help="PostgreSQL URL (default: start a local throw-away server)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        p50, p99, n = measure(str(Path(tmp) / "usage.db"), 4, args.calls)
        print(f"SQLite, 4 processes: admission p50 {p50:.3f} ms, p99 {p99:.3f} ms ({n} admissions)")
    if args.pg:
        p50, p99, n = measure(args.pg, 3, args.calls)
    else:
        from tests.postgres_server import postgres_server

        with postgres_server() as server:
            p50, p99, n = measure(server.url, 3, args.calls)
    print(f"PostgreSQL (local), 3 processes: admission p50 {p50:.3f} ms, p99 {p99:.3f} ms ({n} admissions)")


if __name__ == "__main__":
    main()
