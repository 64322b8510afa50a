"""Opening the ledger: a SQLite file (made owner-only, refused when it is an app's own database) or a
``postgresql://`` URL (``ledger.postgres``, psycopg imported only then), created and migrated when asked. Its
connection, ``Db``, is ``ledger.connection``'s: transactions (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``BEGIN`` plus
one advisory lock the writers share), budget admission's (on PostgreSQL a lock per budget), the dialects' spellings.
Callers write SQL with ``?`` placeholders; the tables and their migrations are ``ledger.schema``'s.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .connection import ADVISORY_LOCK_KEY, LEASE_CHARGE, LEASE_OVERSPENT, SCHEMA_LOCK_KEY, Db, abandon
from .db import LedgerError
from .location import create_private, is_url, tighten
from .schema import SCHEMA_VERSION, migrate

__all__ = ["ADVISORY_LOCK_KEY", "LEASE_CHARGE", "LEASE_OVERSPENT", "SCHEMA_LOCK_KEY", "Db", "abandon", "open_db"]


def open_db(location: str | os.PathLike[str], *, create: bool, timeout: float = 5.0) -> Db:
    """Open the ledger (creating and migrating it when ``create``). Raises LedgerError."""
    if is_url(location):
        from .postgres import open_postgres  # psycopg and everything PostgreSQL only when a URL is opened

        return open_postgres(str(location), create=create, timeout=timeout)
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
