"""Budget admission latency against the shared ledger: p50 / p99 of one block-budget admission.

Each process runs 4 threads admitting at once while its ledger writer lands rows and settles them (reservations
dropped, lease charges taken off). Two paths:

- exact: ``SharedBudgets.admit``, one transaction per call (what every call paid before leases, and what a call
  near its limit pays now);
- leased: ``SharedBudgets.admit_leased`` far from the limit: calls come out of a lease, a transaction only when a
  lease runs out.

SQLite: 4 processes on one file. PostgreSQL: 3 processes on a throw-away local server (Debian's binaries, as in the
tests), or ``--pg URL``.

    python benchmarks/admission.py [--calls 2000] [--pg postgresql://...] [--floor]

``--principals 100000 --hot 16`` makes it a per-principal budget (``per="tenant"``, $1 each) on a ledger whose
per-principal table already holds 100,000 principals this month, the calls going to 16 of them at random (a
principal's first call in a process takes the exact path: it reserves the principal's lease).

``--floor`` measures the leased path alone with fewer threads and processes (1 x 1, 1 x 4, then the fleet), to show
where its tail comes from: the admission is a lock and a subtraction; its p99 is the wait for the CPU and the GIL
among the machine's threads.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _worker(location: str, calls: int, leased: bool, queue: multiprocessing.Queue,  # type: ignore[type-arg]
            threads_per_process: int = 4, hot: int = 0, own: int = -1) -> None:
    """``own`` >= 0: each thread admits to a principal of its own (``p-{own + thread}``), not to random hot ones."""
    import random
    import threading

    from tests.ledger_helpers import record

    from tokentrace import Budget
    from tokentrace.budgets.store import SharedBudgets
    from tokentrace.ledger.db import row_of
    from tokentrace.ledger.store import open_db

    class CountingStore(SharedBudgets):
        exact = 0

        def _admit_exactly(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            CountingStore.exact += 1
            return super()._admit_exactly(*args, **kwargs)  # type: ignore[arg-type]

    template = _template() if hot else Budget("bench", limit_usd=1e9, action="block")
    accounts = [template.account(f"p-{i}") for i in range(hot)] if hot else [template]
    store = CountingStore(location, [template], refresh_s=3600)
    writer = open_db(location, create=True)
    timings: list[float] = []
    ended: list[tuple[list[object], object]] = []  # (row, settlements) of calls that ended
    lock = threading.Lock()

    def admit_calls(index: int) -> None:
        rng = random.Random()
        for _ in range(calls // threads_per_process):
            budget = template.account(f"p-{own + index}") if own >= 0 else accounts[rng.randrange(len(accounts))]
            started = time.perf_counter()
            try:
                if leased:
                    admission = store.admit_leased([budget], 0.0002, 100, time.time())
                else:
                    ids = store.admit([budget], 0.0002, 100, time.time())
            except ConnectionError:  # the store kept this thread waiting past its timeout: budget_unavailable
                with lock:
                    timings.append(float("inf"))
                continue
            took = time.perf_counter() - started
            settled = store.settle(admission, 0.0001, 50) if leased else ids
            with lock:
                timings.append(took)
                ended.append((row_of(record(time.time(), cost=0.0001, **({"tenant": budget.principal}
                                                                       if hot else {}))), settled))

    def write() -> None:  # the ledger writer: every ~20 ms, rows in and their settlements made
        while not done.is_set() or ended:
            time.sleep(0.02)
            with lock:
                batch = list(ended)
                ended.clear()
            if batch:
                writer.insert([row for row, _ in batch], [s for _, settled in batch for s in settled])

    done = threading.Event()
    writing = threading.Thread(target=write)
    writing.start()
    threads = [threading.Thread(target=admit_calls, args=(i,)) for i in range(threads_per_process)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    done.set()
    writing.join()
    store.close()
    writer.close()
    queue.put((timings, CountingStore.exact, wall))


def _template() -> object:
    from tokentrace import Budget

    return Budget("per-tenant", period="month", limit_usd=1.0, per="tenant", action="block")


def _populate(location: str, principals: int) -> None:
    """A ledger whose per-principal table holds ``principals`` tenants this month (one call each)."""
    from tests.ledger_helpers import record

    from tokentrace.budgets.principal_spend import prepare
    from tokentrace.ledger.db import row_of
    from tokentrace.ledger.store import open_db

    db = open_db(location, create=True)
    prepare(db, _template(), time.time())  # type: ignore[arg-type]
    now = time.time()
    for start in range(0, principals, 5000):
        db.insert([row_of(record(now - 1, cost=0.0001, tenant=f"p-{i}"))
                   for i in range(start, min(start + 5000, principals))])
    db.close()


def measure(location: str, processes: int, calls: int, leased: bool, threads: int = 4, hot: int = 0,
            own: bool = False) -> tuple[float, float, int, int, float]:
    """p50 and p99 (us) of the admissions, how many, how many of them went through a transaction, and admissions
    per second (all of them over the slowest process's time). ``own``: a principal per thread."""
    from tokentrace.ledger.store import open_db

    open_db(location, create=True).close()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(location, calls, leased, queue, threads, hot,
                                                 i * threads if own else -1))
               for i in range(processes)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=900) for _ in workers]
    for w in workers:
        w.join()
    timings = sorted(t for got, _, _ in results for t in got)  # a timed-out admission sorts last, as the slowest
    exact = sum(count for _, count, _ in results)
    rate = len(timings) / max(wall for _, _, wall in results)
    return statistics.median(timings) * 1e6, timings[int(len(timings) * 0.99)] * 1e6, len(timings), exact, rate


def _us(value: float) -> str:
    return "timed out" if value == float("inf") else f"{value:,.0f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="admissions per process (4 threads share them)")
    parser.add_argument("--pg", help="PostgreSQL URL (default: start a local throw-away server)")
    parser.add_argument("--floor", action="store_true", help="the leased path with 1 x 1, 1 x 4 and the fleet")
    parser.add_argument("--principals", type=int, default=0, help="a per-principal budget, this many in the ledger")
    parser.add_argument("--hot", type=int, default=16, help="with --principals: the calls go to this many")
    args = parser.parse_args()
    if args.floor:
        floor(args.calls, args.pg)
        return
    if args.principals:
        principals(args.calls, args.pg, args.principals, args.hot)
        return
    print("| ledger | path | p50 | p99 | admissions |\n|---|---|---:|---:|---:|")
    for leased in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            p50, p99, n, _, _ = measure(str(Path(tmp) / "usage.db"), 4, args.calls, leased)
        print(f"| SQLite, 4 processes x 4 threads | {'leased' if leased else 'exact'} | {_us(p50)} | {_us(p99)} | "
              f"{n:,} |")
    for leased in (False, True):
        if args.pg:
            p50, p99, n, _, _ = measure(args.pg, 3, args.calls, leased)
        else:
            from tests.postgres_server import postgres_server

            with postgres_server() as server:
                p50, p99, n, _, _ = measure(server.url, 3, args.calls, leased)
        print(f"| PostgreSQL (local), 3 processes x 4 threads | {'leased' if leased else 'exact'} | {_us(p50)} | "
              f"{_us(p99)} | {n:,} |")


def floor(calls: int, pg: str | None) -> None:
    """The leased path as the machine gets busier: one thread alone, four in one process, then the fleet."""
    print("| ledger | processes x threads | leased p50 | p99 |\n|---|---|---:|---:|")
    shapes = ((1, 1), (1, 4))
    with tempfile.TemporaryDirectory() as tmp:
        for processes, threads in (*shapes, (4, 4)):
            location = str(Path(tmp) / f"usage-{processes}-{threads}.db")
            p50, p99, _, _, _ = measure(location, processes, calls, True, threads)
            print(f"| SQLite | {processes} x {threads} | {_us(p50)} | {_us(p99)} |", flush=True)
    with contextlib.ExitStack() as stack:
        if pg is None:
            from tests.postgres_server import postgres_server

            pg = stack.enter_context(postgres_server()).url
        for processes, threads in (*shapes, (3, 4)):
            p50, p99, _, _, _ = measure(pg, processes, calls, True, threads)
            print(f"| PostgreSQL | {processes} x {threads} | {_us(p50)} | {_us(p99)} |", flush=True)


def principals(calls: int, pg: str | None, count: int, hot: int) -> None:
    """A per-principal budget with ``count`` principals in the ledger, calls to ``hot`` of them: both paths."""
    print("| ledger | path | p50 | p99 | admissions | of them by a transaction |\n|---|---|---:|---:|---:|---:|")
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        if pg is None:
            from tests.postgres_server import postgres_server

            pg = stack.enter_context(postgres_server()).url
        for name, location, processes in (("SQLite, 4 x 4", str(Path(tmp) / "usage.db"), 4),
                                          ("PostgreSQL, 3 x 4", pg, 3)):
            _populate(location, count)
            for leased in (True, False):
                p50, p99, n, exact, _ = measure(location, processes, calls, leased, 4, hot)
                print(f"| {name}, {count:,} principals, calls to {hot} | {'leased' if leased else 'exact'} | "
                      f"{_us(p50)} | {_us(p99)} | {n:,} | {exact:,} |", flush=True)
        print("\n| ledger | exact admissions | per second | p50 | p99 |\n|---|---|---:|---:|---:|")
        for name, location, shapes in (("SQLite", str(Path(tmp) / "usage.db"), ((1, 1), (4, 4))),
                                       ("PostgreSQL", pg, ((1, 1), (3, 4)))):
            rates = []
            for processes, threads in shapes:
                p50, p99, n, _, rate = measure(location, processes, calls if processes > 1 else calls // 4,
                                               False, threads, 1, own=True)
                rates.append(rate)
                print(f"| {name} | {processes} x {threads} threads, a principal each | {rate:,.0f} | {_us(p50)} | "
                      f"{_us(p99)} |", flush=True)
            print(f"| {name} | parallel / one | {rates[1] / rates[0]:.1f}x | | |", flush=True)


if __name__ == "__main__":
    main()
