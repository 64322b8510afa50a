"""What the ledger says a budget has spent: the SQL over its rows and hourly roll-up (a budget's scope, its spend
and calls since a moment, its principals' spend), and the running sums each process keeps per budget.

Spend is a ``SUM`` over the period and scope. A process keeps a running sum up to the last row id it has read (rows
are append-only and their ids increase in commit order), so each read adds only the rows written since. A rolling
window moves with every call, so it is read whole: whole hours from the roll-up, the edges from the rows.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from ..ledger.db import iso_utc
from ..ledger.rollup import CHARGED_TOKENS, CHARGED_USD, Window, aggregate_source
from ..ledger.store import Db
from . import Budget
from . import principal_spend as _principal_spend

SCOPE_COLUMNS = ("feature", "session_id", "user_id", "agent_id")
MAX_RUNNING_SUMS = 100_000
"""Running sums kept per process (one per budget or principal account); the least recently read is forgotten."""


def _key_sql(db: Db, key: str) -> tuple[str, list[Any]]:
    """SQL (and parameters) of a row's value for an attribution key: its own column for the standard keys and
    ``provider``, the model asked for for ``model``, else the key in ``attributes_json``."""
    if key in SCOPE_COLUMNS or key == "provider":
        return key, []
    if key == "model":  # the model asked for, as admission sees it
        return "request_model", []
    return db.json_field("attributes_json"), [key]


def _scope_filter(db: Db, budget: Budget) -> tuple[str, list[Any]]:
    """WHERE clause (and parameters) of the rows that count against ``budget``, time aside."""
    where = ["status IN ('ok', 'error')"]
    params: list[Any] = []
    for key, value in (budget.scope or {}).items():
        column, key_params = _key_sql(db, key)
        where.append(f"{column} = ?")
        params += [*key_params, value]
    return " AND ".join(where), params


def principal_sql(db: Db, budget: Budget) -> tuple[str, list[Any]]:
    """SQL (and parameters) of a row's principal under a templated budget: its ``per`` key values joined as
    ``budgets.join_principal`` joins them (a backslash and a ``/`` inside a value escaped, for two keys or more)."""
    parts: list[str] = []
    params: list[Any] = []
    several = len(budget.per_keys) > 1
    for key in budget.per_keys:
        column, key_params = _key_sql(db, key)
        value = f"COALESCE({column}, '')"
        parts.append(f"REPLACE(REPLACE({value}, '\\', '\\\\'), '/', '\\/')" if several else value)
        params += key_params
    return " || '/' || ".join(parts), params


def _present_sql(db: Db, budget: Budget) -> tuple[str, list[Any]]:
    """SQL (and parameters): the row has a non-empty value for every ``per`` key (else it belongs to no principal)."""
    where: list[str] = []
    params: list[Any] = []
    for key in budget.per_keys:
        column, key_params = _key_sql(db, key)
        where.append(f"COALESCE({column}, '') <> ''")
        params += key_params
    return " AND ".join(where), params


def spent_by_principal(db: Db, budget: Budget, begin: datetime, limit: int) -> list[tuple[str, float, int]]:
    """(principal, USD, tokens) of a templated budget's ``limit`` biggest spenders since ``begin`` (the
    per-principal table when it holds the period, else the rows)."""
    kept = _principal_spend.kept(db, budget, begin)
    if kept is not None:
        rows = db.execute(f"SELECT principal, charged_usd, charged_tokens FROM llm_principal_spend WHERE budget_id = ? "
                          f"AND period_start = ? ORDER BY 2 DESC, 3 DESC LIMIT {int(limit)}",
                          (kept, iso_utc(begin.timestamp()))).fetchall()
        return [(str(p), float(u), int(t)) for p, u, t in rows]
    where, params = _scope_filter(db, budget)
    key, key_params = principal_sql(db, budget)
    present, present_params = _present_sql(db, budget)
    rows = db.execute(
        f"SELECT {key} AS p, SUM({CHARGED_USD}), SUM({CHARGED_TOKENS}) FROM llm_usage "
        f"WHERE ts_utc >= ? AND {where} AND {present} GROUP BY p ORDER BY 2 DESC, 3 DESC LIMIT {int(limit)}",
        [*key_params, iso_utc(begin.timestamp()), *params, *present_params]).fetchall()
    return [(str(p), float(u or 0.0), int(t or 0)) for p, u, t in rows if p]


def principal_count(db: Db, budget: Budget, begin: datetime) -> int:
    """How many principals of a templated budget have rows since ``begin``."""
    kept = _principal_spend.kept(db, budget, begin)
    if kept is not None:
        return int(db.execute("SELECT COUNT(*) FROM llm_principal_spend WHERE budget_id = ? AND period_start = ?",
                              (kept, iso_utc(begin.timestamp()))).fetchone()[0])
    where, params = _scope_filter(db, budget)
    key, key_params = principal_sql(db, budget)
    present, present_params = _present_sql(db, budget)
    row = db.execute(f"SELECT COUNT(DISTINCT {key}) FROM llm_usage WHERE ts_utc >= ? AND {where} AND {present}",
                     [*key_params, iso_utc(begin.timestamp()), *params, *present_params]).fetchone()
    return int(row[0] or 0)


def _summed_since(db: Db, budget: Budget, begin: datetime) -> tuple[int, float, int]:
    """(calls, USD, tokens) counting against ``budget`` since ``begin``: a principal account's period from the
    per-principal table when it holds it; else whole hours from the roll-up when the scope is one the roll-up keeps
    (none, ``feature``, ``provider``), the rows otherwise."""
    kept = _principal_spend.read(db, budget, begin) if budget.window is None else _window_kept(db, budget, begin)
    if kept is not None:
        return kept
    where, params = _scope_filter(db, budget)
    on_rollup = set(budget.scope or {}) <= {"feature", "provider"}
    source, source_params = aggregate_source(Window(begin), "''", "''" if on_rollup else None, where, params)
    row = db.execute("SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(charged_usd), 0), COALESCE(SUM(charged_tokens), 0) "
                     f"FROM ({source}) AS s", source_params).fetchone()
    return int(row[0]), float(row[1]), int(row[2])


def _window_kept(db: Db, budget: Budget, begin: datetime) -> tuple[int, float, int] | None:
    """A rolling-window account's (calls, USD, tokens) since ``begin``: its whole UTC hours from the per-principal
    table, the partial first hour from the rows; None when the table does not hold those hours."""
    first_hour = begin.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if first_hour < begin:
        first_hour += timedelta(hours=1)
    hours = _principal_spend.read_hours(db, budget, first_hour)
    if hours is None:
        return None
    where, params = _scope_filter(db, budget)
    edge = db.execute(f"SELECT COUNT(*), COALESCE(SUM({CHARGED_USD}), 0), COALESCE(SUM({CHARGED_TOKENS}), 0) "
                      f"FROM llm_usage WHERE ts_utc >= ? AND ts_utc < ? AND {where}",
                      [iso_utc(begin.timestamp()), iso_utc(first_hour.timestamp()), *params]).fetchone()
    return hours[0] + int(edge[0]), hours[1] + float(edge[1]), hours[2] + int(edge[2])


def calls_since(db: Db, budget: Budget, begin: datetime) -> int:
    """Calls (answered or failed) the ledger records for ``budget``'s scope since ``begin``."""
    return _summed_since(db, budget, begin)[0]


def spent_since(db: Db, budget: Budget, begin: datetime) -> tuple[float, int]:
    """(USD, tokens) the ledger records for ``budget``'s scope since ``begin``."""
    return _summed_since(db, budget, begin)[1:]


class SpendCounter:
    """Running (USD, tokens) per budget and period, extended by the rows written since the last read."""

    def __init__(self) -> None:
        self._sums: OrderedDict[str, tuple[str, int, float, int]] = OrderedDict()
        """name -> (period start, last id, usd, tokens), the most recently read last; bounded (principals)."""
        self._lock = threading.Lock()
        """Admissions of different budgets read at once: the table itself changes under this lock (one budget's
        entry is only ever read and extended by one admission at a time)."""

    def spent(self, db: Db, budget: Budget, now: float) -> tuple[float, int]:
        begin = budget.period_bounds(datetime.fromtimestamp(now, tz=UTC))[0]
        if budget.window_s is not None:  # a rolling window moves with every call: read it whole (roll-up + edges)
            return spent_since(db, budget, begin)
        kept = _principal_spend.read(db, budget, begin)
        if kept is not None:  # a principal's period: one row the writers keep, no running sum needed
            return kept[1], kept[2]
        start = iso_utc(begin.timestamp())
        period, last_id, usd, tokens = self._sums.get(budget.name, (start, -1, 0.0, 0))
        if period != start or last_id < 0:  # a new period, or the first read: the whole period so far
            with db.snapshot():
                last_id = db.execute("SELECT COALESCE(MAX(id), 0) FROM llm_usage").fetchone()[0]
                usd, tokens = spent_since(db, budget, begin)
        else:
            top = db.execute("SELECT COALESCE(MAX(id), 0) FROM llm_usage").fetchone()[0]
            if top > last_id:
                where, params = _scope_filter(db, budget)
                row = db.execute(f"SELECT COALESCE(SUM({CHARGED_USD}), 0), COALESCE(SUM({CHARGED_TOKENS}), 0) "
                                 f"FROM llm_usage "
                                 f"WHERE id > ? AND id <= ? AND ts_utc >= ? AND {where}",
                                 [last_id, top, start, *params]).fetchone()
                usd, tokens, last_id = usd + float(row[0]), tokens + int(row[1]), top
        with self._lock:
            self._sums[budget.name] = (start, int(last_id), usd, tokens)
            self._sums.move_to_end(budget.name)
            if len(self._sums) > MAX_RUNNING_SUMS:  # a forgotten principal's sum is read again from the ledger
                self._sums.popitem(last=False)
        return usd, tokens

    def reset(self) -> None:
        with self._lock:
            self._sums.clear()
