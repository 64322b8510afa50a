"""The ledger on PostgreSQL: its ``Db`` (one advisory lock the writers share, a lock per budget for admission,
psycopg's spellings) and opening it (a client-side bound on every wait for the server; tables created under a
session lock, so processes starting at once on a new database do not race on the catalog). Imported only when a
``postgresql://`` ledger is opened.
"""

from __future__ import annotations

import functools
import itertools
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from .connection import ADVISORY_LOCK_KEY, SCHEMA_LOCK_KEY, Db, Statement
from .db import INSERT_SQL, LedgerError
from .location import describe, url_problem
from .schema import SCHEMA_VERSION, migrate, schema_version

_BEGIN_LOCKED = f"BEGIN; SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})"
ADMISSION_LOCK_CLASS = 0x746F6B75
"""The high 32 bits of a budget's admission lock on PostgreSQL (``admission_key``); the low 32 are its name's CRC."""


class PostgresDb(Db):
    dialect = "postgresql"

    def __init__(self, conn: Any, location: str) -> None:
        super().__init__(conn, location)
        import psycopg

        self.errors = (psycopg.Error,)
        self._ahead: dict[tuple[str, tuple[Any, ...]], _Rows] = {}
        """Results of an admission's reads, sent with its locks: what ``execute`` returns for them (once each)."""
        self._finished = False
        self.prepares = True
        """Whether admissions send their statements as ``EXECUTE`` of statements prepared on this connection: off
        once one was missing (through a transaction pooler, each transaction may be another server connection)."""
        self._prepared: dict[str, str] = {}

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
    def admission(self, budgets: Sequence[str], reads: Sequence[Statement] = ()) -> Iterator[Db]:
        """Admissions of different budgets (each principal's account is one) run in parallel: a transaction lock
        per budget, taken in key order (no deadlock), instead of the writers' one lock. Each statement after the
        locks sees every earlier admission of these budgets; reads are READ COMMITTED, so the caller reads
        reservations before spend: a writer committing in between (it adds a call's row and drops its reservation
        at once) is then counted twice, never missed. Writers never wait for an admission.

        Two round trips in all: BEGIN, the locks and ``reads`` are one simple query (each statement of it runs, and
        takes its snapshot, after the one before it has finished: the reads after the locks), and ``reserve`` sends
        the INSERTs with the COMMIT."""
        keys = sorted({admission_key(name) for name in budgets})
        self._finished = False
        try:
            locks = [f"SELECT pg_advisory_xact_lock({key})" for key in keys]
            cursor = self.conn.execute("; ".join(["BEGIN", *locks, *(self._literal(s, p) for s, p in reads)]))
            for _ in range(1 + len(locks)):
                cursor.nextset()
            for statement, params in reads:
                self._ahead[(statement, tuple(params))] = _Rows(cursor.fetchall())
                cursor.nextset()
            yield self
            if not self._finished:
                self.conn.execute("COMMIT")
        except BaseException as exc:
            if self._can_roll_back(exc) and not self._finished:  # else the caller closes the connection
                with suppress(Exception):
                    self.conn.execute("ROLLBACK")
            raise
        finally:
            self._ahead.clear()

    def reserve(self, inserts: Sequence[Statement]) -> list[int]:
        """The INSERTs and the COMMIT in one simple query (their parameters as literals)."""
        cursor = self.conn.execute("; ".join([*(self._literal(s + " RETURNING id", p) for s, p in inserts),
                                              "COMMIT"]))
        self._finished = True
        ids = []
        for _ in inserts:
            ids.append(int(cursor.fetchone()[0]))
            cursor.nextset()
        return ids

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        if self._ahead:
            rows = self._ahead.pop((statement, tuple(params)), None)
            if rows is not None:
                return rows
        return self.conn.execute(self.sql(statement), params)

    def _literal(self, statement: str, params: Sequence[Any]) -> str:
        """``statement`` for a simple query: ``EXECUTE`` of it prepared on this connection (the server plans it
        once, as psycopg's own prepared statements), its parameters bound client-side (psycopg quotes them)."""
        import psycopg

        cursor = psycopg.ClientCursor(self.conn)
        if not self.prepares:
            return cursor.mogrify(self.sql(statement), params)
        name = self._prepared.get(statement)
        if name is None:
            name = f"tokentrace_{next(_names)}"
            parts = statement.split("?")
            numbered = "".join(part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, 1))
            self.conn.execute(f"PREPARE {name} AS {numbered}")
            self._prepared[statement] = name
        return cursor.mogrify(f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}",
                              params)

    def retryable(self, exc: BaseException) -> bool:
        state = getattr(exc, "sqlstate", None)
        if state == "26000":  # a prepared statement gone: a transaction pooler (PgBouncer) gave another connection
            self.prepares = False
            self._prepared.clear()
            return True
        return state in ("40001", "40P01")  # serialization failure, deadlock

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


_names = itertools.count()
"""Names of the statements admissions prepare (never reused: one left behind by a failure is never met again)."""


class _Rows:
    """A read's result fetched ahead: what the callers of ``execute`` use of a cursor."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)


def admission_key(budget: str) -> int:
    """The PostgreSQL advisory lock of one budget's admissions (a bigint: the class, then the name's CRC-32)."""
    return (ADMISSION_LOCK_CLASS << 32) | zlib.crc32(budget.encode("utf-8", "surrogatepass"))


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


def open_postgres(url: str, *, create: bool, timeout: float) -> Db:
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
            row = conn.execute("SELECT to_regclass('tokentrace_schema') IS NOT NULL").fetchone()
            if create and not (row and row[0]):  # only when missing: an app's role may have no CREATE privilege
                conn.execute("CREATE TABLE IF NOT EXISTS tokentrace_schema (version INTEGER NOT NULL)")
                row = (True,)
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
        hint = (" (create its tables once with `tokentrace ledger init` as the database's owner, then grant this "
                "role the privileges docs/postgresql.md lists)" if "permission denied" in str(exc) else "")
        first = (str(exc).strip().splitlines() or [""])[0]  # the server's words, without its LINE / caret
        raise LedgerError(f"cannot open the ledger at {where}: {first}{hint}") from None
    return db
