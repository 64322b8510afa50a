"""The ledger's database: one ``Db`` over SQLite (a file) or PostgreSQL (a ``postgresql://`` URL).

Owns the connection, transactions (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: ``BEGIN`` plus one advisory lock, so writes and budget admission are
serialized the same way on both), and the few SQL spellings that differ. Callers write SQL with ``?``
placeholders. psycopg is imported only when a PostgreSQL ledger is opened. The tables and their migrations are
``ledger.schema``'s.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import chain
from pathlib import Path
from typing import Any

from ..budgets import principal_spend as _principal_spend
from . import rollup as _rollup
from .db import COLUMNS, INSERT_SQL, LedgerError, NewerSchemaError
from .location import create_private, describe, is_url, tighten, url_problem
from .schema import SCHEMA_VERSION, migrate, schema_version

LEASE_CHARGE = ("UPDATE llm_budget_reservations SET usd = CASE WHEN usd > ? THEN usd - ? ELSE 0 END, "
                 "tokens = CASE WHEN tokens > ? THEN tokens - ? ELSE 0 END WHERE id = ?")
"""A call's charge taken off the lease it was admitted from (never below 0), with its row."""
LEASE_OVERSPENT = "UPDATE llm_budget_reservations SET usd = usd + ?, tokens = tokens + ? WHERE id = ?"
"""A retired lease whose ended calls cost more than it held: the overspend added to its reservation (each of those
calls' rows takes its charge off again when written)."""
_OPERATION = COLUMNS.index("operation")
_RESPONSE_ID = COLUMNS.index("response_id")
ADVISORY_LOCK_KEY = 0x746F6B74  # "tokt": the one lock PostgreSQL writers and budget admission share
_BEGIN_LOCKED = f"BEGIN; SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})"
ADMISSION_LOCK_CLASS = 0x746F6B75
"""The high 32 bits of a budget's admission lock on PostgreSQL (``admission_key``); the low 32 are its name's CRC."""
SCHEMA_LOCK_KEY = ADVISORY_LOCK_KEY + 1
"""Held (per session) while a process creates or migrates the ledger's tables: CREATE TABLE IF NOT EXISTS races on
PostgreSQL's catalog when two processes run it at once."""

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
    def admission(self, budgets: Sequence[str]) -> Iterator[Db]:
        """One budget admission: reads that see one state of the ledger and the reservation it then inserts,
        serialized with every other admission of the same ``budgets``. SQLite has one writer by nature: its write
        transaction (serialized with every writer and admission)."""
        with self.transaction():
            yield self

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
        from a handful of compiled ones (compiling a statement of a new size costs more than inserting its rows)."""
        largest = _rows_per_statement(self.conn)
        start, before = 0, 0
        while start < len(rows):
            size = min(largest, 1 << ((len(rows) - start).bit_length() - 1))
            part = rows[start:start + size]
            cursor = self.conn.execute(_multi_row_insert(size), list(chain.from_iterable(part)))
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


class PostgresDb(Db):
    dialect = "postgresql"

    def __init__(self, conn: Any, location: str) -> None:
        super().__init__(conn, location)
        import psycopg

        self.errors = (psycopg.Error,)

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def execute_many(self, statement: str, params: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(self.sql(statement), params)

    clock_sql = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
    """The PostgreSQL server's clock: one for every host of the fleet, whatever their own clocks say."""

    def json_field(self, column: str) -> str:
        return f"(({column})::jsonb ->> ?)"

    _BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    @contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        if seconds is None:
            yield
            return
        self.conn.execute(f"SET statement_timeout = {max(int(seconds * 1000), 1)}")
        try:
            yield
        finally:
            with suppress(Exception):
                self.conn.execute("RESET statement_timeout")

    def timed_out(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, psycopg.errors.QueryCanceled)

    def _can_roll_back(self, exc: BaseException) -> bool:
        import psycopg

        # the connection is lost or its wait timed out: a ROLLBACK would wait as long again (the caller closes it)
        return not (self.conn.broken or isinstance(exc, psycopg.errors._WaitTimeout))

    def _in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.conn.info.transaction_status != TransactionStatus.IDLE)

    @contextmanager
    def admission(self, budgets: Sequence[str]) -> Iterator[Db]:
        """Admissions of different budgets (each principal's account is one) run in parallel: a session lock per
        budget, taken in key order (no deadlock), then a REPEATABLE READ transaction whose one snapshot, taken once
        the locks are held, sees every earlier admission of these budgets and every row written with the
        reservations it settled (a writer commits both at once). Ledger writers keep their one lock; they never
        wait for an admission. Three round trips besides the reads: the locks (their own statement: the snapshot
        must come after them), BEGIN, and COMMIT with the unlock."""
        keys = sorted({admission_key(name) for name in budgets})
        try:
            self.conn.execute("; ".join(f"SELECT pg_advisory_lock({key})" for key in keys))
            self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            yield self
        except BaseException as exc:
            if self._can_roll_back(exc):  # else the caller closes the connection, which drops its locks
                with suppress(Exception):
                    self.conn.execute("ROLLBACK; SELECT pg_advisory_unlock_all()")
            raise
        self.conn.execute("COMMIT; SELECT pg_advisory_unlock_all()")

    def retryable(self, exc: BaseException) -> bool:
        return getattr(exc, "sqlstate", None) in ("40001", "40P01")  # serialization failure, deadlock

    def _begin(self) -> None:
        # one round trip: both statements in one simple query (no parameters), the lock taken inside the transaction
        try:
            self.conn.execute(_BEGIN_LOCKED)
        except BaseException as exc:
            if self._can_roll_back(exc):  # the BEGIN ran: leave no transaction open
                with suppress(Exception):
                    self.conn.execute("ROLLBACK")
            raise

    def _insert_many(self, rows: Sequence[tuple[Any, ...]]) -> int:
        before = int(self.execute("SELECT COALESCE(MAX(id), 0) FROM llm_usage").fetchone()[0])
        with self.conn.cursor() as cursor:
            cursor.executemany(self.sql(INSERT_SQL), rows)
        return before

    def _delete_reservations(self, ids: Sequence[int]) -> None:
        self.execute("DELETE FROM llm_budget_reservations WHERE id = ANY(?)", (list(ids),))

    def insert_returning_id(self, statement: str, params: Sequence[Any]) -> int:
        row = self.execute(statement + " RETURNING id", params).fetchone()
        assert row is not None
        return int(row[0])


def admission_key(budget: str) -> int:
    """The PostgreSQL advisory lock of one budget's admissions (a bigint: the class, then the name's CRC-32)."""
    return (ADMISSION_LOCK_CLASS << 32) | zlib.crc32(budget.encode("utf-8", "surrogatepass"))


_ROWS_PER_STATEMENT = 512


def _rows_per_statement(conn: sqlite3.Connection) -> int:
    """The largest power of two of rows per statement that SQLite's bound-parameter limit allows (999 before
    SQLite 3.32), at most 512."""
    fits = max(1, min(_ROWS_PER_STATEMENT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS)))
    return 1 << (fits.bit_length() - 1)


@functools.lru_cache(maxsize=16)
def _multi_row_insert(rows: int) -> str:
    values = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    return INSERT_SQL.partition(" VALUES ")[0] + " VALUES " + ", ".join([values] * rows)


_inherited: list[Db] = []


def abandon(db: Db | None) -> None:
    """After fork: the child must neither use nor close a connection it shares with its parent; keep it alive."""
    if db is not None:
        _inherited.append(db)


def open_db(location: str | os.PathLike[str], *, create: bool, timeout: float = 5.0) -> Db:
    """Open the ledger (creating and migrating it when ``create``). Raises LedgerError."""
    if is_url(location):
        return _open_postgres(str(location), create=create, timeout=timeout)
    return _open_sqlite(Path(location), create=create, timeout=timeout)


def _open_sqlite(path: Path, *, create: bool, timeout: float) -> Db:
    if not create and not path.exists():
        raise LedgerError(f"no ledger at {path} (run an instrumented app or `tokentrace demo` first)")
    existing = create and not create_private(path) and path.stat().st_size > 0
    try:
        if existing:  # someone's file: a ledger, or nothing is changed in it (not its mode, not its journal)
            _refuse_foreign(path, timeout)
            tighten(path)
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        db = Db(conn, str(path))
        _ensure_math_functions(conn)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(f"{path} has ledger schema {version}, newer than this tokentrace ({SCHEMA_VERSION})")
        if create:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # a writer's scratch tables (a multi-row INSERT's VALUES, the roll-up's GROUP BY) are a few rows: in a
            # temporary file they cost more than the rows themselves (a 10-row batch: 41 -> 19 us per row)
            conn.execute("PRAGMA temp_store = MEMORY")
            migrate(db, version)
        else:
            db.version = version
        if not create and version == 0 and conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='llm_usage'").fetchone() is None:
            raise LedgerError(f"{path} is not a tokentrace ledger")
        return db
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"cannot open ledger {path}: {exc}") from None


FOREIGN_TABLES_ALLOWED = ("llm_", "sqlite_")
"""The tables a ledger may hold: tokentrace's own (``llm_*``) and SQLite's internal ones."""


def _refuse_foreign(path: Path, timeout: float) -> None:
    """An existing file that is not a SQLite database, or one that holds tables that are not tokentrace's (an app's
    own database given as the ledger by mistake), is refused before anything in it is changed."""
    try:
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
        try:
            names = [str(r[0]) for r in reader.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        finally:
            reader.close()
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"{path} is not a SQLite database ({exc}); give tokentrace a ledger file of its own") \
            from None
    foreign = sorted(n for n in names if not n.startswith(FOREIGN_TABLES_ALLOWED))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise LedgerError(f"{path} holds tables that are not tokentrace's ({shown}): it looks like an application's "
                          "own database; give tokentrace a ledger file of its own (nothing in this one was changed)")


def _ensure_math_functions(conn: sqlite3.Connection) -> None:
    """The roll-up's bucket SQL uses ln() and floor(): built into SQLite >= 3.35 when compiled in; else Python's."""
    try:
        conn.execute("SELECT ln(2.0), floor(1.5)")
    except sqlite3.OperationalError:
        import math

        conn.create_function("ln", 1, math.log, deterministic=True)
        conn.create_function("floor", 1, math.floor, deterministic=True)


IO_GRACE_S = 0.5
"""A PostgreSQL connection waits for the server at most its timeout plus this, client-side, per round trip."""
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
"""TCP keepalives: a server whose host vanished (no RST ever comes) is noticed in about 25 s on an idle link."""


@functools.cache
def _bounded_connection_class() -> Any:
    """psycopg's Connection whose every wait for the server gives up after ``io_timeout`` seconds, client-side.

    A server-side ``statement_timeout`` cannot fire on a frozen server (SIGSTOP, a hung host, a dead NAT entry) and
    the kernel keeps ACKing a stopped local process, so neither keepalives nor ``tcp_user_timeout`` end the wait: only
    the client's own clock does. A connection that timed out is left mid-protocol and must be closed (callers
    reset it on any error)."""
    import psycopg

    class BoundedConnection(psycopg.Connection):
        io_timeout: float | None = None

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            return super().wait(gen, interval, self.io_timeout if timeout is None else timeout)

    return BoundedConnection


UNHEALING_SQLSTATES = ("28000", "28P01", "3D000", "42501")
"""Connection errors no retry heals: authorization refused, wrong password, no such database, no privilege."""
UNHEALING_WORDS = ("password authentication failed", "no password supplied", "does not exist",
                   "permission denied", "role")


def _cause(exc: BaseException) -> str:
    """The server's own words for a failure, last line first (psycopg puts the FATAL reason there)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def _cannot_heal(exc: BaseException, cause: str) -> bool:
    state = getattr(exc, "sqlstate", None)
    return (state is not None and state in UNHEALING_SQLSTATES) or any(w in cause for w in UNHEALING_WORDS[:3])


def _open_postgres(url: str, *, create: bool, timeout: float) -> Db:
    try:
        import psycopg
    except ImportError:
        raise LedgerError("a postgresql:// ledger needs psycopg: pip install 'tokentrace[postgres]'") from None
    where = describe(url)
    problem = url_problem(url)
    if problem:
        raise LedgerError(problem)
    try:
        conn = _bounded_connection_class().connect(url, autocommit=True, connect_timeout=max(int(timeout), 1),
                                                   options=f"-c statement_timeout={int(timeout * 1000)}", **KEEPALIVE)
        conn.io_timeout = timeout + IO_GRACE_S
    except psycopg.Error as exc:
        cause = _cause(exc)
        raise LedgerError(f"cannot connect to the ledger at {where}: {cause}", permanent=_cannot_heal(exc, cause)) \
            from None
    db = PostgresDb(conn, where)
    try:
        if create:  # processes starting at once on a new database: one creates, the others wait and find it made
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            if create:
                conn.execute("CREATE TABLE IF NOT EXISTS tokentrace_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT to_regclass('tokentrace_schema') IS NOT NULL").fetchone()
            version = schema_version(db) if row and row[0] else 0
            if version > SCHEMA_VERSION:
                raise LedgerError(f"{where} has ledger schema {version}, newer than this tokentrace "
                                  f"({SCHEMA_VERSION})")
            if create:
                migrate(db, version)
            else:
                db.version = version
        finally:
            if create:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
        if not create and version == 0:
            raise LedgerError(f"{where} holds no tokentrace ledger (run an instrumented app against it first)")
    except psycopg.Error as exc:
        db.close()
        raise LedgerError(f"cannot open the ledger at {where}: {exc}") from None
    return db
