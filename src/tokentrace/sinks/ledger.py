"""Ledger sink: hands each record to a background writer thread that appends rows in batches (SQLite or PostgreSQL).

The calling thread only appends the record to a bounded deque: no serialization, no lock, no disk (while the
writer is starved of the GIL it also waits, at most 2 ms per 64 rows, for the writer's drain). When the
deque is full the record is dropped and counted (``tokentrace_internal_errors_total{stage="ledger.dropped"}``).
A failing disk, a locked database or a database server that is down is logged once and counted; the
application never notices. Budget reservations settled by a call are queued behind its record (``release``)
and dropped in the same transaction that writes the row, so shared spend never counts a call twice or not at all.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import deque
from typing import Any

from .._support import errors as _errors
from .._support import forksafe as _forksafe
from .._usage import UsageRecord
from ..ledger.db import LedgerError, NewerSchemaError, row_of
from ..ledger.location import describe, is_url
from ..ledger.store import Db, abandon, open_db
from . import Sink

DEFAULT_QUEUE_SIZE = 100_000
DEFAULT_BATCH = 10_000
DEFAULT_INTERVAL_S = 0.2

NUDGE_EVERY = 63
"""A mask: the calling thread checks whether the writer is late when the queue's length is a multiple of 64."""
LATE_AFTER_INTERVALS = 2
NUDGE_WAIT_S = 0.002
"""At most this long the calling thread waits for a late writer's drain (it returns as soon as the drain ends)."""

MAX_BACKOFF_S = 30.0
TRANSIENT_SQLSTATES = ("08", "53", "57", "40", "55P03", "58")
"""PostgreSQL errors worth retrying the batch for: a connection lost (08), resources short (53), the server
shutting down (57), a serialization failure or deadlock (40), a lock not available (55P03), a system error (58).
Anything else (a value the database refuses, ``program_limit_exceeded`` 54000: an index entry over 8,191 bytes) is
that row's problem: the batch is written row by row and only the refused row is dropped (counted)."""
LATE_WRITER_PATIENCE_S = 60.0
CLOSE_WAIT_S = 5.0
"""close() waits at most this for the writer thread, and as long again for a write in progress."""

class _Release:
    """Budget settlements to make when the rows queued before this marker are written: reservation ids to drop,
    (lease id, USD, tokens) charges to take off leases."""

    __slots__ = ("ids",)

    def __init__(self, ids: tuple[Any, ...]) -> None:
        self.ids = ids


def _handed_back(released: list[Any]) -> None:
    """Settlements that wait for their rows to be written (``Beyond``: what leased calls cost past their
    estimate) are told the rows are in the ledger, or will never be."""
    for item in released:
        if not isinstance(item, (int, tuple)):
            try:
                item.written()
            except Exception as exc:
                _errors.report("ledger.settle", exc, "a written row's budget bookkeeping failed")


def _file_identity(path: Any) -> tuple[int, int] | None:
    """(device, inode) of a SQLite ledger file, None when it is gone."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class LedgerSink(Sink):
    name = "ledger"

    def __init__(self, location: Any, *, queue_size: int = DEFAULT_QUEUE_SIZE, batch_size: int = DEFAULT_BATCH,
                 interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.path = location
        """The SQLite file (a Path) or the ``postgresql://`` URL."""
        self.remote = is_url(location)
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._queue: deque[UsageRecord | _Release] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()  # serializes writing batches (writer thread vs flush from another thread)
        self._conn: Db | None = None
        self._identity: tuple[int, int] | None = None
        self._retry_at = 0.0
        self._cannot_heal: LedgerError | None = None
        """Why the ledger can never be opened by this process (say it once, stop connecting)."""
        self._backoff = 0.0
        self._drained_at = time.monotonic()
        self._drained = threading.Event()
        self._thread: threading.Thread | None = None
        self._late_lock = threading.Lock()
        self._late_thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self._dropped_reported = 0
        """``dropped`` when flush() last looked: a flush returns False when rows were dropped since (by any thread)."""
        self._start_thread()
        atexit.register(self._at_exit)
        _forksafe.register(self)

    # ---- calling thread
    def end(self, record: UsageRecord, state: Any) -> None:
        queue = self._queue
        if self._stopping:  # a call that was in flight when tokentrace was uninstrumented
            queue.append(record)
            self._write_late()
            return
        queued = len(queue)
        if queued >= self.queue_size:
            self.dropped += 1
            _errors.report("ledger.dropped", None, "ledger queue full: a usage row was dropped")
            return
        queue.append(record)
        if queued & NUDGE_EVERY == NUDGE_EVERY:
            self._nudge()

    def _nudge(self) -> None:
        """Rows keep coming and the writer has not drained for a while: give it the GIL for a moment.

        A thread that runs Python without ever blocking for long, but drops the GIL for many short system calls
        (the SDKs' per-request ``getrandom``, a busy event loop's ``select``), keeps the writer from ever getting the
        GIL back: each short release wakes it too late to take the GIL, and CPython only forces a switch for a
        waiter that saw no switch for 5 ms. The writer then falls behind for as long as the app stays busy and the
        queue fills up. Waiting here (GIL released) lets it drain; the wait ends when the drain does, or after
        NUDGE_WAIT_S. Checked once per NUDGE_EVERY + 1 rows and only while the writer is late, so a writer that
        keeps up costs nothing."""
        now = time.monotonic()
        if now - self._drained_at > LATE_AFTER_INTERVALS * self.interval_s and now >= self._retry_at \
                and not self._stopping and self._thread is not None and self._thread.is_alive():
            self._drained.clear()
            self._wake.set()
            self._drained.wait(NUDGE_WAIT_S)

    def release(self, ids: tuple[Any, ...]) -> None:
        """Settle these budget reservations (ids to drop, lease charges) in the transaction that writes the rows
        queued so far."""
        self._queue.append(_Release(ids))

    def _write_late(self) -> None:
        """After close(): a short-lived writer thread takes the rows of calls that were in flight, so the app's thread
        never waits for the database; it retries a locked ledger like the main writer and ends when the queue is
        empty (or after LATE_WRITER_PATIENCE_S). The exit flush stays armed until then."""
        with self._late_lock:
            if self._late_thread is not None and self._late_thread.is_alive():
                return
            atexit.unregister(self._at_exit)
            atexit.register(self._at_exit)
            self._late_thread = threading.Thread(target=self._run_late, name="tokentrace-ledger-late", daemon=True)
            self._late_thread.start()

    def _run_late(self) -> None:
        deadline = time.monotonic() + LATE_WRITER_PATIENCE_S
        while True:
            if self._drain():
                with self._late_lock:
                    if not self._queue:  # nothing arrived meanwhile (else: go round again)
                        self._late_thread = None
                        atexit.unregister(self._at_exit)
                        break
                continue
            if time.monotonic() >= deadline:
                _errors.report("ledger.dropped", None, "rows of calls that ended after uninstrument() could not be "
                               f"written within {LATE_WRITER_PATIENCE_S:.0f}s")
                with self._late_lock:
                    self.dropped += len(self._queue)
                    self._queue.clear()
                    self._late_thread = None
                    atexit.unregister(self._at_exit)
                break
            time.sleep(min(max(self._retry_at - time.monotonic(), 0.05), 1.0))
        with self._lock:
            self._reset_connection()

    # ---- writer thread
    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tokentrace-ledger", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self._drain()
            except Exception as exc:  # a bug must not end the writer (rows would pile up until dropped)
                _errors.report("ledger.write", exc, "the ledger writer failed; retrying")

    def _connection(self) -> Db | None:
        if self._conn is not None and not self.remote and self._identity != _file_identity(self.path):
            # the file was deleted or replaced (logrotate, a cleanup job, a restore): writing on would fill an
            # unlinked inode or another file's pages, so reopen the path (a new ledger is created there)
            _errors.report("ledger.replaced", None, f"the ledger file {self.path} was deleted or replaced; reopening")
            self._reset_connection()
        if self._conn is None:
            if self._cannot_heal is not None:  # a wrong password or a missing database: no connection is tried again
                raise self._cannot_heal
            try:
                self._conn = open_db(self.path, create=True)  # raises LedgerError
            except LedgerError as exc:
                if exc.permanent:
                    self._cannot_heal = exc
                    _errors.logger.error("the ledger at %s cannot be used: %s; usage rows are dropped (counted in "
                                         "tokentrace_internal_errors_total) until the process is restarted with a "
                                         "working ledger", describe(self.path), exc)
                raise
            self._identity = None if self.remote else _file_identity(self.path)
        return self._conn

    def _drain(self, wait_s: float = -1) -> bool:
        """Write everything queued now; True when the queue was emptied. ``wait_s``: how long to wait for another
        thread's write in progress (-1: as long as it takes; the writer thread's own drains)."""
        try:
            if not self._lock.acquire(timeout=wait_s):
                return False  # a write is stuck on the database: the caller's deadline wins
            try:
                return self._drain_locked()
            finally:
                self._lock.release()
        finally:
            self._drained.set()  # a calling thread waiting for a late writer (_nudge) goes on

    def _drain_locked(self) -> bool:
        queue = self._queue
        if queue and time.monotonic() < self._retry_at:
            return False  # the database was unreachable a moment ago: wait for the backoff
        self._drained_at = time.monotonic()
        while queue:
            batch: list[UsageRecord] = []
            released: list[Any] = []
            taken: list[UsageRecord | _Release] = []
            while queue and len(batch) < self.batch_size:
                item = queue.popleft()
                taken.append(item)
                if isinstance(item, _Release):
                    released.extend(item.ids)
                else:
                    batch.append(item)
            if not self._write(batch, released, taken):
                return False
        return True

    def _write(self, batch: list[UsageRecord], released: list[Any],
               taken: list[UsageRecord | _Release] | None = None) -> bool:
        """Write one batch; on a passing failure put ``taken`` back at the head of the queue and back off."""
        opened = self._conn is not None
        try:
            db = self._connection()
            assert db is not None
            opened = True
            db.insert([row_of(r) for r in batch], released)
        except NewerSchemaError as exc:  # never retried, never written row by row: every row of this process is lost
            self.dropped += len(batch)
            _errors.report("ledger.schema", exc, f"{exc}; {len(batch)} usage rows dropped")
            self._reset_connection()
            return False
        except Exception as exc:
            if not self._transient(exc) and opened and (len(batch) > 1 or (batch and released)):
                return self._write_each(batch, released)
            if self._transient(exc) and taken is not None:
                self._queue.extendleft(reversed(taken))
                self._backoff = min(max(self._backoff * 2, 0.5), MAX_BACKOFF_S)
                self._retry_at = time.monotonic() + self._backoff
                cause = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
                _errors.report("ledger.unavailable" if self.remote else "ledger.locked", exc,
                               f"the ledger at {describe(self.path)} is locked or unreachable ({cause}); retrying")
                self._reset_connection()
                return False
            self.dropped += len(batch)
            _handed_back(released)  # the rows are gone: nothing will bring them into the ledger any more
            if opened:
                _errors.report("ledger.write", exc, f"cannot write the ledger at {describe(self.path)}: {exc}")
            else:
                _errors.report("ledger.open", exc, f"cannot open the ledger at {describe(self.path)}: {exc}")
            self._reset_connection()
            return False
        self._backoff = 0.0
        self.written += len(batch)
        _handed_back(released)
        return True

    def _write_each(self, batch: list[UsageRecord], released: list[Any]) -> bool:
        """A batch failed for a reason other than a lock or an outage: write its rows one at a time so that one bad
        row costs only itself (dropped and counted), never the rows around it."""
        self._reset_connection()
        ok = True
        for record in batch:
            ok = self._write([record], []) and ok
        if released:  # the calls ended either way: their reservations go
            ok = self._write([], released) and ok
        return ok

    def _transient(self, exc: BaseException) -> bool:
        """Worth retrying: SQLite locked or busy; a PostgreSQL server that cannot be reached right now."""
        text = str(exc)
        if "locked" in text or "busy" in text:
            return True
        if self.remote:
            if isinstance(exc, LedgerError):
                return "cannot connect" in text and not exc.permanent
            import psycopg

            if not isinstance(exc, psycopg.OperationalError):
                return False
            state = getattr(exc, "sqlstate", None)  # None: the client lost the server (no answer to classify)
            return state is None or state.startswith(TRANSIENT_SQLSTATES)
        return False

    def _reset_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    # ---- lifecycle
    def flush(self, timeout: float = 5.0) -> bool:
        """Write everything queued; False when rows could not be written (dropped, or still queued at timeout)."""
        try:
            return self._flush(timeout, self._dropped_reported)
        finally:
            self._dropped_reported = self.dropped  # each drop makes one flush() say False

    def _flush(self, timeout: float, dropped_before: int) -> bool:
        deadline = time.monotonic() + timeout
        writer = self._thread
        if writer is not None and writer.is_alive() and writer is not threading.current_thread():
            return self._flush_by_writer(deadline, dropped_before)
        while True:
            drained = self._drain(max(deadline - time.monotonic(), 0.0))
            if self.dropped != dropped_before:
                return False
            if drained:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _flush_by_writer(self, deadline: float, dropped_before: int) -> bool:
        """Have the writer thread write everything queued and wait for it until ``deadline``: the calling thread
        never waits on the database itself, so a frozen server costs it its timeout, not the server's."""
        while True:
            if not self._queue and self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
                try:  # nothing queued and no write in progress
                    empty = not self._queue
                finally:
                    self._lock.release()
                if empty:
                    return self.dropped == dropped_before
            if self.dropped != dropped_before or time.monotonic() >= deadline:
                return False
            self._drained.clear()
            self._wake.set()
            self._drained.wait(min(0.05, max(deadline - time.monotonic(), 0.0)))

    def flush_after_close(self, timeout: float) -> bool:
        if not self._queue:
            return True
        flushed = self.flush(timeout)
        if self._lock.acquire(timeout=timeout):
            try:
                self._reset_connection()
            finally:
                self._lock.release()
        return flushed

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=CLOSE_WAIT_S)
        self._drain(CLOSE_WAIT_S)
        if self._lock.acquire(timeout=0):
            try:
                self._reset_connection()
            finally:
                self._lock.release()
        atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        try:
            self.flush(2.0)
        except Exception as exc:  # pragma: no cover - interpreter shutdown
            _errors.report("ledger.exit", exc)

    def _after_fork_in_child(self) -> None:
        """The child gets a copy of the parent's queue (the parent writes those rows) and no writer thread."""
        self._queue = deque()
        self._lock = threading.Lock()
        self._late_lock = threading.Lock()
        self._late_thread = None
        self._wake = threading.Event()
        self._drained = threading.Event()
        abandon(self._conn)  # never use (or close) a connection shared with the parent
        self._conn = None
        if not self._stopping:
            self._start_thread()
            self._flush_when_child_exits()

    def _flush_when_child_exits(self) -> None:
        """multiprocessing children end in ``os._exit`` (atexit never runs): flush from multiprocessing's own exit
        hook. It is registered once the child has cleared the finalizers it inherited (an after-fork hook)."""
        util = sys.modules.get("multiprocessing.util")
        if util is not None:
            util.register_after_fork(self, lambda sink: util.Finalize(None, sink._at_exit, exitpriority=100))
