"""Run budgets on each call: the ``tokentrace.run_budget`` blocks in force where the call is made hold its estimate
before it is sent (a block one may refuse it) and count what it was charged when it ends (``budgets.run``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._usage import RequestInfo, UsageRecord
from ..budgets.estimate import estimate
from ..budgets.run import active
from ..pricing import PriceTable
from . import Sink

_runs_in_force = active.get


class RunBudgetSink(Sink):
    name = "run_budget"
    end_needs_start = True  # a call made outside every run budget (start returned None) has nothing to settle

    def __init__(self, prices: PriceTable) -> None:
        self._prices = prices

    def start(self, request: RequestInfo, attributes: Mapping[str, str], started_wall: float) -> Any:
        runs = _runs_in_force()
        if not runs or request.cached:
            return None
        usd, tokens = estimate(request, self._prices)
        held: list[Any] = []
        try:
            for run in reversed(runs):  # the innermost first: its limit is usually the tightest
                if run.admit(usd, tokens):
                    held.append(run)
        except BaseException:
            for run in held:
                run.settle(usd, tokens, None)
            raise
        return (held, usd, tokens) if held else None

    def abandon(self, state: Any) -> None:
        """Not an LLM call after all: the estimates go back, nothing is counted."""
        held, usd, tokens = state
        for run in held:
            run.settle(usd, tokens, None)

    def end(self, record: UsageRecord, state: Any) -> None:
        held, usd, tokens = state
        charged = None if record.status == "blocked" else record.charged()  # refused by another budget: not sent
        for run in held:
            run.settle(usd, tokens, charged)
