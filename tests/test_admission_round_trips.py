"""An exact admission on PostgreSQL is two round trips (BEGIN, its locks and its reads; the reservation with the
COMMIT), its statements planned once per connection, and it still decides when those statements are gone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tokentrace import Budget, BudgetExceeded
from tokentrace.budgets.principal_spend import read
from tokentrace.budgets.store import SharedBudgets
from tokentrace.ledger.db import row_of
from tokentrace.ledger.store import open_db

from .ledger_helpers import record


@pytest.fixture
def kept_store(pg_ledger: str) -> Iterator[tuple[SharedBudgets, Budget]]:
    """A store whose per-tenant template's table holds today's period ($0.003 spent by acme, limit $0.01)."""
    template = Budget("per-tenant", limit_usd=0.01, per="tenant", action="block")
    now = time.time()
    db = open_db(pg_ledger, create=True)
    db.insert([row_of(record(now, cost=0.003, tenant="acme"))])
    store = SharedBudgets(pg_ledger, [template], refresh_s=0.05)
    try:
        begin = template.period_bounds(datetime.fromtimestamp(now, tz=UTC))[0]
        deadline = time.monotonic() + 10
        while read(db, template.account("acme"), begin) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read(db, template.account("acme"), begin) == (1, 0.003, 15)
        yield store, template
    finally:
        store.close()
        db.close()


def _statements_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What this thread sends on any psycopg connection from now on (one entry a round trip)."""
    import psycopg

    sent: list[str] = []
    me = threading.get_ident()
    original = psycopg.Connection.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == me:
            sent.append(str(query))
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", execute)
    return sent


def test_an_exact_admission_is_two_round_trips_and_decides_as_before(kept_store: tuple[SharedBudgets, Budget],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store, template = kept_store
    acme = template.account("acme")
    store.admit([acme], 0.001, 10, time.time())  # prepares the statements on the connection
    sent = _statements_sent(monkeypatch)
    store.admit([acme], 0.002, 10, time.time())
    assert len(sent) == 2, sent
    assert sent[0].startswith("BEGIN; SELECT pg_advisory_xact_lock(") and "EXECUTE tokentrace_" in sent[0]
    assert sent[1].startswith("EXECUTE tokentrace_") and sent[1].endswith("; COMMIT")
    # $0.003 spent + $0.001 + $0.002 reserved: $0.004 more does not fit in $0.01, $0.003 does
    with pytest.raises(BudgetExceeded):
        store.admit([acme], 0.0041, 10, time.time())
    assert store.admit([acme], 0.004, 10, time.time())


def test_statements_gone_from_the_connection_are_sent_plainly_from_then_on(
        kept_store: tuple[SharedBudgets, Budget], monkeypatch: pytest.MonkeyPatch) -> None:
    """Through PgBouncer in transaction mode each transaction may be another server connection, where the
    statements were never prepared: the admission is decided again without them, and not refused or failed."""
    store, template = kept_store
    acme = template.account("acme")
    store.admit([acme], 0.001, 10, time.time())
    db = store._pool.take()
    for name in db._prepared.values():  # type: ignore[attr-defined]
        db.conn.execute(f"DEALLOCATE {name}")
    store._pool.give(db)
    sent = _statements_sent(monkeypatch)
    assert store.admit([acme], 0.002, 10, time.time())
    assert db.prepares is False  # type: ignore[attr-defined]
    assert "EXECUTE" not in sent[-2] and sent[-1].endswith("; COMMIT")
    with pytest.raises(BudgetExceeded):  # the plain path decides the same: $0.006 held of $0.01
        store.admit([acme], 0.0041, 10, time.time())
