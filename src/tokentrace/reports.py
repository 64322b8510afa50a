"""Answers from the ledger: spend and tokens grouped by a key, per-call statistics, exports, budget status.

Used by ``tokentrace.report()`` and by the CLI, so both give the same numbers. Reads only; stdlib only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._budget_store import spend_filter
from ._ledger_db import COLUMNS, LedgerError, iso_utc
from ._ledger_store import Db, open_db
from ._usage import TOKEN_COLUMNS
from .config import ledger_location

if TYPE_CHECKING:
    from .budgets import Budget

GROUP_KEYS: dict[str, str] = {
    "provider": "provider",
    "model": "model",
    "feature": "feature",
    "operation": "operation",
    "day": "substr(ts_utc, 1, 10)",
    "session": "COALESCE(session_id, '')",
    "user": "COALESCE(user_id, '')",
}
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ReportError(ValueError):
    """A report option that cannot be used (unknown --by, bad date, missing ledger)."""


def ledger_path(ledger: str | os.PathLike[str] | None) -> Path | str:
    """The ledger a report reads: a SQLite file (Path) or a ``postgresql://`` URL."""
    path = ledger_location(ledger, reading=True)
    assert path is not None  # a reader always gets a location
    return path


def parse_since(value: str, now: datetime) -> datetime:
    match = _DURATION.match(value)
    if not match:
        raise ReportError(f"--since must look like 24h, 7d, 30d or 2w, not {value!r}")
    return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_instant(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"{option} must be a date (2026-11-01) or ISO time, not {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def window(since: str | None, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    stop = parse_instant(end, "--to") if end else now
    begin = parse_instant(start, "--from") if start else parse_since(since or "7d", stop)
    if begin >= stop:
        raise ReportError("--from must be before --to")
    return begin, stop


def open_ledger(ledger: str | os.PathLike[str] | None) -> tuple[Db, str]:
    """The ledger's database (read-only use) and its description for messages (never a password)."""
    try:
        db = open_db(ledger_path(ledger), create=False)
    except LedgerError as exc:
        raise ReportError(str(exc)) from None
    return db, db.location


def _count_if(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def _where(begin: datetime, stop: datetime) -> tuple[str, list[Any]]:
    return "ts_utc >= ? AND ts_utc < ?", [iso_utc(begin.timestamp()), iso_utc(stop.timestamp())]


def _aggregate_sql(key_sql: str) -> str:
    tokens = ", ".join(f"SUM({c})" for c in TOKEN_COLUMNS)
    counts = ", ".join(_count_if(f"status = '{status}'") for status in ("error", "blocked", "cached"))
    unpriced = _count_if("cost_usd IS NULL AND status = 'ok' AND usage_reported = 1")
    return (
        f"SELECT {key_sql} AS k, COUNT(*), {counts}, {tokens}, SUM(total_tokens), COALESCE(SUM(cost_usd), 0), "
        f"{unpriced}, AVG(latency_ms) FROM llm_usage WHERE {{where}} GROUP BY k"
    )


def _row_dict(values: tuple[Any, ...]) -> dict[str, Any]:
    calls, errors, blocked, cached = (int(v or 0) for v in values[1:5])
    tokens = [int(v or 0) for v in values[5:10]]
    return {
        "key": "" if values[0] is None else str(values[0]),
        "calls": calls,
        "errors": errors,
        "blocked": blocked,
        "cached": cached,
        **dict(zip(TOKEN_COLUMNS, tokens, strict=True)),
        "total_tokens": int(values[10] or 0),
        "cost_usd": round(float(values[11] or 0.0), 12),
        "unpriced_calls": int(values[12] or 0),
        "avg_latency_ms": round(float(values[13] or 0.0), 3),
    }


def report(since: str = "7d", by: str = "feature", ledger: str | os.PathLike[str] | None = None, *,
           start: str | None = None, end: str | None = None) -> dict[str, Any]:
    """Spend and tokens from the ledger grouped ``by`` one key, over ``since`` (or ``start``..``end``).

    Returns exactly what ``tokentrace report --format json`` prints: ``rows`` (most expensive first),
    ``totals`` and ``daily`` (cost per UTC day, for a trend).
    """
    if by not in GROUP_KEYS:
        raise ReportError(f"--by must be one of {', '.join(GROUP_KEYS)}, not {by!r}")
    begin, stop = window(since, start, end)
    conn, path = open_ledger(ledger)
    try:
        where, params = _where(begin, stop)
        rows = [_row_dict(r) for r in conn.execute(_aggregate_sql(GROUP_KEYS[by]).format(where=where), params)
                .fetchall()]
        total = conn.execute(_aggregate_sql("'total'").format(where=where), params).fetchone()
        daily = conn.execute(
            f"SELECT substr(ts_utc, 1, 10) AS d, COALESCE(SUM(cost_usd), 0), COUNT(*) FROM llm_usage "
            f"WHERE {where} GROUP BY d ORDER BY d", params).fetchall()
    except conn.errors as exc:
        raise ReportError(f"cannot read ledger {path}: {exc}") from None
    finally:
        conn.close()
    rows.sort(key=lambda r: (-r["cost_usd"], -r["calls"], r["key"]))
    totals = _row_dict(total) if total and total[1] else _row_dict(("total",) + (0,) * 13)
    totals.pop("key")
    return {
        "ledger": str(path),
        "from": begin.isoformat(),
        "to": stop.isoformat(),
        "by": by,
        "rows": rows,
        "totals": totals,
        "daily": [{"day": d, "cost_usd": round(float(c), 12), "calls": int(n)} for d, c, n in daily],
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty list)."""
    if not sorted_values:
        return 0.0
    rank = max(math.ceil(q / 100 * len(sorted_values)), 1)
    return float(sorted_values[rank - 1])


def stats(since: str = "7d", ledger: str | os.PathLike[str] | None = None, *, start: str | None = None,
          end: str | None = None) -> dict[str, Any]:
    """Totals, per-call tokens and latency percentiles (p50/p95/p99), and cache hit ratios."""
    begin, stop = window(since, start, end)
    conn, path = open_ledger(ledger)
    try:
        where, params = _where(begin, stop)
        total = conn.execute(_aggregate_sql("'total'").format(where=where), params).fetchone()
        measured = conn.execute(f"SELECT total_tokens, latency_ms FROM llm_usage WHERE {where} AND status = 'ok' "
                                "AND usage_reported = 1", params).fetchall()
        ttft = [r[0] for r in conn.execute(f"SELECT ttft_ms FROM llm_usage WHERE {where} AND ttft_ms IS NOT NULL "
                                           "ORDER BY ttft_ms", params).fetchall()]
    except conn.errors as exc:
        raise ReportError(f"cannot read ledger {path}: {exc}") from None
    finally:
        conn.close()
    totals = _row_dict(total) if total and total[1] else _row_dict(("total",) + (0,) * 13)
    totals.pop("key")
    tokens = sorted(r[0] for r in measured)
    latency = sorted(r[1] for r in measured)
    all_input = totals["input_tokens"] + totals["cache_read_tokens"] + totals["cache_write_tokens"]
    answered = totals["calls"] - totals["blocked"]
    return {
        "ledger": str(path),
        "from": begin.isoformat(),
        "to": stop.isoformat(),
        "totals": totals,
        "tokens_per_call": {f"p{q}": _percentile(tokens, q) for q in (50, 95, 99)},
        "latency_ms": {f"p{q}": round(_percentile(latency, q), 3) for q in (50, 95, 99)},
        "ttft_ms": {f"p{q}": round(_percentile(ttft, q), 3) for q in (50, 95, 99)},
        "prompt_cache_hit_ratio": totals["cache_read_tokens"] / all_input if all_input else 0.0,
        "response_cache_hit_ratio": totals["cached"] / answered if answered else 0.0,
    }


def export_rows(since: str = "7d", ledger: str | os.PathLike[str] | None = None, *, start: str | None = None,
                end: str | None = None) -> Iterator[dict[str, Any]]:
    """Every ledger row in the window, oldest first, as dicts (``id`` plus the ledger columns)."""
    begin, stop = window(since, start, end)
    conn, path = open_ledger(ledger)
    try:
        where, params = _where(begin, stop)
        cursor = conn.execute(f"SELECT id, {', '.join(COLUMNS)} FROM llm_usage WHERE {where} ORDER BY id", params)
        names = ["id", *COLUMNS]
        for row in cursor:
            yield dict(zip(names, row, strict=True))
    except conn.errors as exc:
        raise ReportError(f"cannot read ledger {path}: {exc}") from None
    finally:
        conn.close()


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)


def spent_in_ledger(db: Db, budget: Budget, since_ts: float) -> tuple[float, int]:
    """(USD, tokens) the ledger records for ``budget``'s scope since an instant."""
    where, params = spend_filter(db, budget, iso_utc(since_ts))
    row = db.execute(f"SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(total_tokens), 0) FROM llm_usage "
                     f"WHERE {where}", params).fetchone()
    return float(row[0]), int(row[1])


def _used(spent: float, limit: float | None) -> float:
    if limit is None:
        return 0.0
    return spent / limit if limit else float(spent > 0)


def budget_row(budget: Budget, spent_usd: float, spent_tokens: int) -> dict[str, Any]:
    """One budget's status as the CLI and the demo show it; ``used`` is the larger of the USD and token ratios."""
    begin, end = budget.period_bounds()
    return {
        "name": budget.name, "period": budget.period, "action": budget.action,
        "scope": ", ".join(f"{k}={v}" for k, v in (budget.scope or {}).items()),
        "period_start": begin.isoformat(), "period_end": end.isoformat(),
        "spent_usd": round(spent_usd, 12), "spent_tokens": spent_tokens,
        "limit_usd": budget.limit_usd, "limit_tokens": budget.limit_tokens,
        "used": round(max(_used(spent_usd, budget.limit_usd), _used(spent_tokens, budget.limit_tokens)), 6),
    }


def budget_status(budgets: list[Budget], ledger: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Spend in each budget's current period according to the ledger, against its limits."""
    conn, path = open_ledger(ledger)
    try:
        rows = []
        for budget in budgets:
            begin, _ = budget.period_bounds()
            usd, tokens = spent_in_ledger(conn, budget, begin.timestamp())
            rows.append(budget_row(budget, usd, tokens))
        return rows
    except conn.errors as exc:
        raise ReportError(f"cannot read ledger {path}: {exc}") from None
    finally:
        conn.close()
