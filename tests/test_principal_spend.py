"""The per-principal spend table (schema 8): kept by every writer in its transaction once a templated budget is
registered, backfilled from the registration period's start, and then read by admission in one query: on SQLite
and a real PostgreSQL, its sums equal the rows' for every principal, whatever the ``per`` key."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tokentrace import Budget
from tokentrace.budgets.principal_spend import BACKFILL_ROWS, prepare, read, read_hours
from tokentrace.budgets.spend import principal_count, spent_by_principal, spent_since
from tokentrace.budgets.store import SharedBudgets
from tokentrace.ledger.db import row_of
from tokentrace.ledger.store import open_db

from .ledger_helpers import record


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return str(request.getfixturevalue("pg_ledger"))


def _rows(now: float, count: int, start: int = 0) -> list[Any]:
    """``count`` calls of 7 tenants (extra key ``tenant``) over two models; every 5th failed, every 7th blocked."""
    out = []
    for i in range(start, start + count):
        status = "blocked" if i % 7 == 0 else "error" if i % 5 == 0 else "ok"
        out.append(record(now - i % 600, cost=0.001 * (1 + i % 3), status=status, tenant=f"t{i % 7}",
                          model="gpt-5" if i % 2 else "gpt-4o-mini", feature="chat"))
    return out


def _expected(records: list[Any], model: str | None = None) -> dict[str, tuple[int, float, int]]:
    """By hand: per tenant, the calls, USD and tokens that count (answered or failed; blocked ones do not)."""
    sums: dict[str, list[Any]] = defaultdict(lambda: [0, 0.0, 0])
    for r in records:
        if r.status in ("ok", "error") and (model is None or r.request_model == model):
            entry = sums[r.attributes["tenant"]]
            entry[0] += 1
            entry[1] += r.cost_usd
            entry[2] += r.usage.total
    return {k: (v[0], v[1], v[2]) for k, v in sums.items()}


def _inside_today() -> float:
    """Now, or 700 s into today (UTC) when today is younger: the rows of ``_rows`` all fall in one day."""
    now = time.time()
    return max(now, now - now % 86400 + 700)


def test_the_table_is_backfilled_then_kept_by_writers_and_equals_the_rows(ledger: str) -> None:
    now = _inside_today()
    template = Budget("per-tenant", limit_usd=1.0, per="tenant", action="block")
    on_gpt5 = Budget("gpt5-per-tenant", limit_usd=1.0, per="tenant", scope={"model": "gpt-5"}, action="block")
    before = _rows(now, 2 * BACKFILL_ROWS + 123)  # more than two backfill steps, written before registration
    after = _rows(now, 500, start=len(before))
    db = open_db(ledger, create=True)
    try:
        db.insert([row_of(r) for r in before])
        begin = template.period_bounds(datetime.fromtimestamp(now, tz=UTC))[0]
        assert read(db, template.account("t1"), begin) is None  # not registered: admission reads the rows
        assert prepare(db, template, now, steps=1) is False  # registered, first step of three taken
        db.insert([row_of(r) for r in after])  # a writer keeps the rows above the registration point meanwhile
        assert read(db, template.account("t1"), begin) is None  # still incomplete: the rows decide
        assert prepare(db, template, now, steps=5) is True
        assert prepare(db, on_gpt5, now, steps=5) is True
        for budget, model in ((template, None), (on_gpt5, "gpt-5")):
            expected = _expected(before + after, model)
            for tenant, (calls, usd, tokens) in expected.items():
                account = budget.account(tenant)
                kept = read(db, account, begin)
                assert kept is not None
                assert kept[0] == calls and kept[2] == tokens and kept[1] == pytest.approx(usd, rel=1e-12)
                assert spent_since(db, account, begin)[0] == pytest.approx(usd, rel=1e-12)
            assert read(db, budget.account("nobody"), begin) == (0, 0.0, 0)
            assert principal_count(db, budget, begin) == len(expected)
            top = spent_by_principal(db, budget, begin, 3)
            assert [u for _, u, _ in top] == pytest.approx(sorted((v[1] for v in expected.values()), reverse=True)[:3])
            assert all(expected[p][1] == pytest.approx(u) and expected[p][2] == t for p, u, t in top)
    finally:
        db.close()


def test_periods_in_a_zone_an_odd_offset_from_utc_are_kept_apart(ledger: str) -> None:
    """Kathmandu is UTC+5:45: a call at 18:14 UTC falls in one local day, one at 18:16 UTC in the next."""
    template = Budget("per-user", limit_usd=1.0, per="user_id", timezone="Asia/Kathmandu", action="block")
    midnight = datetime(2026, 12, 2, 18, 15, tzinfo=UTC).timestamp()
    db = open_db(ledger, create=True)
    try:
        assert prepare(db, template, midnight - 3600) is True  # registered before any row: nothing to backfill
        db.insert([row_of(record(midnight - 60, cost=0.25, user_id="u")),
                   row_of(record(midnight + 60, cost=0.5, user_id="u"))])
        account = template.account("u")
        for moment, usd in ((midnight - 1, 0.25), (midnight + 1, 0.5)):
            begin = account.period_bounds(datetime.fromtimestamp(moment, tz=UTC))[0]
            assert read(db, account, begin) == (1, usd, 15)
    finally:
        db.close()


def test_a_process_with_the_template_registers_it_and_admission_reads_the_table(ledger: str) -> None:
    template = Budget("per-tenant", limit_usd=0.004, per="tenant", action="block")
    now = _inside_today()
    db = open_db(ledger, create=True)
    db.insert([row_of(record(now, cost=0.003, tenant="acme"))])
    store = SharedBudgets(ledger, [template], refresh_s=0.05)
    try:
        deadline = time.monotonic() + 10
        begin = template.period_bounds(datetime.fromtimestamp(now, tz=UTC))[0]
        while read(db, template.account("acme"), begin) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read(db, template.account("acme"), begin) == (1, 0.003, 15)
        from tokentrace import BudgetExceeded

        with pytest.raises(BudgetExceeded):  # $0.003 spent + $0.002 > $0.004
            store.admit([template.account("acme")], 0.002, 10, now)
        assert store.admit([template.account("other")], 0.002, 10, now)
        with db.transaction():  # the table, not the rows, decides: make it say acme spent nothing
            db.execute("UPDATE llm_principal_spend SET charged_usd = 0")
        assert store.admit([template.account("acme")], 0.002, 10, now)
    finally:
        store.close()
        db.close()


def test_a_rolling_window_is_read_as_whole_hours_from_the_table_plus_its_first_partial_hour(ledger: str) -> None:
    now = time.time()
    template = Budget("per-tenant-24h", limit_usd=1.0, per="tenant", window="24h", action="block")
    records = [record(now - 30 * 3600 + i * 97.0, cost=0.001 * (1 + i % 4), tenant=f"t{i % 3}",
                      status="error" if i % 9 == 0 else "ok") for i in range(30 * 3600 // 97)]
    db = open_db(ledger, create=True)
    try:
        db.insert([row_of(r) for r in records[: len(records) // 2]])
        assert prepare(db, template, now, steps=10) is True  # the last 24 h backfilled by UTC hour
        db.insert([row_of(r) for r in records[len(records) // 2:]])  # kept by the writer from here on
        begin = template.period_bounds(datetime.fromtimestamp(now, tz=UTC))[0]
        for tenant in ("t0", "t1", "t2"):
            account = template.account(tenant)
            first_hour = datetime.fromtimestamp((begin.timestamp() // 3600 + 1) * 3600, tz=UTC)
            assert read_hours(db, account, first_hour) is not None  # the table holds those hours
            mine = [r for r in records if r.attributes["tenant"] == tenant and r.ts_utc >= begin.timestamp()]
            usd, tokens = spent_since(db, account, begin)
            assert usd == pytest.approx(sum(r.cost_usd for r in mine), rel=1e-12)
            assert tokens == sum(r.usage.total for r in mine)
    finally:
        db.close()


def test_a_ledger_an_earlier_release_wrote_is_read_from_its_rows(tmp_path: Path) -> None:
    """``tokentrace report`` / ``budget --top`` open a ledger without migrating it: one at schema 7 (0.3.0) has no
    per-principal table, and its principals are read from the rows."""
    import sqlite3

    path = tmp_path / "ledger.db"
    now = _inside_today()
    db = open_db(path, create=True)
    db.insert([row_of(record(now, cost=0.25, tenant="acme")), row_of(record(now, cost=0.5, tenant="zeta"))])
    db.close()
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE llm_principal_spend; DROP TABLE llm_principal_budgets; PRAGMA user_version = 7")
    conn.close()
    template = Budget("per-tenant", limit_usd=1.0, per="tenant")
    begin = template.period_bounds(datetime.fromtimestamp(now, tz=UTC))[0]
    db = open_db(path, create=False)
    try:
        assert principal_count(db, template, begin) == 2
        assert [p for p, _, _ in spent_by_principal(db, template, begin, 5)] == ["zeta", "acme"]
        assert spent_since(db, template.account("acme"), begin) == (0.25, 15)
    finally:
        db.close()


def test_a_template_no_process_has_used_for_a_week_is_retired_and_registered_anew_when_used(ledger: str) -> None:
    from tokentrace.budgets.principal_spend import RETIRE_AFTER_S, retire_idle, touch

    now = _inside_today()
    template = Budget("per-tenant", limit_usd=1.0, per="tenant", action="block")
    begin = template.period_bounds(datetime.fromtimestamp(now, tz=UTC))[0]
    first = [record(now - i, cost=0.01, tenant=f"t{i % 3}") for i in range(30)]
    db = open_db(ledger, create=True)
    try:
        assert prepare(db, template, now) is True
        db.insert([row_of(r) for r in first])
        assert touch(db, [template], now) == []  # registered: marked as used
        retire_idle(db, now + RETIRE_AFTER_S - 60)
        assert read(db, template.account("t0"), begin) == (10, pytest.approx(0.1), 150)  # used a week ago: kept

        retire_idle(db, now + RETIRE_AFTER_S + 60)  # a week and a minute without a process that has it
        assert read(db, template.account("t0"), begin) is None  # admission reads the rows again
        (kept,) = db.execute("SELECT COUNT(*) FROM llm_principal_spend").fetchone()
        db.insert([row_of(record(now, cost=0.01, tenant="t0"))])  # writers no longer keep it
        assert db.execute("SELECT COUNT(*) FROM llm_principal_spend").fetchone()[0] <= kept
        retire_idle(db, now + RETIRE_AFTER_S + 120)
        retire_idle(db, now + RETIRE_AFTER_S + 180)
        assert db.execute("SELECT COUNT(*) FROM llm_principal_spend").fetchone()[0] == 0  # its rows are gone
        assert db.execute("SELECT COUNT(*) FROM llm_principal_budgets").fetchone()[0] == 0

        assert touch(db, [template], now) == [template]  # a process that has it finds it gone, and registers it
        assert prepare(db, template, now, steps=5) is True
        assert read(db, template.account("t0"), begin) == (11, pytest.approx(0.11), 165)  # backfilled anew
    finally:
        db.close()
