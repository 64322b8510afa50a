"""The locks and connections budget admission uses: calls of different budgets (each principal's account is one) are
decided at once, each on a connection of its own; calls of one budget one at a time (``SharedBudgets``).

On PostgreSQL the same holds across processes (``ledger.store.Db.admission``: a lock per budget); SQLite has one
writer by nature, so one lock serves it.
"""

from __future__ import annotations

import threading
from contextlib import suppress
from typing import Any

from ..ledger.location import is_url
from ..ledger.store import Db, abandon, open_db

ADMISSION_TRIES = 3
"""An admission a ledger writer got in the way of (a serialization failure on PostgreSQL) is decided again, this
many times in all."""
STRIPES = 64
"""Admission locks per process on PostgreSQL: budgets whose names hash to different stripes are decided at once."""
POOL_SIZE = 8
"""Connections a process keeps open for admission at the most (more admissions at once open and close their own)."""


def stripes(location: Any) -> list[threading.Lock]:
    return [threading.Lock() for _ in range(STRIPES if is_url(str(location)) else 1)]


class Pool:
    """The connections admissions use, one per admission in progress; at most POOL_SIZE kept open when idle."""

    def __init__(self, location: Any, timeout_s: float) -> None:
        self.location = location
        self.timeout_s = timeout_s
        self._idle: list[Db] = []
        self._lock = threading.Lock()

    def take(self) -> Db:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return open_db(self.location, create=True, timeout=self.timeout_s)

    def give(self, db: Db) -> None:
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(db)
                return
        db.close()

    def discard(self, db: Db | None) -> None:
        """A connection that failed (None: opening one failed): closed, never used again; the idle ones too (the
        server may have restarted)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for each in (*([] if db is None else [db]), *idle):
            with suppress(Exception):
                each.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            with suppress(Exception):
                db.close()

    def abandon(self) -> None:
        """After fork: the parent's connections are neither used nor closed here."""
        for db in self._idle:
            abandon(db)
        self._idle = []
