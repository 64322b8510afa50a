"""What an exact admission reads of its budgets (their live reservations, a principal's period spend): the
statements themselves, so a dialect can send them ahead with the admission's locks (``Db.admission``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..ledger.store import Db
from . import Budget
from . import principal_spend as _principal_spend


def live_statement(db: Db, budget: Budget) -> tuple[str, tuple[str]]:
    """(id, USD, tokens) of every live reservation of ``budget``, any process's (by the store's clock: a process
    whose clock is behind or ahead neither drops other processes' reservations nor keeps lapsed ones)."""
    return (f"SELECT id, usd, tokens FROM llm_budget_reservations WHERE budget = ? AND expires_at > {db.clock_sql}",
            (budget.name,))


def reads_ahead(db: Db, budgets: Sequence[Budget], now: float) -> list[tuple[str, tuple[Any, ...]]]:
    """What ``_decide`` reads of these budgets, reservations before spend, that the admission can send with its
    locks (each budget's live reservations and, for a principal's account, its period's spend)."""
    reads: list[tuple[str, tuple[Any, ...]]] = [live_statement(db, budget) for budget in budgets]
    moment = datetime.fromtimestamp(now, tz=UTC)
    for budget in budgets:
        spend = _principal_spend.read_statement(db, budget, budget.period_bounds(moment)[0])
        if spend is not None:
            reads.append(spend)
    return reads
