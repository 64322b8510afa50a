"""The SQLite usage ledger's schema: one append-only row per call in ``llm_usage``, versioned and migrated forward.

Shared by the writer (sinks/ledger.py) and the readers (reports.py, the CLI). Stdlib only.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._usage import TOKEN_COLUMNS, UsageRecord

SCHEMA_VERSION = 1

COLUMNS: tuple[str, ...] = (
    "ts_utc", "provider", "model", "request_model", "operation", "feature", "session_id", "user_id", "agent_id",
    "attributes_json", *TOKEN_COLUMNS, "total_tokens", "cost_usd", "latency_ms", "ttft_ms", "stream", "status",
    "error_type", "response_id", "trace_id", "price_source", "usage_reported", "cache_hit",
)

_MIGRATIONS: dict[int, str] = {  # version -> statements separated by ";" (no ";" inside a statement)
    1: """
    CREATE TABLE IF NOT EXISTS llm_usage (
        id                 INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_utc             TEXT    NOT NULL,   -- ISO 8601, UTC, microseconds: 2026-11-23T02:15:00.123456Z
        provider           TEXT    NOT NULL,
        model              TEXT    NOT NULL,   -- as the provider reported it
        request_model      TEXT    NOT NULL,
        operation          TEXT    NOT NULL,
        feature            TEXT    NOT NULL DEFAULT '',
        session_id         TEXT,
        user_id            TEXT,
        agent_id           TEXT,
        attributes_json    TEXT    NOT NULL DEFAULT '{}',
        input_tokens       INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens      INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
        total_tokens       INTEGER NOT NULL DEFAULT 0,
        cost_usd           REAL,               -- NULL: unpriced (or usage not reported)
        latency_ms         REAL    NOT NULL,
        ttft_ms            REAL,
        stream             INTEGER NOT NULL DEFAULT 0,
        status             TEXT    NOT NULL,   -- ok | error | blocked | cached
        error_type         TEXT,
        response_id        TEXT,
        trace_id           TEXT,
        price_source       TEXT,
        usage_reported     INTEGER NOT NULL DEFAULT 1,
        cache_hit          INTEGER NOT NULL DEFAULT 0  -- an app-level response-cache hit (record_cache_hit)
    );
    CREATE INDEX IF NOT EXISTS llm_usage_ts ON llm_usage (ts_utc);
    """,
}


class LedgerError(Exception):
    """The ledger file cannot be opened or read (missing, corrupt, newer schema)."""


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_of(record: UsageRecord) -> tuple[Any, ...]:
    """The ledger row of a record, in COLUMNS order (cheap: called on the writer thread)."""
    attrs = record.attributes
    usage = record.usage
    return (
        iso_utc(record.ts_utc), record.provider, record.model, record.request_model, record.operation,
        attrs.get("feature", ""), attrs.get("session_id"), attrs.get("user_id"), attrs.get("agent_id"),
        json.dumps(dict(attrs), separators=(",", ":"), sort_keys=True) if attrs else "{}",
        *usage.counts(), usage.total,
        record.cost_usd, record.latency_s * 1000.0, None if record.ttft_s is None else record.ttft_s * 1000.0,
        int(record.stream), record.status, record.error_type, record.response_id, record.trace_id,
        record.price_source, int(record.usage_reported), int(record.status == "cached"),
    )


INSERT_SQL = f"INSERT INTO llm_usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def _create_private(path: Path) -> None:
    """Create the file (and its directory) readable by its owner only, if it does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def connect(path: Path, *, create: bool, timeout: float = 5.0) -> sqlite3.Connection:
    """Open the ledger (creating and migrating it when ``create``); WAL mode so several processes can write."""
    if not create and not path.exists():
        raise LedgerError(f"no ledger at {path} (run an instrumented app or `tokentrace demo` first)")
    if create:
        _create_private(path)
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(f"{path} has ledger schema {version}, newer than this tokentrace ({SCHEMA_VERSION})")
        if create:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn, version)
        elif version == 0 and not _has_table(conn):
            raise LedgerError(f"{path} is not a tokentrace ledger")
        return conn
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"cannot open ledger {path}: {exc}") from None


def _has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='llm_usage'").fetchone() is not None


def migrate(conn: sqlite3.Connection, current: int) -> None:
    """Apply every migration above ``current`` in one transaction each; safe if another process races us."""
    for version in sorted(v for v in _MIGRATIONS if v > current):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < version:
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def insert_rows(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(INSERT_SQL, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
