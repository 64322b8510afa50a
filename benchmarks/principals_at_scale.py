"""Per-principal budgets at scale: the first admission of a principal on a ledger of many principals.

Builds a SQLite ledger of ``--rows`` calls this month spread over ``--principals`` users (default 1,000,000 and
100,000), then times a block ``per="user_id"`` budget's first read of 1,000 principals it has never seen (what a
process pays the first time a user calls after it starts or forgot the user), and the memory one process keeps.

    python benchmarks/principals_at_scale.py [--rows 1000000] [--principals 100000] [--pg URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(location: str, rows: int, principals: int) -> float:
    from tests.ledger_helpers import record

    from tokentrace._ledger_db import row_of
    from tokentrace._ledger_store import open_db

    db = open_db(location, create=True)
    started = time.perf_counter()
    now = time.time()
    batch = []
    for i in range(rows):
        batch.append(row_of(record(now - (i % 86400), cost=0.0001, user_id=f"user-{i % principals}",
                                   feature="chat")))
        if len(batch) == 10_000:
            db.insert(batch)
            batch = []
    if batch:
        db.insert(batch)
    db.close()
    return time.perf_counter() - started


def first_reads(location: str, principals: int, samples: int) -> tuple[float, float, float]:
    """p50 and p99 of a never-seen principal's first admission, and the KiB one process holds per principal."""
    from tokentrace import Budget
    from tokentrace._budget_store import SharedBudgets

    template = Budget("per-user", limit_usd=1.0, per="user_id", action="block")
    store = SharedBudgets(location, [], refresh_s=3600)
    rng = random.Random(7)
    timings = []
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(samples):
        account = template.account(f"user-{rng.randrange(principals)}")
        started = time.perf_counter()
        admission = store.admit_leased([account], 0.0002, 100, time.time())
        timings.append(time.perf_counter() - started)
        store.settle(admission, 0.0, 0)
    after = tracemalloc.take_snapshot()
    held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    tracemalloc.stop()
    store.close()
    timings.sort()
    return statistics.median(timings) * 1e3, timings[int(len(timings) * 0.99)] * 1e3, held / samples / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--principals", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--pg", help="also on this PostgreSQL URL")
    args = parser.parse_args()
    locations = []
    with tempfile.TemporaryDirectory() as tmp:
        locations.append(("SQLite", str(Path(tmp) / "usage.db")))
        if args.pg:
            locations.append(("PostgreSQL", args.pg))
        print("| ledger | rows | principals | build | first admission p50 | p99 | memory per principal |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, location in locations:
            took = build(location, args.rows, args.principals)
            p50, p99, kib = first_reads(location, args.principals, args.samples)
            print(f"| {name} | {args.rows:,} | {args.principals:,} | {took:.0f} s | {p50:.2f} ms | {p99:.2f} ms | "
                  f"{kib:.1f} KiB |")


if __name__ == "__main__":
    main()
