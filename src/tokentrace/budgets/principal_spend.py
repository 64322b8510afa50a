"""Per-principal spend kept in the writer's transaction (schema 8): for each templated budget a ledger knows
(``per=``), one row per principal and period with its calls, charged USD and tokens. A calendar budget's period is
its own (a day in its zone, a month, ...); a rolling window's is the UTC hour, and a window is read as its whole
hours from here plus the rows of its partial first hour (``budgets.spend``).

A templated budget is *registered* once per ledger by any process that has it (``prepare``). From then on every
writer adds its rows to the table in the transaction that appends them (``fold``, beside the roll-up), and the
registering process adds the rows written before, from the start of the period it was registered in, in steps of
``BACKFILL_ROWS`` rows, one transaction each (``prepare`` again). Once that is complete, a principal's spend in
any period from then on is one primary-key read (``read``), however many principals and rows the ledger holds; until
then readers sum the rows (``budgets.spend``).

The table is keyed by the principal exactly as admission names it (``Budget.principal_of``), and its sums equal
the rows' because every write and every registration step holds the ledger's one write lock.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..ledger.db import COLUMNS, iso_utc
from . import Budget

TABLES = """
CREATE TABLE IF NOT EXISTS llm_principal_budgets (
    id         {id_type},
    signature  TEXT    NOT NULL UNIQUE,
    kept_above BIGINT  NOT NULL,
    filled_to  BIGINT  NOT NULL,
    since_utc  TEXT    NOT NULL,
    complete   INTEGER NOT NULL DEFAULT 0,
    last_used  TEXT    NOT NULL,
    retired    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS llm_principal_spend (
    budget_id      BIGINT NOT NULL,
    period_start   TEXT   NOT NULL,
    principal      TEXT   NOT NULL,
    calls          BIGINT NOT NULL,
    charged_usd    {real} NOT NULL,
    charged_tokens BIGINT NOT NULL,
    PRIMARY KEY (budget_id, principal, period_start)
){without_rowid};
CREATE INDEX IF NOT EXISTS llm_principal_spend_period ON llm_principal_spend (budget_id, period_start)
"""
"""``llm_principal_budgets``: one row per registered template. ``signature`` is the JSON of its per keys, scope,
period and timezone; writers keep rows with ids above ``kept_above``; the backfill has covered rows with ids up to
``filled_to`` whose ``ts_utc`` is at least ``since_utc``; ``complete`` once it reached ``kept_above``; ``last_used``
when a process that has it last said so (hourly); ``retired`` once no process had for ``RETIRE_AFTER_S``.
``llm_principal_spend``: per template, period start (UTC ISO) and principal, the calls and charge that count. SQLite
keeps it in its primary key's order and the period index holds no sums, so an update changes one B-tree (on
PostgreSQL it can be a HOT update)."""

SINCE_SCHEMA = 8
"""The ledger schema that has these tables: a reader of a ledger an earlier release wrote reads the rows."""
RETIRE_AFTER_S = 7 * 86400.0
"""A registered template no process has used this long is retired: writers stop keeping it and its rows are deleted
(a process that has it again registers it anew)."""
DELETE_ROWS = 5_000
"""Rows of a retired template deleted per transaction."""
BACKFILL_ROWS = 2_000
"""Rows one backfill transaction reads (the ledger's writers and exact admissions wait for it: about 50 ms on a
SQLite ledger of 500,000 rows, mostly the upserts of as many principals and the WAL checkpoints they cause)."""
_UPSERT = ("INSERT INTO llm_principal_spend (budget_id, period_start, principal, calls, charged_usd, charged_tokens) "
           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (budget_id, principal, period_start) DO UPDATE SET "
           "calls = llm_principal_spend.calls + excluded.calls, "
           "charged_usd = llm_principal_spend.charged_usd + excluded.charged_usd, "
           "charged_tokens = llm_principal_spend.charged_tokens + excluded.charged_tokens")
_READ = ("ts_utc", "provider", "request_model", "feature", "session_id", "user_id", "agent_id", "attributes_json",
         "status", "cost_usd", "total_tokens", "charged_usd", "charged_tokens")
"""The columns a row's principal and charge come from (all the backfill reads)."""
_COLUMN = {name: COLUMNS.index(name) for name in _READ}
"""Their positions in a row being written (COLUMNS order)."""
_READ_COLUMN = {name: i for i, name in enumerate(_READ)}
"""Their positions in a row the backfill read."""
_OWN_COLUMNS = ("feature", "session_id", "user_id", "agent_id")
_COUNTED = ("ok", "error")


def signature(budget: Budget) -> str | None:
    """The key of a templated budget, or of one of its accounts, in the registry (a rolling window's is its scope
    by UTC hour); None for a budget that is not templated."""
    if budget.per is None:
        return None
    per = [budget.per] if isinstance(budget.per, str) else list(budget.per)
    scope = {k: v for k, v in (budget.scope or {}).items() if budget.principal is None or k not in per}
    period, zone = (budget.period, budget.timezone) if budget.window is None else ("hour", "UTC")
    return json.dumps({"per": per, "scope": scope, "period": period, "timezone": zone},
                      sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def _budget_of(text: str) -> Budget:
    """The budget a signature describes (its keys, scope and period; the limit is of no use here)."""
    spec = json.loads(text)
    return Budget("principal-spend", period=spec["period"], limit_usd=1.0, scope=spec["scope"] or None,
                  timezone=spec["timezone"], per=tuple(spec["per"]))


class _Template:
    """A registered template as the writer applies it to rows."""

    def __init__(self, budget_id: int, text: str) -> None:
        self.id = budget_id
        self.budget = _budget_of(text)
        keys = (*self.budget.per_keys, *(self.budget.scope or {}))
        self.needs_json = any(k not in _OWN_COLUMNS and k not in ("provider", "model") for k in keys)
        self._periods: dict[str, str] = {}
        """ts_utc up to the minute -> the UTC ISO start of its period (rows come in time order: mostly one)."""

    def period_of(self, ts: str) -> str:
        minute = ts[:16]
        start = self._periods.get(minute)
        if start is None:
            if len(self._periods) > 4096:
                self._periods.clear()
            moment = datetime.fromisoformat(ts)
            start = self._periods[minute] = iso_utc(self.budget.period_bounds(moment)[0].timestamp())
        return start


_templates: dict[tuple[int, str], _Template] = {}


def _registered(db: Any) -> list[_Template]:
    """Every template registered in the ledger (read in the caller's transaction, so none is missed)."""
    found = []
    for budget_id, text in db.execute("SELECT id, signature FROM llm_principal_budgets WHERE retired = 0").fetchall():
        template = _templates.get((int(budget_id), text))
        if template is None:
            template = _templates[(int(budget_id), text)] = _Template(int(budget_id), text)
        found.append(template)
    return found


def _add(templates: Sequence[_Template], rows: Sequence[Sequence[Any]], sums: dict[tuple[int, str, str], list[Any]],
         col: dict[str, int] = _COLUMN) -> None:
    """Add each counted row's charge to its principal's sum under each template it falls in (``col``: where each
    column is in a row). Runs in the writer's transaction: the row's attribution is parsed once per distinct text."""
    status_at, attrs_at, ts_at = col["status"], col["attributes_json"], col["ts_utc"]
    provider_at, model_at = col["provider"], col["request_model"]
    usd_at, cost_at = col["charged_usd"], col["cost_usd"]
    tokens_at, total_at = col["charged_tokens"], col["total_tokens"]
    own = [(key, col[key]) for key in _OWN_COLUMNS]
    needs_json = any(t.needs_json for t in templates)
    last_text, last_attrs = None, {}
    for row in rows:
        if row[status_at] not in _COUNTED:
            continue
        view: dict[str, Any] = {key: row[at] for key, at in own if row[at]}
        if needs_json:
            text = row[attrs_at]
            if text != last_text:
                try:
                    parsed = json.loads(text or "{}")
                except ValueError:
                    parsed = {}
                last_text, last_attrs = text, parsed if isinstance(parsed, dict) else {}
            if last_attrs:
                view = {**last_attrs, **view}
        provider, model = row[provider_at], row[model_at]
        usd = row[usd_at]
        if usd is None:
            usd = row[cost_at] or 0.0
        tokens = row[tokens_at]
        if tokens is None:
            tokens = row[total_at] or 0
        for template in templates:
            budget = template.budget
            if not budget.applies_to(view, provider, model):
                continue
            principal = budget.principal_of(view, provider, model)
            if principal is None:
                continue
            key = (template.id, template.period_of(row[ts_at]), principal)
            entry = sums.get(key)
            if entry is None:
                sums[key] = [1, float(usd), int(tokens)]
            else:
                entry[0] += 1
                entry[1] += usd
                entry[2] += tokens


def _write(db: Any, sums: dict[tuple[int, str, str], list[Any]]) -> None:
    if sums:
        db.execute_many(_UPSERT, [(*key, *entry) for key, entry in sums.items()])


def fold(db: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Add ``rows`` (being appended, in COLUMNS order) to every registered template's sums, in the caller's write
    transaction."""
    templates = _registered(db)
    if templates:
        sums: dict[tuple[int, str, str], list[Any]] = {}
        _add(templates, rows, sums)
        _write(db, sums)


def prepare(db: Any, template: Budget, now: float, steps: int = 1) -> bool:
    """Register ``template`` in the ledger if it is not yet, and take up to ``steps`` backfill steps (a
    transaction each). True once the table holds every row of ``template`` from its registration period on."""
    text = signature(template)
    if text is None:
        return False
    registered = db.execute("SELECT complete FROM llm_principal_budgets WHERE signature = ?", (text,)).fetchone()
    if registered is None:
        back = template.window_s or 0.0  # a window's table is of use once it holds the whole window
        since = iso_utc(_budget_of(text).period_bounds(datetime.fromtimestamp(now - back, tz=UTC))[0].timestamp())
        # where the backfill starts, read before the write lock is taken (a scan of the period's index): a row
        # committed later has a larger id, so it is inside the range either way
        with db.snapshot():
            first = db.execute("SELECT MIN(id) FROM llm_usage WHERE ts_utc >= ?", (since,)).fetchone()[0]
            start = int(first) - 1 if first is not None else \
                int(db.execute("SELECT COALESCE(MAX(id), 0) FROM llm_usage").fetchone()[0])
        with db.transaction():
            if db.execute("SELECT 1 FROM llm_principal_budgets WHERE signature = ?", (text,)).fetchone() is None:
                top = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM llm_usage").fetchone()[0])
                db.execute("INSERT INTO llm_principal_budgets (signature, kept_above, filled_to, since_utc, "
                           "complete, last_used) VALUES (?, ?, ?, ?, ?, ?)",
                           (text, top, start, since, int(start >= top), iso_utc(now)))
                if start >= top:  # no row of this period yet: nothing to backfill
                    return True
    elif registered[0]:
        return True
    return any(_backfill_step(db, text) for _ in range(steps))


def touch(db: Any, templates: Sequence[Budget], now: float) -> list[Budget]:
    """Say that this process has ``templates`` (now); returns those the ledger no longer has registered (retired
    while no process had them): the caller registers them again."""
    texts = {text: budget for budget in templates if (text := signature(budget)) is not None}
    with db.transaction():
        found = {row[0] for row in db.execute("SELECT signature FROM llm_principal_budgets").fetchall()}
        used = [(iso_utc(now), text) for text in texts if text in found]
        if used:
            db.execute_many("UPDATE llm_principal_budgets SET last_used = ? WHERE signature = ?", used)
    return [budget for text, budget in texts.items() if text not in found]


def retire_idle(db: Any, now: float) -> None:
    """Retire the templates no process has used for ``RETIRE_AFTER_S`` (writers stop keeping them at once; the name
    is freed for a new registration), then delete up to ``DELETE_ROWS`` rows of retired ones, and a retired
    template once it has none left."""
    with db.transaction():
        db.execute("UPDATE llm_principal_budgets SET retired = 1, signature = signature || '#retired:' || id "
                   "WHERE retired = 0 AND last_used < ?", (iso_utc(now - RETIRE_AFTER_S),))
    retired = [int(row[0]) for row in db.execute("SELECT id FROM llm_principal_budgets WHERE retired = 1").fetchall()]
    for budget_id in retired:
        with db.transaction():
            doomed = [row[0] for row in db.execute(
                f"SELECT principal FROM llm_principal_spend WHERE budget_id = ? LIMIT {DELETE_ROWS}",
                (budget_id,)).fetchall()]
            if doomed:
                db.execute_many("DELETE FROM llm_principal_spend WHERE budget_id = ? AND principal = ?",
                                [(budget_id, principal) for principal in set(doomed)])
            else:
                db.execute("DELETE FROM llm_principal_budgets WHERE id = ?", (budget_id,))


def _backfill_step(db: Any, text: str) -> bool:
    with db.transaction():
        row = db.execute("SELECT id, kept_above, filled_to, since_utc, complete FROM llm_principal_budgets "
                         "WHERE signature = ?", (text,)).fetchone()
        budget_id, kept_above, filled_to, since, complete = row
        if complete:
            return True
        upto = min(int(filled_to) + BACKFILL_ROWS, int(kept_above))
        # by id range only: with a condition on ts_utc too, SQLite may walk the whole period's ts index instead
        rows = db.execute(f"SELECT {', '.join(_READ)} FROM llm_usage WHERE id > ? AND id <= ?",
                          (filled_to, upto)).fetchall()
        at = _READ_COLUMN["ts_utc"]
        rows = [row for row in rows if row[at] >= since]
        template = next(t for t in _registered(db) if t.id == budget_id)
        sums: dict[tuple[int, str, str], list[Any]] = {}
        _add([template], rows, sums, _READ_COLUMN)
        _write(db, sums)
        done = upto >= int(kept_above)
        db.execute("UPDATE llm_principal_budgets SET filled_to = ?, complete = ? WHERE id = ?",
                   (upto, int(done), budget_id))
        return done


def kept(db: Any, budget: Budget, begin: datetime) -> int | None:
    """The registry id under which the table holds ``budget``'s (a template's) period starting at ``begin`` in
    full; None when the rows must be read instead."""
    text = signature(budget)
    if text is None or budget.window is not None or db.version < SINCE_SCHEMA or \
            budget.period_bounds(begin)[0] != begin:
        return None
    return _holding(db, text, iso_utc(begin.timestamp()))


def _holding(db: Any, text: str, start: str) -> int | None:
    """The registry id of ``text`` when its table is complete for everything from ``start`` (UTC ISO) on."""
    row = db.execute("SELECT id, since_utc, complete FROM llm_principal_budgets WHERE signature = ?",
                     (text,)).fetchone()
    return int(row[0]) if row is not None and row[2] and start >= row[1] else None


def read_hours(db: Any, budget: Budget, first_hour: datetime) -> tuple[int, float, int] | None:
    """(calls, USD, tokens) a rolling-window account has used in the UTC hours from ``first_hour`` on, from the
    table; None when the table does not hold them all."""
    text = signature(budget)
    if budget.principal is None or budget.window is None or text is None or db.version < SINCE_SCHEMA:
        return None
    start = iso_utc(first_hour.timestamp())
    budget_id = _holding(db, text, start)
    if budget_id is None:
        return None
    row = db.execute("SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(charged_usd), 0), COALESCE(SUM(charged_tokens), 0) "
                     "FROM llm_principal_spend WHERE budget_id = ? AND principal = ? AND period_start >= ?",
                     (budget_id, budget.principal, start)).fetchone()
    return int(row[0]), float(row[1]), int(row[2])


def read_statement(db: Any, budget: Budget, begin: datetime) -> tuple[str, tuple[Any, ...]] | None:
    """The one query ``read`` runs for this account and period (None: it runs none), for sending it ahead."""
    text = signature(budget)
    if budget.principal is None or budget.window is not None or text is None or db.version < SINCE_SCHEMA or \
            budget.period_bounds(begin)[0] != begin:
        return None
    return ("SELECT b.complete, b.since_utc, s.calls, s.charged_usd, s.charged_tokens "
            "FROM llm_principal_budgets b LEFT JOIN llm_principal_spend s ON s.budget_id = b.id AND "
            "s.period_start = ? AND s.principal = ? WHERE b.signature = ?",
            (iso_utc(begin.timestamp()), budget.principal, text))


def read(db: Any, budget: Budget, begin: datetime) -> tuple[int, float, int] | None:
    """(calls, USD, tokens) an account has used in the period starting at ``begin``, from the table (one query);
    None when the table does not hold it (the caller reads the rows)."""
    statement = read_statement(db, budget, begin)
    if statement is None:
        return None
    row = db.execute(*statement).fetchone()
    if row is None or not row[0] or statement[1][0] < row[1]:
        return None
    return (0, 0.0, 0) if row[2] is None else (int(row[2]), float(row[3]), int(row[4]))
