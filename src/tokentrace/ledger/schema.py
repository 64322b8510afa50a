"""The ledger's tables in both SQL dialects, and the forward migrations that bring a ledger of any earlier
version to ``SCHEMA_VERSION`` (one transaction per version, safe when processes race). Stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..budgets import principal_spend as _principal_spend
from . import rollup as _rollup

SCHEMA_VERSION = 10


class Database(Protocol):
    """What a migration needs of ``ledger.store.Db``."""

    dialect: str

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any: ...

    def transaction(self) -> AbstractContextManager[Any]: ...


_TABLES = """
CREATE TABLE IF NOT EXISTS llm_usage (
    id                 {id_type},
    ts_utc             TEXT    NOT NULL,   -- ISO 8601, UTC, microseconds: 2026-11-23T02:15:00.123456Z
    provider           TEXT    NOT NULL,
    model              TEXT    NOT NULL,   -- as the provider reported it
    request_model      TEXT    NOT NULL,
    operation          TEXT    NOT NULL,
    feature            TEXT    NOT NULL DEFAULT '',
    session_id         TEXT,
    user_id            TEXT,
    agent_id           TEXT,
    attributes_json    TEXT    NOT NULL DEFAULT '{{}}',
    input_tokens       BIGINT  NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT  NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT  NOT NULL DEFAULT 0,
    output_tokens      BIGINT  NOT NULL DEFAULT 0,
    reasoning_tokens   BIGINT  NOT NULL DEFAULT 0,
    total_tokens       BIGINT  NOT NULL DEFAULT 0,
    cost_usd           {real},              -- NULL: unpriced (or usage not reported)
    latency_ms         {real}  NOT NULL,
    ttft_ms            {real},
    stream             INTEGER NOT NULL DEFAULT 0,
    status             TEXT    NOT NULL,   -- ok | error | blocked | cached
    error_type         TEXT,
    response_id        TEXT,
    trace_id           TEXT,
    price_source       TEXT,
    usage_reported     INTEGER NOT NULL DEFAULT 1,
    cache_hit          INTEGER NOT NULL DEFAULT 0  -- an app-level response-cache hit (record_cache_hit)
);
CREATE INDEX IF NOT EXISTS llm_usage_ts ON llm_usage (ts_utc)
"""

_BUDGET_TABLES = """
CREATE TABLE IF NOT EXISTS llm_budget_reservations (
    id         {id_type},
    budget     TEXT    NOT NULL,
    usd        {real}  NOT NULL,
    tokens     BIGINT  NOT NULL,
    expires_at {real}  NOT NULL,           -- Unix time, renewed by the live process that owns it
    owner      TEXT    NOT NULL            -- host:pid, for operators
);
CREATE INDEX IF NOT EXISTS llm_budget_reservations_budget ON llm_budget_reservations (budget, expires_at);
CREATE TABLE IF NOT EXISTS llm_budget_events (
    budget       TEXT NOT NULL,
    period_start TEXT NOT NULL,
    kind         TEXT NOT NULL,            -- 'warned': the fleet's one warning of this period was given
    PRIMARY KEY (budget, period_start, kind)
);
CREATE INDEX IF NOT EXISTS llm_usage_feature_ts ON llm_usage (feature, ts_utc)
"""

_BUDGET_CHARGE = """
ALTER TABLE llm_usage ADD COLUMN charged_usd {real};      -- budgets' charge when usage was not reported (else NULL)
ALTER TABLE llm_usage ADD COLUMN charged_tokens BIGINT;
ALTER TABLE llm_usage_hourly ADD COLUMN charged_usd {real} NOT NULL DEFAULT 0;
ALTER TABLE llm_usage_hourly ADD COLUMN charged_tokens BIGINT NOT NULL DEFAULT 0
"""

_SERVED_TIER = """
ALTER TABLE llm_usage ADD COLUMN service_tier TEXT;       -- the tier that served the call, as it said (else NULL)
ALTER TABLE llm_usage ADD COLUMN fees_usd {real}
"""
"""Version 5: ``fees_usd`` is the part of ``cost_usd`` that per-request fees (searches) make; NULL when unpriced.
(No comment after a column's type: SQLite keeps it in the table's stored definition.)"""

_BATCHES = """
CREATE UNIQUE INDEX IF NOT EXISTS llm_usage_batch_result ON llm_usage (response_id) WHERE operation = 'batch';
CREATE TABLE IF NOT EXISTS llm_batches (
    batch_id        TEXT NOT NULL PRIMARY KEY,
    provider        TEXT NOT NULL,
    attributes_json TEXT NOT NULL DEFAULT '{{}}',
    created_utc     TEXT NOT NULL
)
"""
"""Version 6: a batch result is one row, once (its ``response_id`` is the batch id, or batch id/custom id), and
what a batch was attributed to when it was created (``instrumentation.batch_results``)."""

_PRINCIPALS = """
CREATE INDEX IF NOT EXISTS llm_usage_user_ts ON llm_usage (user_id, ts_utc)
"""
"""Version 7: a ``per="user_id"`` budget reads one user's spend in the period from this index, not by scanning the
period's rows (the first admission of a user on a ledger of 1,000,000 rows: 17 ms before)."""

_PRINCIPAL_SPEND = _principal_spend.TABLES
"""Version 8: per-principal spend of templated budgets, kept by the writers (``budgets.principal_spend``): a principal's
first admission reads one row however many principals and rows the ledger holds, whatever its ``per`` key."""

_CACHE_SAVINGS = """
ALTER TABLE llm_usage ADD COLUMN cache_savings_usd {real};
ALTER TABLE llm_usage_hourly ADD COLUMN cache_savings_usd {real} NOT NULL DEFAULT 0
"""
"""Version 9: what prompt caching saved on a call (its cache reads at the uncached input price minus what they cost,
less what its cache writes cost beyond that price); NULL when the call was not priced from a table. Rows from
before have none: their hours sum 0."""

_MEDIA = """
ALTER TABLE llm_usage ADD COLUMN audio_seconds {real};
ALTER TABLE llm_usage ADD COLUMN characters BIGINT;
ALTER TABLE llm_usage ADD COLUMN images BIGINT
"""
"""Version 10: what a media call was billed by besides tokens: seconds of audio (transcription, translation),
characters of input (speech), images made; NULL for other calls."""

_DIALECT = {
    "sqlite": {"id_type": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "without_rowid": " WITHOUT ROWID"},
    "postgresql": {"id_type": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION", "without_rowid": ""},
}
MIGRATIONS: dict[int, str] = {1: _TABLES, 2: _BUDGET_TABLES, 3: _rollup.TABLES, 4: _BUDGET_CHARGE, 5: _SERVED_TIER,
                              6: _BATCHES, 7: _PRINCIPALS, 8: _PRINCIPAL_SPEND, 9: _CACHE_SAVINGS,
                              10: _MEDIA}
"""version -> statements separated by ";" (no ";" inside a statement), in both dialects' spelling."""


def _fill_rollup(db: Database) -> None:
    """Version 4: a roll-up kept by version 3 gains the budget charge (old rows have none: their cost); a ledger
    from before version 3 has its roll-up built from its rows by the last migration (``_build_rollup``), when
    every column today's roll-up sums exists."""
    if db.execute("SELECT 1 FROM llm_usage_hourly LIMIT 1").fetchone() is not None:
        db.execute("UPDATE llm_usage_hourly SET charged_usd = cost_usd, charged_tokens = total_tokens")


def _build_rollup(db: Database) -> None:
    """The last migration (move it along when one is added): a roll-up still empty while rows exist (a ledger from
    before version 3) is built now."""
    if db.execute("SELECT 1 FROM llm_usage_hourly LIMIT 1").fetchone() is None and \
            db.execute("SELECT 1 FROM llm_usage LIMIT 1").fetchone() is not None:
        _rollup.fold(db, 0)


AFTER_MIGRATION: dict[int, Callable[[Database], None]] = {4: _fill_rollup, 10: _build_rollup}
"""version -> what fills new tables or columns from the rows already there, in the migration's transaction."""


def schema_version(db: Database) -> int:
    """The schema version a ledger database is at (0: none yet)."""
    if db.dialect == "sqlite":
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    return int(db.execute("SELECT COALESCE(MAX(version), 0) FROM tokentrace_schema").fetchone()[0])


def migrate(db: Database, current: int) -> None:
    """Apply every migration above ``current``, one transaction each; safe if another process races us."""
    spelling = _DIALECT[db.dialect]
    for version in sorted(v for v in MIGRATIONS if v > current):
        with db.transaction():
            if schema_version(db) >= version:
                continue
            for statement in MIGRATIONS[version].format(**spelling).split(";"):
                if statement.strip():
                    db.execute(statement)
            if version in AFTER_MIGRATION:
                AFTER_MIGRATION[version](db)
            if db.dialect == "sqlite":
                db.execute(f"PRAGMA user_version = {version}")
            else:
                db.execute("INSERT INTO tokentrace_schema (version) VALUES (?)", (version,))
