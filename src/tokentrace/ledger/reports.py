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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._usage import TOKEN_COLUMNS
from ..budgets.spend import calls_since, principal_count, spent_by_principal, spent_since
from ..config import ledger_location
from .db import COLUMNS, LedgerError
from .rollup import MEASURES, Window, aggregate_source, histogram_sql
from .store import Db, open_db

if TYPE_CHECKING:
    from ..budgets import Budget

GROUP_KEYS: dict[str, tuple[str, str | None]] = {
    "provider": ("provider", "provider"),
    "model": ("model", "model"),
    "feature": ("feature", "feature"),
    "operation": ("operation", "operation"),
    "day": ("substr(ts_utc, 1, 10)", "substr(hour, 1, 10)"),
    "session": ("COALESCE(session_id, '')", None),
    "user": ("COALESCE(user_id, '')", None),
    "tier": ("COALESCE(service_tier, '')", None),
    "agent": ("COALESCE(agent_id, '')", None),
    "run": ("COALESCE({run_id}, '')", None),
    "step": ("COALESCE({step}, '')", None),
}
"""--by -> its SQL over ledger rows and over the hourly roll-up (None: not kept there, the rows are read)."""
EXACT_PERCENTILES_UP_TO = 100_000
"""Percentiles are exact (nearest rank over the rows) up to this many values, from the roll-up's histogram above."""
_DURATION = re.compile(r"^\s*(\d{1,7})\s*(mo|[mhdw])\s*$")
"""At most seven digits: a longer number is no window a ledger can hold (and int() of thousands of digits is slow)."""
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks", "mo": "days"}
_PER_UNIT = {"mo": 30}
"""A unit counted in another's: a month (``mo``) is 30 days (``m`` is minutes)."""


REPORT_ROW_FIELDS = ("calls", "errors", "blocked", "cached", *TOKEN_COLUMNS, "total_tokens", "cost_usd",
                     "unpriced_calls", "avg_latency_ms", "cache_savings_usd")
"""The fields of each report row after its key (``cost_usd`` is None when every priced-able call was unpriced)."""
EXPORT_FIELDS = ("id", *COLUMNS)
"""The fields of each exported row."""
CLI_NAMES = {"since": "--since", "start": "--from", "end": "--to", "by": "--by"}
HTTP_NAMES = {"start": "from", "end": "to"}


class ReportError(ValueError):
    """A report option that cannot be used (unknown ``by``, bad date, missing ledger).

    ``parameter`` names the Python argument at fault (``since``, ``start``, ``end``, ``by``) or is None;
    :meth:`worded` names it as another interface spells it (the CLI's ``--from``, the URL's ``from``).
    """

    def __init__(self, problem: str, parameter: str | None = None) -> None:
        self.problem = problem
        self.parameter = parameter
        super().__init__(self.worded({}))

    def worded(self, names: dict[str, str]) -> str:
        if self.parameter is None:
            return self.problem
        return f"{names.get(self.parameter, self.parameter)} {self.problem}"


def _json_text(db: Db, key: str) -> str:
    """SQL of an attribution key inside ``attributes_json`` (``key`` is one of ours: written into the SQL)."""
    if db.dialect == "postgresql":
        return f"((attributes_json)::jsonb ->> '{key}')"
    return f"json_extract(attributes_json, '$.{key}')"


def ledger_path(ledger: str | os.PathLike[str] | None) -> Path | str:
    """The ledger a report reads: a SQLite file (Path) or a ``postgresql://`` URL."""
    path = ledger_location(ledger, reading=True)
    assert path is not None  # a reader always gets a location
    return path


def _shown(value: str) -> str:
    """A bad option value quoted in a message, cut to 40 characters (it may be thousands long)."""
    return repr(value if len(value) <= 40 else value[:37] + "...")


def parse_since(value: str, now: datetime) -> datetime:
    match = _DURATION.match(value)
    if not match:
        raise ReportError(f"must look like 24h, 7d, 2w or 3mo (m is minutes), not {_shown(value)}", "since")
    if int(match.group(1)) == 0:
        raise ReportError(f"must be longer than zero, not {_shown(value)}", "since")
    try:
        unit = match.group(2)
        return now - timedelta(**{_UNITS[unit]: int(match.group(1)) * _PER_UNIT.get(unit, 1)})
    except OverflowError:
        raise ReportError(f"reaches before the year 1 ({_shown(value)})", "since") from None


def parse_instant(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"must be a date (2026-11-01) or ISO time, not {_shown(value)}", option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def window(since: str | None, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    stop = parse_instant(end, "end") if end else now
    begin = parse_instant(start, "start") if start else parse_since(since or "7d", stop)
    if begin >= stop:
        raise ReportError(f"must be before the window's end ({begin.isoformat()} >= {stop.isoformat()})", "start")
    return begin, stop


def open_ledger(ledger: str | os.PathLike[str] | None) -> tuple[Db, str]:
    """The ledger's database (read-only use) and its description for messages (never a password)."""
    try:
        db = open_db(ledger_path(ledger), create=False)
    except LedgerError as exc:
        raise ReportError(str(exc)) from None
    return db, db.location


def _aggregate(db: Db, window: Window, by: str, *, per_day: bool = False, limit: int | None = None
               ) -> list[tuple[Any, ...]]:
    """Per group key (and UTC day first, when ``per_day``): calls, errors, blocked, cached, token sums, total,
    cost, unpriced calls, then the latency sum and number of answered (``ok``) calls, then what caching saved.
    ``limit``: only the
    ``limit`` most expensive groups (in the database: the other groups are never fetched)."""
    key_rows, key_rollup = GROUP_KEYS.get(by, ("'total'", "'total'"))
    if "{" in key_rows:  # an attribution key kept in attributes_json (frameworks' run_id and step)
        key_rows = key_rows.format(**{key: _json_text(db, key) for key in ("run_id", "step")})
    if per_day:
        day_rows, day_rollup = GROUP_KEYS["day"]
        key_rows = f"{day_rows} || '|' || {key_rows}"
        key_rollup = None if key_rollup is None else f"{day_rollup} || '|' || {key_rollup}"
    source, params = aggregate_source(window, key_rows, key_rollup)
    counts = ", ".join(f"SUM(CASE WHEN status = '{status}' THEN calls ELSE 0 END)"
                       for status in ("error", "blocked", "cached"))
    sums = ", ".join(f"SUM({c})" for c in (*TOKEN_COLUMNS, "total_tokens", "cost_usd", "unpriced_calls"))
    answered = ("SUM(CASE WHEN status = 'ok' THEN latency_ms_sum ELSE 0 END), "
                "SUM(CASE WHEN status = 'ok' THEN calls ELSE 0 END)")  # latency of answered calls, as stats reads
    statement = (f"SELECT k, SUM(calls), {counts}, {sums}, {answered}, SUM(cache_savings_usd) FROM ({source}) AS s "
                 "GROUP BY k")
    if limit is not None:  # the order report() sorts its rows in
        statement += f" ORDER BY SUM(cost_usd) DESC, SUM(calls) DESC, k LIMIT {int(limit)}"
    found = db.execute(statement, params).fetchall()
    if not per_day:
        return list(found)
    return [(*str(r[0]).split("|", 1), *r[1:]) for r in found]


def _merge(rows: list[tuple[Any, ...]], key: Callable[[tuple[Any, ...]], str]) -> list[tuple[Any, ...]]:
    """Per-day aggregates (day, key, values...) summed per ``key``: (key, values...)."""
    merged: dict[str, list[Any]] = {}
    for r in rows:
        into = merged.setdefault(key(r), [0] * (len(r) - 2))
        for i, value in enumerate(r[2:]):
            into[i] += value or 0
    return [(k, *values) for k, values in merged.items()]


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
        "cost_usd": _cost(values[11], int(values[12] or 0)),
        "unpriced_calls": int(values[12] or 0),
        "avg_latency_ms": round(float(values[13] or 0.0) / answered, 3) if (answered := int(values[14] or 0))
        else 0.0,
        "cache_savings_usd": round(float(values[15] or 0.0), 12),
    }


def _cost(summed: Any, unpriced_calls: int) -> float | None:
    """A group's cost; None (unpriced) when it has unpriced calls and nothing priced to add up."""
    cost = round(float(summed or 0.0), 12)
    return None if unpriced_calls and cost == 0 else cost


def _totals(db: Db, window: Window) -> dict[str, Any]:
    rows = _aggregate(db, window, "total")
    totals = _row_dict(rows[0] if rows else ("total",) + (0,) * 15)
    totals.pop("key")
    return totals


def report(since: str = "7d", by: str = "feature", ledger: str | os.PathLike[str] | None = None, *,
           start: str | None = None, end: str | None = None, limit: int | None = None,
           time_limit: float | None = None) -> dict[str, Any]:
    """Spend and tokens from the ledger grouped ``by`` one key, over ``since`` (or ``start``..``end``).

    Returns exactly what ``tokentrace report --format json`` prints: ``rows`` (most expensive first),
    ``totals``, ``daily`` (cost per UTC day, for a trend) and ``truncated``. ``limit``: at most that many rows, the
    most expensive, chosen in the database (``truncated`` says whether groups were left out); ``totals`` and
    ``daily`` still cover every call. ``time_limit``: seconds the queries may take before a ReportError.
    """
    if by not in GROUP_KEYS:
        raise ReportError(f"must be one of {', '.join(GROUP_KEYS)}, not {by!r}", "by")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ReportError(f"must be a positive whole number, not {limit!r}", "limit")
    begin, stop = window(since, start, end)
    conn, path = open_ledger(ledger)
    truncated = False
    try:
        with conn.time_limit(time_limit):
            if limit is None:
                by_day = _aggregate(conn, Window(begin, stop), by, per_day=True)  # one pass over roll-up and rows
                grouped = _merge(by_day, lambda r: r[1])
            else:  # groups, totals and days each summed in the database: the rows fetched are bounded
                grouped = _aggregate(conn, Window(begin, stop), by, limit=limit + 1)
                truncated = len(grouped) > limit
                grouped = grouped[:limit]
                by_day = _aggregate(conn, Window(begin, stop), "total", per_day=True)
    except conn.errors as exc:
        if conn.timed_out(exc):
            raise ReportError(f"took longer than {time_limit:g} s; ask for a shorter window") from None
        raise ReportError(f"cannot read ledger {path}: {exc}") from None
    finally:
        conn.close()
    rows = [_row_dict(r) for r in grouped]
    totals = _row_dict(next(iter(_merge(by_day, lambda r: "total")), ("total",) + (0,) * 15))
    totals.pop("key")
    daily: dict[str, list[float]] = {}
    for r in by_day:
        day = daily.setdefault(str(r[0]), [0.0, 0, 0])
        day[0] += float(r[12] or 0.0)
        day[1] += int(r[2] or 0)
        day[2] += int(r[13] or 0)
    rows.sort(key=lambda r: (-(r["cost_usd"] or 0.0), -r["calls"], r["key"]))
    return {
        "ledger": str(path),
        "from": begin.isoformat(),
        "to": stop.isoformat(),
        "by": by,
        "rows": rows,
        "totals": totals,
        "daily": [{"day": d, "cost_usd": round(c, 12), "calls": int(n), "unpriced_calls": int(u)}
                  for d, (c, n, u) in sorted(daily.items())],
        "truncated": truncated,
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty list)."""
    if not sorted_values:
        return 0.0
    rank = max(math.ceil(q / 100 * len(sorted_values)), 1)
    return float(sorted_values[rank - 1])


def _percentiles(db: Db, window: Window, exact_up_to: int) -> dict[str, dict[str, float]]:
    """p50/p95/p99 (nearest rank) of each roll-up measure: exact from the rows when there are at most
    ``exact_up_to`` values, else from the histogram (the mean of the bucket holding the rank, within 4.4%)."""
    statement, params = histogram_sql(window)
    buckets: dict[str, list[tuple[int, float]]] = {name: [] for name in MEASURES}
    for measure, _bucket, n, total in db.execute(statement, params).fetchall():
        buckets[str(measure)].append((int(n), float(total)))
    out = {}
    for name, (column, condition) in MEASURES.items():
        count = sum(n for n, _ in buckets[name])
        if count <= exact_up_to:
            where, where_params = window.all_rows_where()
            values = [float(r[0]) for r in db.execute(
                f"SELECT {column} FROM llm_usage WHERE {where} AND {condition} ORDER BY {column}",
                where_params).fetchall()]
            out[name] = {f"p{q}": _percentile(values, q) for q in (50, 95, 99)}
        else:
            out[name] = {f"p{q}": _bucket_percentile(buckets[name], count, q) for q in (50, 95, 99)}
    return out


def _bucket_percentile(buckets: list[tuple[int, float]], count: int, q: float) -> float:
    """Nearest-rank percentile over ascending (count, sum) buckets: the mean of the bucket holding the rank."""
    rank, seen = max(math.ceil(q / 100 * count), 1), 0
    for n, total in buckets:
        seen += n
        if seen >= rank:
            return total / n
    return 0.0


def stats(since: str = "7d", ledger: str | os.PathLike[str] | None = None, *, start: str | None = None,
          end: str | None = None, exact_up_to: int = EXACT_PERCENTILES_UP_TO) -> dict[str, Any]:
    """Totals, per-call tokens and latency percentiles (p50/p95/p99), and cache hit ratios."""
    begin, stop = window(since, start, end)
    conn, path = open_ledger(ledger)
    try:
        span = Window(begin, stop)
        totals = _totals(conn, span)
        percentiles = _percentiles(conn, span, exact_up_to)
    except conn.errors as exc:
        raise ReportError(f"cannot read ledger {path}: {exc}") from None
    finally:
        conn.close()
    all_input = totals["input_tokens"] + totals["cache_read_tokens"] + totals["cache_write_tokens"]
    answered = totals["calls"] - totals["blocked"]
    return {
        "ledger": str(path),
        "from": begin.isoformat(),
        "to": stop.isoformat(),
        "totals": totals,
        "tokens_per_call": percentiles["tokens"],
        "latency_ms": {k: round(v, 3) for k, v in percentiles["latency"].items()},
        "ttft_ms": {k: round(v, 3) for k, v in percentiles["ttft"].items()},
        "prompt_cache_hit_ratio": totals["cache_read_tokens"] / all_input if all_input else 0.0,
        "response_cache_hit_ratio": totals["cached"] / answered if answered else 0.0,
    }


def export_rows(since: str = "7d", ledger: str | os.PathLike[str] | None = None, *, start: str | None = None,
                end: str | None = None) -> Iterator[dict[str, Any]]:
    """Every ledger row in the window, oldest first, as dicts (``id`` plus the ledger columns)."""
    begin, stop = window(since, start, end)
    conn, path = open_ledger(ledger)
    try:
        where, params = Window(begin, stop).all_rows_where()
        cursor = conn.execute(f"SELECT id, {', '.join(COLUMNS)} FROM llm_usage WHERE {where} ORDER BY id", params)
        names = list(EXPORT_FIELDS)
        for row in cursor:
            yield dict(zip(names, row, strict=True))
    except conn.errors as exc:
        raise ReportError(f"cannot read ledger {path}: {exc}") from None
    finally:
        conn.close()


def _csv_value(name: str, value: Any) -> Any:
    """Floats in plain decimal notation: costs to 12 places (never ``2.79e-05``), milliseconds to 3."""
    if not isinstance(value, float):
        return value
    if name.endswith("_ms"):
        return f"{value:.3f}"
    return f"{value:.12f}".rstrip("0").rstrip(".") or "0"


def to_csv(rows: list[dict[str, Any]], fieldnames: list[str] | tuple[str, ...] | None = None) -> str:
    """Rows as CSV with a header line (also for no rows, when ``fieldnames`` is given)."""
    out = io.StringIO()
    names = list(fieldnames) if fieldnames is not None else list(rows[0]) if rows else []
    if names:
        writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv_value(k, v) for k, v in row.items()} for row in rows)
    return out.getvalue()


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)


def _used(spent: float, limit: float | None) -> float:
    if limit is None:
        return 0.0
    return spent / limit if limit else float(spent > 0)


def budget_row(budget: Budget, spent_usd: float, spent_tokens: int, calls: int | None = None) -> dict[str, Any]:
    """One budget's status as the CLI and the demo show it; ``used`` is the largest of the USD, token and (with
    ``calls``) request ratios. ``period`` is the calendar period, or ``last <window>``."""
    begin, end = budget.period_bounds()
    requests = {} if budget.limit_requests is None else {
        "spent_requests": calls or 0, "limit_requests": budget.limit_requests}
    return {
        **requests,
        "name": budget.name, "period": budget.span, "action": budget.action,
        "scope": ", ".join(f"{k}={v}" for k, v in (budget.scope or {}).items()),
        "period_start": begin.isoformat(), "period_end": end.isoformat(),
        "spent_usd": round(spent_usd, 12), "spent_tokens": spent_tokens,
        "limit_usd": budget.limit_usd, "limit_tokens": budget.limit_tokens,
        "used": round(max(_used(spent_usd, budget.limit_usd), _used(spent_tokens, budget.limit_tokens),
                          _used(calls or 0, budget.limit_requests)), 6),
    }


def _limit_or_default(budget: Budget, principal: str) -> float | None:
    try:
        return budget.limit_of(principal)
    except Exception:  # the app's own limit_for failing here: show the default limit
        return None


SUMMARY_PRINCIPALS = 1000
"""A templated budget's summary counts, among its biggest spenders up to this many, those at and near their limit."""


def budget_status(budgets: list[Budget], ledger: str | os.PathLike[str] | None = None, *,
                  top: int = 0) -> list[dict[str, Any]]:
    """Spend in each budget's current period according to the ledger, against its limits. A templated budget
    (``per=``) is a row for all its principals together (``principals``: how many spent; ``at_limit`` and
    ``near_limit``: how many of its biggest ``counted_principals`` spenders are at or over their own limit, and at
    80% of it or more), then, with ``top``, a row for each of the ``top`` principals nearest their own limit."""
    conn, path = open_ledger(ledger)
    try:
        rows = []
        for budget in budgets:
            begin, _ = budget.period_bounds()
            if not budget.per_keys:
                calls = calls_since(conn, budget, begin) if budget.limit_requests is not None else None
                rows.append(budget_row(budget, *spent_since(conn, budget, begin), calls))
                continue
            row = budget_row(budget, *spent_since(conn, budget, begin))
            spenders = spent_by_principal(conn, budget, begin, max(top * 10, SUMMARY_PRINCIPALS)
                                          + len(budget.limits or {}))
            accounts = [budget_row(budget.account(p, _limit_or_default(budget, p)), usd_spent, tokens)
                        for p, usd_spent, tokens in spenders]
            row.update(per=", ".join(budget.per_keys), principals=principal_count(conn, budget, begin), used=0.0,
                       at_limit=sum(a["used"] >= 1.0 for a in accounts),
                       near_limit=sum(0.8 <= a["used"] < 1.0 for a in accounts),
                       counted_principals=len(accounts))
            rows.append(row)
            if top:
                rows += sorted(accounts, key=lambda r: -r["used"])[:top]
        return rows
    except conn.errors as exc:
        raise ReportError(f"cannot read ledger {path}: {exc}") from None
    finally:
        conn.close()
