"""Build known ledgers for report and CLI tests: records with chosen times, usage and cost."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

from tokentrace._usage import Usage, UsageRecord
from tokentrace.ledger.db import row_of
from tokentrace.ledger.store import open_db


def record(ts: float, *, provider: str = "openai", model: str = "gpt-4o-mini", operation: str = "chat",
           usage: Usage | None = None, cost: float | None = 0.001, status: str = "ok",
           latency_s: float = 0.1, ttft_s: float | None = None, **attributes: Any) -> UsageRecord:
    return UsageRecord(
        ts_utc=ts, provider=provider, model=model, request_model=model, operation=operation,
        usage=Usage(input=10, output=5) if usage is None else usage,
        cost_usd=cost, price_source="test", latency_s=latency_s, status=status, stream=ttft_s is not None,
        ttft_s=ttft_s, attributes=MappingProxyType({k: str(v) for k, v in attributes.items()}),
    )


def write_ledger(path: Path, records: list[UsageRecord]) -> Path:
    db = open_db(path, create=True)
    try:
        db.insert([row_of(r) for r in records])
    finally:
        db.close()
    return path


def query_ledger(ledger: str, query: str) -> list[tuple[Any, ...]]:
    """Rows of ``query`` straight from a ledger database (a SQLite path or a ``postgresql://`` URL)."""
    if ledger.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(ledger) as conn:
            return conn.execute(query).fetchall()
    import sqlite3

    conn = sqlite3.connect(ledger)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()
