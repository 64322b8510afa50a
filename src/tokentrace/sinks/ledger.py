"""Ledger sink: hands each record to a background writer thread that appends rows to SQLite in batches.

The calling thread only appends the record to a bounded deque: no serialization, no lock, no disk. When the
deque is full the record is dropped and counted (``tokentrace_internal_errors_total{stage="ledger.dropped"}``).
A failing disk or a locked database is logged once and counted; the application never notices.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any

from .. import _errors
from .._ledger_db import LedgerError, connect, insert_rows, row_of
from .._usage import UsageRecord
from . import Sink

DEFAULT_QUEUE_SIZE = 100_000
DEFAULT_BATCH = 500
DEFAULT_INTERVAL_S = 0.2

_live_sinks: weakref.WeakSet[LedgerSink] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sink in list(_live_sinks):
        sink._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LedgerSink(Sink):
    name = "ledger"

    def __init__(self, path: Path, *, queue_size: int = DEFAULT_QUEUE_SIZE, batch_size: int = DEFAULT_BATCH,
                 interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.path = Path(path)
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._queue: deque[UsageRecord] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()  # serializes writing batches (writer thread vs flush from another thread)
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self._start_thread()
        atexit.register(self._at_exit)
        _live_sinks.add(self)

    # ---- calling thread
    def end(self, record: UsageRecord, state: Any) -> None:
        queue = self._queue
        if self._stopping:  # a call that was in flight when tokentrace was uninstrumented: write it now
            with self._lock:
                self._write([record])
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
            return
        if len(queue) >= self.queue_size:
            self.dropped += 1
            _errors.report("ledger.dropped", None, "ledger queue full: a usage row was dropped")
            return
        queue.append(record)

    # ---- writer thread
    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tokentrace-ledger", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self._drain()

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None:
            try:
                self._conn = connect(self.path, create=True)
            except (LedgerError, OSError, sqlite3.Error) as exc:
                _errors.report("ledger.open", exc, f"cannot open the ledger at {self.path}: {exc}")
                return None
        return self._conn

    def _drain(self) -> bool:
        """Write everything queued now; True when the queue was emptied."""
        with self._lock:
            queue = self._queue
            while queue:
                batch: list[UsageRecord] = []
                while queue and len(batch) < self.batch_size:
                    batch.append(queue.popleft())
                if not self._write(batch):
                    return False
            return True

    def _write(self, batch: list[UsageRecord]) -> bool:
        conn = self._connection()
        if conn is None:
            self.dropped += len(batch)
            return False
        try:
            insert_rows(conn, [row_of(r) for r in batch])
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                # another process holds the database: put the batch back and try again next round
                self._queue.extendleft(reversed(batch))
                _errors.report("ledger.locked", exc, "the ledger is locked by another process; retrying")
                return False
            self._fail(batch, exc)
            return False
        except (sqlite3.Error, OSError) as exc:
            self._fail(batch, exc)
            return False
        self.written += len(batch)
        return True

    def _fail(self, batch: list[UsageRecord], exc: BaseException) -> None:
        self.dropped += len(batch)
        _errors.report("ledger.write", exc, f"cannot write the ledger at {self.path}: {exc}")
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # ---- lifecycle
    def flush(self, timeout: float = 5.0) -> bool:
        """Write everything queued; False when rows could not be written (dropped, or still queued at timeout)."""
        dropped_before = self.dropped
        deadline = time.monotonic() + timeout
        while True:
            drained = self._drain()
            if self.dropped != dropped_before:
                return False
            if drained:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._drain()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
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
        self._wake = threading.Event()
        self._conn = None  # never share a SQLite connection across fork
        if not self._stopping:
            self._start_thread()
