"""Per-principal budgets at scale: a ledger of many principals this month, on SQLite and PostgreSQL.

Registers a monthly block budget ``per=KEY`` (``user_id``, a column, or ``tenant``, an attribution key kept in the
row's JSON) on a fresh ledger, then writes ``--rows`` calls this month spread over ``--principals`` principals
through the ledger writer's own ``Db.insert`` (so the per-principal table is kept as in production), and measures:

- the build: rows per second with the table kept;
- a never-seen principal's first admission (``admit_leased`` of a fresh process, the per-principal table path),
  p50 and p99 over ``--samples`` principals, and the same with the table not registered (the rows path);
- the memory one process holds per principal it has admitted;
- a second template registered afterwards: its backfill over every row of the month, and its longest step (what the
  ledger's writers wait for at most).

    python benchmarks/principals_at_scale.py [--rows 2000000] [--principals 1000000] [--per tenant] [--pg URL]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))


def _template(per: str, timezone: str = "UTC") -> Any:
    from tokentrace import Budget

    return Budget("per-principal", period="month", limit_usd=1.0, per=per, action="block", timezone=timezone)


def build(location: str, rows: int, principals: int, per: str) -> float:
    from tests.ledger_helpers import record

    from tokentrace.budgets.principal_spend import prepare
    from tokentrace.ledger.db import row_of
    from tokentrace.ledger.store import open_db

    db = open_db(location, create=True)
    now = time.time()
    prepare(db, _template(per), now)  # registered on the empty ledger: the writers keep the table from row one
    month_start = _template(per).period_bounds(datetime.fromtimestamp(now, tz=UTC))[0].timestamp()
    spread = max(now - month_start - 1, 1.0)
    rng = random.Random(3)
    started = time.perf_counter()
    batch = []
    for i in range(rows):
        who = f"p-{i % principals}" if i < principals else f"p-{rng.randrange(principals)}"
        batch.append(row_of(record(now - spread * (rows - i) / rows, cost=0.0001, feature="chat", **{per: who})))
        if len(batch) == 5_000:
            db.insert(batch)
            batch = []
    if batch:
        db.insert(batch)
    db.close()
    return time.perf_counter() - started


def first_admissions(location: str, principals: int, samples: int, per: str, timezone: str = "UTC"
                     ) -> tuple[float, float, float, int]:
    """p50 and p99 (ms) of a never-seen principal's first admission, the KiB one process holds per principal, and
    how many admissions failed (the store's 1 s timeout: in an application, ``budget_unavailable`` decides them)."""
    from tokentrace.budgets.store import SharedBudgets

    template = _template(per, timezone)
    store = SharedBudgets(location, [], refresh_s=3600)
    rng = random.Random(7)
    timings = []
    failed = 0
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(samples):
        account = template.account(f"p-{rng.randrange(principals)}")
        started = time.perf_counter()
        try:
            admission = store.admit_leased([account], 0.0002, 100, time.time())
        except Exception:  # timed out: the store refuses to decide for RETRY_AFTER_FAILURE_S
            failed += 1
            time.sleep(5.1)
            continue
        timings.append(time.perf_counter() - started)
        store.settle(admission, 0.0, 0)
    after = tracemalloc.take_snapshot()
    held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    tracemalloc.stop()
    store.close()
    timings.sort() if timings else timings.append(float("nan"))
    return (statistics.median(timings) * 1e3, timings[int(len(timings) * 0.99)] * 1e3, held / samples / 1024,
            failed)


def backfill(location: str, per: str) -> tuple[float, float]:
    """Seconds to backfill a template registered after the rows (another zone: another signature), and the
    longest step's."""
    from tokentrace.budgets.principal_spend import prepare
    from tokentrace.ledger.store import open_db

    db = open_db(location, create=True)
    template = _template(per, "Europe/Paris")
    started = time.perf_counter()
    longest = 0.0
    done = False
    while not done:
        step = time.perf_counter()
        done = prepare(db, template, time.time(), steps=1)
        longest = max(longest, time.perf_counter() - step)
    db.close()
    return time.perf_counter() - started, longest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--principals", type=int, default=1_000_000)
    parser.add_argument("--per", default="tenant", help="user_id (a column) or tenant (in the row's JSON)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--row-samples", type=int, default=20, help="first admissions read from the rows")
    parser.add_argument("--pg", help="PostgreSQL URL of an empty database (default: start a local throw-away server)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    print(f"per={args.per}, {args.rows:,} rows this month over {args.principals:,} principals\n")
    print("| ledger | build (table kept) | first admission p50 / p99: table | rows (not registered) | "
          "memory per principal | backfill of the month | longest step |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        locations = []
        if args.only != "postgresql":
            locations.append(("SQLite", str(Path(tmp) / "usage.db")))
        if args.only != "sqlite":
            if not args.pg:
                from tests.postgres_server import postgres_server

                args.pg = stack.enter_context(postgres_server()).url
            locations.append(("PostgreSQL", args.pg))
        for name, location in locations:
            took = build(location, args.rows, args.principals, args.per)
            print(f"{name}: built in {took:.0f} s", flush=True)
            p50, p99, kib, _ = first_admissions(location, args.principals, args.samples, args.per)
            print(f"{name}: table path {p50:.2f} / {p99:.2f} ms", flush=True)
            r50, r99, _, failed = first_admissions(location, args.principals, args.row_samples, args.per, "Asia/Tokyo")
            rows_path = f"{r50:.0f} / {r99:.0f} ms" + (f" ({failed} of {args.row_samples} over the 1 s timeout)"
                                                      if failed else "")
            print(f"{name}: rows path {rows_path}", flush=True)
            filled, longest = backfill(location, args.per)
            print(f"| {name} | {took:.0f} s ({args.rows / took:,.0f} rows/s) | {p50:.2f} / {p99:.2f} ms | "
                  f"{rows_path} | {kib:.1f} KiB | {filled:.1f} s | {longest * 1e3:.0f} ms |", flush=True)


if __name__ == "__main__":
    main()
