"""One connection to the ledger (``Db``): transactions, the dialect's spellings, writing rows with their
settlements, SQLite's by default (``ledger.postgres`` has PostgreSQL's). Opening one is ``ledger.store``'s.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import chain
from typing import Any

from ..budgets import principal_spend as _principal_spend
from . import rollup as _rollup
from .db import COLUMNS, NULLABLE_COLUMNS, NewerSchemaError
from .schema import SCHEMA_VERSION, schema_version

LEASE_CHARGE = ("UPDATE llm_budget_reservations SET usd = CASE WHEN usd > ? THEN usd - ? ELSE 0 END, "
                 "tokens = CASE WHEN tokens > ? THEN tokens - ? ELSE 0 END WHERE id = ?")
"""A call's charge taken off the lease it was admitted from (never below 0), with its row."""
LEASE_OVERSPENT = "UPDATE llm_budget_reservations SET usd = usd + ?, tokens = tokens + ? WHERE id = ?"
"""A retired lease whose ended calls cost more than it held: the overspend added to its reservation (each of those
calls' rows takes its charge off again when written)."""
_OPERATION = COLUMNS.index("operation")
_NULLABLE = frozenset(i for i, column in enumerate(COLUMNS) if column in NULLABLE_COLUMNS)
_RESPONSE_ID = COLUMNS.index("response_id")
ADVISORY_LOCK_KEY = 0x746F6B74  # "tokt": the one lock PostgreSQL's ledger writers share
SCHEMA_LOCK_KEY = ADVISORY_LOCK_KEY + 1
"""Held (per session) while a process creates or migrates the ledger's tables: CREATE TABLE IF NOT EXISTS races on
PostgreSQL's catalog when two processes run it at once."""

Statement = tuple[str, Sequence[Any]]
"""A statement (``?`` placeholders) and its parameters."""


class Db:
    """One connection to the ledger database; not thread-safe (each thread or component opens its own)."""

    dialect = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    version = SCHEMA_VERSION
    """The ledger's schema when opened: an earlier one when a reader (``create=False``) opened a ledger an earlier
    release wrote and did not migrate it."""

    def __init__(self, conn: Any, location: str) -> None:
        self.conn = conn
        self.location = location

    def sql(self, statement: str) -> str:
        return statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.sql(statement), params)

    def execute_many(self, statement: str, params: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(self.sql(statement), params)

    clock_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    """SQL of the store's own clock, in Unix seconds: what reservations are stamped and judged by."""

    def json_field(self, column: str) -> str:
        """SQL reading one key (the next parameter, a plain key name) of a JSON text column."""
        return f"json_extract({column}, '$.' || ?)"

    @contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        """Statements inside give up (raising one of ``errors``, see ``timed_out``) after ``seconds`` in all."""
        if seconds is None:
            yield
            return
        deadline = time.monotonic() + seconds
        self.conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            yield
        finally:
            self.conn.set_progress_handler(None, 0)

    def timed_out(self, exc: BaseException) -> bool:
        """``exc`` is a statement stopped by ``time_limit``."""
        return isinstance(exc, sqlite3.OperationalError) and "interrupt" in str(exc)

    def _begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    @contextmanager
    def transaction(self) -> Iterator[Db]:
        """One write transaction, serialized with every other writer and budget admission of the ledger."""
        self._begin()
        try:
            yield self
        except BaseException as exc:
            # SQLite may have rolled back already (disk full): the error worth reporting is the original one
            if self._can_roll_back(exc):
                with suppress(Exception):
                    self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _in_transaction(self) -> bool:
        return bool(self.conn.in_transaction)

    def _can_roll_back(self, exc: BaseException) -> bool:
        """After ``exc``, a ROLLBACK can still be sent (not a connection that is lost or stuck mid-answer)."""
        return True

    _BEGIN_READ = "BEGIN"

    @contextmanager
    def admission(self, budgets: Sequence[str], reads: Sequence[Statement] = ()) -> Iterator[Db]:
        """One budget admission: reads that see one state of the ledger and the reservations it then inserts
        (``reserve``), serialized with every other admission of the same ``budgets``. ``reads``: statements the
        admission is about to run, which a dialect may send ahead with the locks (their results are then what
        ``execute`` returns for them, once). SQLite has one writer by nature: its write transaction (serialized
        with every writer and admission)."""
        with self.transaction():
            yield self

    def reserve(self, inserts: Sequence[Statement]) -> list[int]:
        """The admission's reservation INSERTs, last in its transaction: their ids."""
        return [self.insert_returning_id(statement, params) for statement, params in inserts]

    def retryable(self, exc: BaseException) -> bool:
        """``exc`` ended an admission that a second try would decide (a serialization failure)."""
        return False

    @contextmanager
    def snapshot(self) -> Iterator[Db]:
        """Reads that see one consistent state of the ledger (no-op inside a transaction, which already does)."""
        if self._in_transaction():
            yield self
            return
        self.conn.execute(self._BEGIN_READ)
        try:
            yield self
        finally:
            self.conn.execute("ROLLBACK")

    def insert(self, rows: Sequence[tuple[Any, ...]], released: Sequence[Any] = ()) -> None:
        """Append rows (and fold them into the roll-up) and settle the budget reservations of their calls, in one
        transaction: an id is a reservation to drop, (lease id, USD, tokens) a charge to take off a lease."""
        with self.transaction():
            version = schema_version(self)  # a newer tokentrace may have migrated the ledger since this one opened it
            if version > SCHEMA_VERSION:
                raise NewerSchemaError(f"{self.location} now has ledger schema {version}, newer than this "
                                       f"tokentrace's ({SCHEMA_VERSION}); upgrade tokentrace in this process")
            if rows and any(row[_OPERATION] == "batch" for row in rows):
                rows = self._without_recorded_batches(rows)
            if rows:
                _rollup.fold(self, self._insert_many(rows))
                _principal_spend.fold(self, rows)
            if released:
                ids = [r for r in released if isinstance(r, int)]
                if ids:
                    self._delete_reservations(ids)
                for lease_id, usd, tokens in (r for r in released if isinstance(r, tuple)):
                    self.execute(LEASE_CHARGE, (usd, usd, tokens, tokens, lease_id))

    def _without_recorded_batches(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``rows`` less the batch results already in the ledger (another process, or a restart, retrieved them
        first) or twice in ``rows``: a batch result is written once, whoever reads it (in the write transaction)."""
        kept: list[tuple[Any, ...]] = []
        seen: set[Any] = set()
        for row in rows:
            if row[_OPERATION] == "batch":
                key = row[_RESPONSE_ID]
                if key in seen or self.execute("SELECT 1 FROM llm_usage WHERE operation = 'batch' AND "
                                               "response_id = ?", (key,)).fetchone() is not None:
                    continue
                seen.add(key)
            kept.append(row)
        return kept

    def _insert_many(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Append ``rows``; returns the largest id before them (what the roll-up folds from).

        Many rows per INSERT statement: SQLite then steps once per statement instead of once per row (the
        writer thread releases and takes back the GIL per step, which costs the application's threads more than
        the insert itself). Statements hold a power of two of rows, so a batch of any size is a few statements
        from a handful of compiled ones (compiling a statement of a new size costs more than inserting its rows).
        A column that is NULL in every row of a statement is left out of it (its default is NULL): Python's
        sqlite3 binds a None through its adapter lookup, ~0.3 us a value, and a typical row has a dozen."""
        largest = _rows_per_statement(self.conn)
        start, before = 0, 0
        while start < len(rows):
            size = min(largest, 1 << ((len(rows) - start).bit_length() - 1))
            columns = list(zip(*rows[start:start + size], strict=True))
            kept = tuple(i for i, values in enumerate(columns) if i not in _NULLABLE or values.count(None) != size)
            if len(kept) < len(columns):
                columns = [columns[i] for i in kept]
            values = list(chain.from_iterable(zip(*columns, strict=True)))
            cursor = self.conn.execute(_multi_row_insert(kept, size), values)
            if not start:  # one statement's rows get consecutive ids after the largest (the write lock is ours)
                before = int(cursor.lastrowid) - size
            start += size
        return before

    def _delete_reservations(self, ids: Sequence[int]) -> None:
        self.execute(f"DELETE FROM llm_budget_reservations WHERE id IN ({', '.join('?' * len(ids))})", ids)

    def insert_returning_id(self, statement: str, params: Sequence[Any]) -> int:
        return int(self.execute(statement, params).lastrowid)

    def close(self) -> None:
        with suppress(Exception):  # closing a broken connection: nothing left to do
            self.conn.close()


_ROWS_PER_STATEMENT = 512


def _rows_per_statement(conn: sqlite3.Connection) -> int:
    """The largest power of two of rows per statement that SQLite's bound-parameter limit allows (999 before
    SQLite 3.32), at most 512."""
    fits = max(1, min(_ROWS_PER_STATEMENT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS)))
    return 1 << (fits.bit_length() - 1)


@functools.lru_cache(maxsize=64)
def _multi_row_insert(kept: tuple[int, ...], rows: int) -> str:
    """The INSERT of ``rows`` rows giving the columns at positions ``kept`` of COLUMNS (the others get their
    default)."""
    values = "(" + ", ".join("?" * len(kept)) + ")"
    return (f"INSERT INTO llm_usage ({', '.join(COLUMNS[i] for i in kept)}) VALUES "
            + ", ".join([values] * rows))


_inherited: list[Db] = []


def abandon(db: Db | None) -> None:
    """After fork: the child must neither use nor close a connection it shares with its parent; keep it alive."""
    if db is not None:
        _inherited.append(db)
