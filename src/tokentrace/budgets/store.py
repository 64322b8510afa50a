"""Budgets shared by every process that writes one ledger: admission, reservations and fleet-wide spend.

Spend is always derived from ledger rows (``budgets.spend``: the SQL, and each process's running sums). A ``block``
budget admits a call inside one ledger transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a lock per budget,
``Db.admission``; calls of different budgets, each principal's account among them, at once: ``admission_locks``)
when spend + every live reservation + this call's estimate stays within the limit, and then inserts a
reservation. The writer drops the reservation in the transaction that writes the call's row. Reservations
expire ``ttl_s`` after they were made or last renewed; a live process renews its own, so only a dead
process's reservations lapse.

Leased admission (``admit_leased``): far from its limit, a process reserves a *lease* (its size and the in-memory
book of leases are ``budgets.leases``'s) and admits calls from it with no database round trip. The writer takes
each call's charge off the lease in the transaction that writes its row, so rows plus every live reservation
(leases included) never exceed the limit. Near the limit no lease is granted and every call is decided by the exact
per-call transaction. A process gives back what is left of a lease when it needs a new one, when the lease has been
idle ``LEASE_IDLE_S``, and when it closes; a killed process's lease lapses like any reservation.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from .._support import errors as _errors
from ..ledger.store import LEASE_CHARGE, Db, open_db
from . import Budget, BudgetExceeded
from . import principal_spend as _principal_spend
from .admission_locks import ADMISSION_TRIES, Pool, stripes
from .admission_reads import live_statement, reads_ahead
from .leases import LEASE_IDLE_S, Lease, LeaseBook, Settlement, Take, lease_size
from .spend import SpendCounter, calls_since, spent_since

MAX_WATCHED = 1000
"""Principal accounts of warn budgets the background thread reads each cycle (the most recently used)."""
RETRY_AFTER_FAILURE_S = 5.0
"""After the store could not be reached, calls are decided without it (budget_unavailable) for this long."""


SWEEP_EVERY_S = 300.0
SWEEP_AFTER_S = 3600.0
"""Reservations that lapsed this long ago are deleted (every SWEEP_EVERY_S, by any process): nothing reads them."""
BACKFILL_STEPS = 50
"""Per-principal table backfill steps (``budgets.principal_spend.BACKFILL_ROWS`` rows each) per background cycle."""
TOUCH_EVERY_S = 3600.0
"""How often a process tells the ledger it still has its templated budgets (``budgets.principal_spend.touch``)."""
BACKFILL_PAUSE_S = 0.02
"""The least pause between two backfill steps."""


class Admission(NamedTuple):
    """How a call was admitted: per-call reservations (``ids``, of ``budgets``) and calls taken from leases."""

    ids: tuple[int, ...]
    budgets: tuple[Budget, ...]
    takes: tuple[Take, ...]
    """(lease, USD, tokens the call's estimate took from it)."""


LOCK_GRACE_S = 0.5
"""Admission waits for another thread's admission at most the store's timeout plus this."""


class SharedBudgets:
    """Admission against the ledger database, plus a background thread that renews reservations and reads
    fleet-wide spend for the gauges and for warnings (fired once per period for the whole fleet)."""

    def __init__(self, location: Any, budgets: Sequence[Budget], *, ttl_s: float = 60.0, timeout_s: float = 1.0,
                 refresh_s: float = 2.0, on_crossed: Callable[[Budget, float, int], None] | None = None) -> None:
        self.location = location
        self.budgets = tuple(budgets)
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._on_crossed = on_crossed
        self._stripes = stripes(location)
        """Admission locks of this process: a budget's calls are decided one at a time, different budgets' at once
        (one stripe for SQLite, whose single writer decides one at a time anyway)."""
        self._pool = Pool(location, timeout_s)
        self._spend = SpendCounter()
        self._down_until = 0.0
        self._live: set[int] = set()
        self._pending: dict[str, dict[int, tuple[float, int]]] = {b.name: {} for b in self.budgets}
        """Own reservations whose call has ended, by budget: id -> the call's actual (USD, tokens), counted
        instead of the estimate until the writer drops the reservation with the call's row."""
        self._leases = LeaseBook()
        self._watched: OrderedDict[str, Budget] = OrderedDict()
        """Principal accounts of warn budgets (``watch``), read with the budgets so they warn once per period."""
        self._wake = threading.Event()
        self._status: dict[str, tuple[float, int]] = {}
        self._stop = threading.Event()
        self._templated = [b for b in self.budgets if _principal_spend.signature(b) is not None]
        self._unkept = list(self._templated)
        """Templated budgets whose per-principal table is not yet complete in the ledger (``_keep_principals``)."""
        self._thread: threading.Thread | None = None
        self._start_thread()

    # ---- calling thread
    def admit(self, budgets: Iterable[Budget], usd: float, tokens: int, now: float) -> tuple[int, ...]:
        """Reserve ``usd``/``tokens`` in each budget by one transaction (never from a lease), or raise
        BudgetExceeded; other exceptions: store down. The ids of the reservations."""
        return self._admit_exactly(tuple(budgets), usd, tokens, now, lease=False).ids

    def admit_leased(self, budgets: Sequence[Budget], usd: float, tokens: int, now: float) -> Admission:
        """Admit a call from this process's leases when each budget's lease has room (no round trip); else one
        transaction decides it exactly (BudgetExceeded) and grants a fresh lease where the budget has room for one,
        a per-call reservation where it has not. Other exceptions: the store is down."""
        takes = self._leases.take(budgets, usd, tokens)
        return Admission((), (), takes) if takes is not None else self._admit_exactly(tuple(budgets), usd, tokens,
                                                                                       now)

    def _admit_exactly(self, budgets: tuple[Budget, ...], usd: float, tokens: int, now: float, *,
                       lease: bool = True) -> Admission:
        stripes = sorted({self._stripe(b.name) for b in budgets})
        deadline = time.monotonic() + self.timeout_s + LOCK_GRACE_S
        held: list[threading.Lock] = []
        try:
            for index in stripes:  # in index order: two threads never wait for each other's
                lock = self._stripes[index]
                if not lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
                    raise ConnectionError("the budget store did not answer another call in time")
                held.append(lock)
            taken = self._leases.take(budgets, usd, tokens) if lease else None
            if taken is not None:  # another thread has just leased anew
                return Admission((), (), taken)
            if time.monotonic() < self._down_until:
                raise ConnectionError("the budget store was unreachable moments ago")
            for attempt in range(ADMISSION_TRIES):
                db: Db | None = None
                try:
                    db = self._pool.take()  # may open a connection: a store that cannot be reached fails here too
                    admission = self._decide(db, budgets, usd, tokens, now, lease)
                except BudgetExceeded:
                    if db is not None:  # decided: the connection is sound
                        self._pool.give(db)
                    raise
                except BaseException as exc:
                    if db is not None and db.retryable(exc) and attempt + 1 < ADMISSION_TRIES:
                        self._pool.give(db)  # a deadlock the server broke: decide again
                        continue
                    self._down_until = time.monotonic() + RETRY_AFTER_FAILURE_S
                    self._pool.discard(db)
                    self._spend.reset()
                    raise
                self._pool.give(db)
                return admission
            raise AssertionError("unreachable")
        finally:
            for lock in reversed(held):
                lock.release()

    def _stripe(self, name: str) -> int:
        return zlib.crc32(name.encode("utf-8", "surrogatepass")) % len(self._stripes)

    def _decide(self, db: Db, budgets: tuple[Budget, ...], usd: float, tokens: int, now: float,
                lease: bool) -> Admission:
        """One admission transaction: each budget's spend, reservations and this call's estimate against its limit
        (BudgetExceeded), then a lease or a per-call reservation in each."""
        names = [b.name for b in budgets]
        retiring = self._leases.holds(names)  # leftovers go back first: then the reads must follow them
        with db.admission(names, () if retiring else reads_ahead(db, budgets, now)):
            if retiring:
                self._give_back(db, names)  # our own leftovers must not refuse this call
            used = []
            for budget in budgets:  # reservations before spend: a row landing in between counts twice, never 0x
                held_usd, held_tokens = self._held(db, budget, now)
                spent_usd, spent_tokens = self._spend.spent(db, budget, now)
                beyond_usd, beyond_tokens = self._leases.unwritten(budget.name)
                used_usd = spent_usd + held_usd + beyond_usd
                used_tokens = spent_tokens + held_tokens + int(beyond_tokens)
                calls = self._calls(db, budget, now) if budget.limit_requests is not None else None
                if (budget.limit_usd is not None and used_usd + usd > budget.limit_usd) or (
                        budget.limit_tokens is not None and used_tokens + tokens > budget.limit_tokens) or (
                        calls is not None and budget.limit_requests is not None
                        and calls + 1 > budget.limit_requests):
                    raise BudgetExceeded(budget, used_usd, used_tokens, usd, tokens, calls)
                used.append((used_usd, used_tokens))
            sizes = [lease_size(budget, used_usd, used_tokens, usd, tokens) if lease else None
                     for budget, (used_usd, used_tokens) in zip(budgets, used, strict=True)]
            reserved = db.reserve([self._reservation(db, budget, usd + (size[0] if size else 0.0),
                                                     tokens + (size[1] if size else 0))
                                   for budget, size in zip(budgets, sizes, strict=True)])
        ids: list[int] = []
        id_budgets: list[Budget] = []
        takes: list[Take] = []
        for budget, size, rid in zip(budgets, sizes, reserved, strict=True):
            if size is not None:
                takes.append((Lease(rid, budget.name, size[0], size[1], 1, time.monotonic()), usd, tokens))
            else:
                ids.append(rid)
                id_budgets.append(budget)
        self._leases.add(granted for granted, _, _ in takes)
        self._live.update(ids)
        self._live.update(granted.id for granted, _, _ in takes)
        return Admission(tuple(ids), tuple(id_budgets), tuple(takes))

    def _calls(self, db: Db, budget: Budget, now: float) -> int:
        """Calls counted against a request limit: the ledger's rows in the period or window, plus every live
        per-call reservation (a call in flight, or ended and not yet written)."""
        begin = budget.period_bounds(datetime.fromtimestamp(now, tz=UTC))[0]
        live = db.execute("SELECT COUNT(*) FROM llm_budget_reservations WHERE budget = ? AND expires_at > "
                          f"{db.clock_sql}", (budget.name,)).fetchone()
        return calls_since(db, budget, begin) + int(live[0])

    def _reservation(self, db: Db, budget: Budget, usd: float, tokens: int) -> tuple[str, tuple[Any, ...]]:
        return ("INSERT INTO llm_budget_reservations (budget, usd, tokens, expires_at, owner) VALUES "  # the store's
                f"(?, ?, ?, {db.clock_sql} + ?, ?)", (budget.name, usd, tokens, self.ttl_s, self.owner))  # clock

    def _give_back(self, db: Db, names: Iterable[str] | None = None, idle_before: float | None = None) -> None:
        """Retire this process's leases (of ``names``, or those idle since ``idle_before``, or all) and take what
        is left of them off their reservations, inside the caller's transaction."""
        for lease in self._leases.retire(names, idle_before):  # a retired lease's leftovers no longer change
            usd, tokens = max(lease.usd_left, 0.0), max(lease.tokens_left, 0)
            db.execute(LEASE_CHARGE, (usd, usd, tokens, tokens, lease.id))
            if not lease.in_flight:  # nothing left to settle against it: let it lapse
                self._live.discard(lease.id)

    def settle(self, admission: Admission, usd: float, tokens: int) -> tuple[Settlement, ...]:
        """The call ended costing ``usd``/``tokens``: what the writer must do with its row (drop its reservations,
        take its cost off the leases it came from); unused estimate goes back to the lease. What a call from a lease
        cost beyond its estimate is counted by admission until ``written`` says its row is in the ledger."""
        if admission.ids:
            self.settled(admission.ids, admission.budgets, usd, tokens)
        settlements: list[Settlement] = list(admission.ids)
        if admission.takes:
            from_leases, done = self._leases.settle(admission.takes, usd, tokens)
            settlements += from_leases
            self._live.difference_update(done)
            beyond = self._leases.beyond(admission.takes, usd, tokens)
            if beyond is not None:
                settlements.append(beyond)
        if not self._wake.is_set():  # read the new spend soon (a set Event needs no second set)
            self._wake.set()
        return tuple(settlements)

    def _reservations(self, db: Db, budget: Budget, now: float) -> list[tuple[int, float, int, bool]]:
        """Live reservations of ``budget``: (id, USD, tokens, own ended call), with the actual cost of this process's
        ended calls in place of their estimate. Own ended calls no longer live have their rows written: forgotten."""
        pending = self._pending.setdefault(budget.name, {})
        live = []
        for rid, usd, tokens in db.execute(*live_statement(db, budget)).fetchall():
            actual = pending.get(rid)
            live.append((rid, *actual, True) if actual is not None else (rid, float(usd), int(tokens), False))
        if pending:
            for rid in pending.keys() - {row[0] for row in live}:
                del pending[rid]
        if not pending and budget.principal is not None:  # principals come and go: keep no empty entry
            self._pending.pop(budget.name, None)
        return live

    def _held(self, db: Db, budget: Budget, now: float) -> tuple[float, int]:
        """What live reservations hold: estimates, or the actual cost of this process's calls that have ended."""
        live = self._reservations(db, budget, now)
        return sum(r[1] for r in live), sum(r[2] for r in live)

    def settled(self, ids: Sequence[int], budgets: Sequence[Budget], usd: float, tokens: int) -> None:
        """The call ended costing ``usd``/``tokens``: count that instead of its estimate, stop renewing."""
        self._live.difference_update(ids)
        for rid, budget in zip(ids, budgets, strict=True):
            self._pending.setdefault(budget.name, {})[rid] = (usd, tokens)
        self._wake.set()  # warn budgets: read the new spend soon

    def watch(self, budget: Budget) -> None:
        """Read this principal account of a warn budget in the background too (it warns when crossed)."""
        watched = self._watched
        watched[budget.name] = budget
        watched.move_to_end(budget.name)
        if len(watched) > MAX_WATCHED:
            watched.popitem(last=False)

    def spent_now(self, budget: Budget) -> tuple[float, int]:
        """(USD, tokens) ``budget`` has spent this period, read now on the calling thread: the ledger's rows plus
        this process's ended calls whose rows are still queued."""
        db = open_db(self.location, create=True, timeout=max(self.timeout_s, 2.0))
        try:
            usd, tokens = spent_since(db, budget, budget.period_bounds()[0])
            extra_usd, extra_tokens = self._ended_not_written(db, budget, time.time())
            return usd + extra_usd, tokens + extra_tokens
        finally:
            db.close()

    def status(self) -> dict[str, tuple[float, int]]:
        """Fleet-wide (USD, tokens) spent per budget: ledger rows plus this process's ended calls not yet written.

        The background thread's last reading (every ``refresh_s``, and soon after a call ends): a scrape never
        queries the database, so a slow or frozen server cannot hold it up.
        """
        return dict(self._status)

    # ---- background thread
    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tokentrace-budgets", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db: Db | None = None
        spend = SpendCounter()
        last_renew = 0.0
        last_sweep = 0.0
        last_touch = 0.0
        while not self._stop.is_set():
            try:
                if db is None:
                    db = open_db(self.location, create=True, timeout=max(self.timeout_s, 2.0))
                now = time.time()
                idle_before = time.monotonic() - LEASE_IDLE_S
                if self._leases.has_idle(idle_before):  # no write transaction when no lease is idle
                    with db.transaction():
                        self._give_back(db, idle_before=idle_before)
                if self._live and time.monotonic() - last_renew >= self.ttl_s / 3:
                    self._renew(db, now)
                    last_renew = time.monotonic()
                if time.monotonic() - last_sweep >= SWEEP_EVERY_S:  # lapsed reservations and spent leases
                    with db.transaction():
                        db.execute(f"DELETE FROM llm_budget_reservations WHERE expires_at < {db.clock_sql} - ?",
                                   (SWEEP_AFTER_S,))
                    _principal_spend.retire_idle(db, now)  # per-principal tables no process has used for a week
                    last_sweep = time.monotonic()
                if self._templated and time.monotonic() - last_touch >= TOUCH_EVERY_S:
                    self._unkept += [b for b in _principal_spend.touch(db, self._templated, now)
                                     if b not in self._unkept]  # retired while no process had it: register again
                    last_touch = time.monotonic()
                self._refresh(db, spend, now)
                if self._unkept:
                    self._keep_principals(db, now)
            except Exception as exc:
                _errors.report("budget.refresh", exc, "cannot read fleet-wide budget spend; retrying")
                if db is not None:
                    db.close()
                db, spend = None, SpendCounter()
            self._wake.wait(self.refresh_s)
            self._wake.clear()
            self._stop.wait(0.25)  # let the ledger writer land the rows that woke us
        if db is not None:
            db.close()

    def _keep_principals(self, db: Db, now: float) -> None:
        """Register this process's templated budgets in the ledger's per-principal table and backfill it a few
        steps; until one is complete, its principals' spend is read from the rows. After each step the thread
        pauses as long as the step held the write lock, so the ledger's writers and exact admissions (SQLite's
        busy handler sleeps between its tries) get the lock between steps."""
        kept = []
        for template in self._unkept:
            for _ in range(BACKFILL_STEPS):
                started = time.monotonic()
                if _principal_spend.prepare(db, template, now, steps=1):
                    kept.append(template)
                    break
                if self._stop.wait(max(time.monotonic() - started, BACKFILL_PAUSE_S)):
                    return
        self._unkept = [b for b in self._unkept if b not in kept]

    def _renew(self, db: Db, now: float) -> None:
        live = list(self._live)
        for start in range(0, len(live), 500):
            chunk = live[start:start + 500]
            with db.transaction():
                db.execute(f"UPDATE llm_budget_reservations SET expires_at = {db.clock_sql} + ? WHERE id IN "
                           f"({', '.join('?' * len(chunk))})", [self.ttl_s, *chunk])

    def _ended_not_written(self, db: Db, budget: Budget, now: float) -> tuple[float, int]:
        """What this process's ended calls cost while their rows are still queued (their reservations live)."""
        pending = dict(self._pending.get(budget.name) or {})  # a copy: admission may change it meanwhile
        if not pending:
            return 0.0, 0
        live = {row[0] for row in db.execute(*live_statement(db, budget)).fetchall()}
        ended = [cost for rid, cost in pending.items() if rid in live]
        return sum(c[0] for c in ended), sum(c[1] for c in ended)

    def _refresh(self, db: Db, spend: SpendCounter, now: float) -> None:
        for budget in (*self.budgets, *list(self._watched.values())):
            usd, tokens = spend.spent(db, budget, now)
            extra_usd, extra_tokens = self._ended_not_written(db, budget, now)
            if budget.principal is None:  # the gauges are per budget: no series per principal
                self._status[budget.name] = (usd + extra_usd, tokens + extra_tokens)
            over = (budget.limit_usd is not None and usd >= budget.limit_usd) or (
                budget.limit_tokens is not None and tokens >= budget.limit_tokens) or (
                budget.limit_requests is not None and budget.action == "warn"
                and self._calls(db, budget, now) >= budget.limit_requests)
            if over and self._on_crossed is not None and budget.action == "warn":
                window = budget.window_s
                start = budget.period_bounds(datetime.fromtimestamp(now, tz=UTC))[0].isoformat() if window is None \
                    else f"slot {int(now // window)}"  # a rolling budget warns once per window-long slot
                with db.transaction():
                    first = db.execute("INSERT INTO llm_budget_events (budget, period_start, kind) VALUES (?, ?, ?) "
                                       "ON CONFLICT DO NOTHING", (budget.name, start, "warned")).rowcount == 1
                if first:  # this process is the fleet's one to warn this period
                    self._on_crossed(budget, usd, tokens)

    def refresh_now(self, timeout: float | None = None) -> None:
        """Read fleet-wide spend now, on the calling thread (flush(), close()), within about ``timeout`` seconds."""
        wait = max(self.timeout_s, 2.0) if timeout is None else min(max(self.timeout_s, 2.0), timeout)
        db = open_db(self.location, create=True, timeout=wait)
        try:
            self._refresh(db, SpendCounter(), time.time())
        finally:
            db.close()

    # ---- lifecycle
    def after_fork_in_child(self) -> None:
        self._stripes = stripes(self.location)
        self._pool.abandon()  # the parent's connections stay the parent's
        self._pool = Pool(self.location, self.timeout_s)
        self._spend = SpendCounter()
        self._live = set()
        self._leases = LeaseBook()  # the parent's: never admitted from here
        self._pending = {b.name: {} for b in self.budgets}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._start_thread()

    def close(self) -> None:
        """Stop; a last read of fleet-wide spend fires any warning this process's calls have earned."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        try:
            self.refresh_now()
        except Exception as exc:
            _errors.report("budget.refresh", exc, "cannot read fleet-wide budget spend")
        held = [lock for lock in self._stripes if lock.acquire(timeout=self.timeout_s + LOCK_GRACE_S)]
        try:
            if self._leases and len(held) == len(self._stripes):  # what is left of the leases goes back to the fleet
                try:
                    db = self._pool.take()
                    try:
                        with db.transaction():
                            self._give_back(db)
                    finally:
                        self._pool.give(db)
                except Exception as exc:
                    _errors.report("budget.lease", exc, "could not give back a budget lease; it lapses")
            self._pool.close()
            self._spend.reset()
        finally:
            for lock in held:
                lock.release()
