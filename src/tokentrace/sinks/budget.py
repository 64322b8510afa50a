"""Budget accounting: reserve an estimate before a call is sent, settle to the real cost when it ends.

A ``block`` budget refuses a call (BudgetExceeded, before any request leaves the process) when spent +
in-flight reservations + this call's estimate would pass its limit, so concurrent calls cannot overshoot.
The estimate is deliberately high (``budgets.estimate``). An answered call whose usage never came counts its estimate
(``UsageRecord.charged_usd``/``charged_tokens``, kept in the ledger so a restart counts the same).

With a ledger the accounts are the ledger's (``budgets.store.SharedBudgets``: every process sharing the ledger
decides against the same spend and reservations); without one they are this process's own.

A templated budget (``per="user_id"``) has one account per principal, made on the principal's first call as an
ordinary budget narrowed to it (``Budget.account``), so every rule above holds per principal. The accounts of the
principals seen lately are kept (at most ``MAX_ACTIVE_PRINCIPALS``); with a ledger a forgotten one is read back
from it, without one its spend so far is forgotten with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._support import errors as _errors
from .._support import forksafe as _forksafe
from .._support.text import usd
from .._usage import RequestInfo, UsageRecord
from ..budgets import LIMIT_REFRESH_S, Budget, BudgetExceeded, BudgetUnavailable
from ..budgets.estimate import estimate, estimate_parts
from ..budgets.limit_lookup import LimitLookup
from ..budgets.refusal import counted_only
from ..budgets.store import SharedBudgets
from ..pricing import PriceTable
from . import Sink

logger = logging.getLogger("tokentrace")


@dataclass
class _Account:
    budget: Budget
    period_end: float
    spent_usd: float = 0.0
    spent_tokens: int = 0
    reserved_usd: float = 0.0
    reserved_tokens: int = 0
    warned: bool = False
    spent_requests: int = 0
    reserved_requests: int = 0
    events: deque[tuple[float, float, int]] | None = None
    """A rolling-window budget's ended calls: (when, USD, tokens), the oldest first."""


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    spent_usd: float
    spent_tokens: int
    principals: tuple[int, int] | None = None
    """A templated budget: (principals this process has seen this period, of them refused a call); its spend is
    per principal, so ``spent_*`` are 0 here."""
    decisions: tuple[int, int] = (0, 0)
    """A block budget: (calls it admitted, calls it refused) in this process since start."""

    @property
    def name(self) -> str:
        return self.budget.name

    @property
    def limit_usd(self) -> float | None:
        return self.budget.limit_usd

    @property
    def limit_tokens(self) -> int | None:
        return self.budget.limit_tokens


def _template_name(account: Budget) -> str:
    """The per= budget an account (``name[principal]``) belongs to."""
    return account.name[:-len(account.principal or "") - 2]


MIN_REFRESH_S = 0.05
"""flush() refreshes the fleet-wide gauges only when it has at least this much time left."""
MAX_ACTIVE_PRINCIPALS = 100_000
"""Principal accounts kept in memory, the most recently used; one more forgets the least recently used."""


@dataclass
class _PrincipalAccount:
    """One principal's account of a templated budget, and when its limit is to be asked for again."""

    account: _Account
    limit_until: float
    blocked_in: float = 0.0
    """The end of the period in which a call of this principal was refused (0: none)."""


class BudgetSink(Sink):
    name = "budget"

    def __init__(self, budgets: list[Budget], prices: PriceTable, ledger: Any = None, *,
                 release: Callable[[tuple[Any, ...]], None] | None = None, unavailable: str = "allow",
                 reservation_ttl_s: float = 60.0) -> None:
        self._prices = prices
        self._lock = threading.Lock()
        self._accounts = [self._new_account(b) for b in budgets if not b.per_keys]
        self._templates = tuple(b for b in budgets if b.per_keys)
        self._decisions: dict[str, list[int]] = {}
        """Block budget (a per= budget by its own name) -> [calls it admitted, calls it refused]."""
        self._decisions_lock = threading.Lock()
        self.templates = self._templates
        """The budgets with ``per=`` (one account per principal)."""
        self._principals: OrderedDict[tuple[str, str], _PrincipalAccount] = OrderedDict()
        self._limits = LimitLookup()
        self._release = release
        self._unavailable = unavailable
        self.shared: SharedBudgets | None = None
        if ledger is not None:
            self.shared = SharedBudgets(ledger, budgets, ttl_s=reservation_ttl_s, on_crossed=self._warn)
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        if self.shared is not None:
            self.shared.after_fork_in_child()

    @staticmethod
    def _new_account(budget: Budget, now: datetime | None = None) -> _Account:
        if budget.window_s is not None:  # rolling: never reset, its old calls leave the window one by one
            return _Account(budget, float("inf"), events=deque())
        _, end = budget.period_bounds(now)
        return _Account(budget, end.timestamp())

    def _roll(self, account: _Account, now: float) -> None:
        events = account.events
        if events is not None:
            window = account.budget.window_s or 0.0
            while events and events[0][0] < now - window:
                _, old_usd, old_tokens = events.popleft()
                account.spent_usd -= old_usd
                account.spent_tokens -= old_tokens
                account.spent_requests -= 1
            if not events:
                account.spent_usd, account.spent_tokens, account.spent_requests, account.warned = 0.0, 0, 0, False
            return
        if now >= account.period_end:
            fresh = self._new_account(account.budget)
            account.period_end = fresh.period_end
            account.spent_usd = 0.0
            account.spent_tokens = 0
            account.spent_requests = 0
            account.warned = False

    def _estimate(self, request: RequestInfo) -> tuple[float, int]:
        return estimate(request, self._prices)

    # ---- before the request is sent (calling thread)
    def _principal_accounts(self, attributes: Mapping[str, str], request: RequestInfo, now: float
                            ) -> list[_Account]:
        """The accounts of the call's principals under the templated budgets (made on first use)."""
        found = []
        for template in self._templates:
            if not template.applies_to(attributes, request.provider, request.request_model):
                continue
            principal = template.principal_of(attributes, request.provider, request.request_model)
            if principal is None:  # the call has no value for the key: this budget does not count it
                continue
            key = (template.name, principal)
            with self._lock:
                entry = self._principals.get(key)
                if entry is not None:
                    self._principals.move_to_end(key)
            if entry is None or now >= entry.limit_until:
                entry = self._refresh_principal(template, principal, key, entry, now)
                if entry is None:
                    continue
            found.append(entry.account)
        return found

    def _refresh_principal(self, template: Budget, principal: str, key: tuple[str, str],
                           entry: _PrincipalAccount | None, now: float) -> _PrincipalAccount | None:
        """Ask the principal's limit (``limits``, ``limit_for``) and make or update its account. A ``limit_for``
        that fails is decided by ``budget_unavailable``: the call is refused, or this budget skips it."""
        try:
            answered, limit = self._limits.ask(template, principal)
        except Exception as exc:
            _errors.report("budget.limit_for", exc, f"budget {template.name!r}: the principal's limit could not be "
                           f"read; calls are {'refused' if self._unavailable == 'block' else 'sent unchecked'}")
            if self._unavailable == "block":
                raise BudgetUnavailable(template, f"limit_for failed ({type(exc).__name__})") from None
            return None
        if not answered:  # limit_for is slow: this call goes on with the limit the account has (else the default)
            _errors.report("budget.limit_for", None, f"budget {template.name!r}: limit_for took longer than "
                           f"{self._limits.timeout_s:g} s; the last limit (or the default) applies until it answers")
            if entry is not None:
                entry.limit_until = now + self._limits.timeout_s
                return entry
        budget = template.account(principal, limit)
        with self._lock:
            entry = self._principals.get(key)
            if entry is None:
                entry = _PrincipalAccount(self._new_account(budget), now + LIMIT_REFRESH_S)
                self._principals[key] = entry
                if len(self._principals) > MAX_ACTIVE_PRINCIPALS:
                    self._principals.popitem(last=False)
            else:
                entry.account.budget, entry.limit_until = budget, now + LIMIT_REFRESH_S
            if not answered:  # ask again soon: the answer is on its way
                entry.limit_until = now + self._limits.timeout_s
        return entry

    def start(self, request: RequestInfo, attributes: Mapping[str, str], started_wall: float) -> Any:
        if request.cached:
            return None
        if request.operation == "batch" or counted_only.get():  # a batch result lands (it was submitted), or a
            return self._batch_result(request, attributes, started_wall)  # host not yet proven: counted, never refused
        accounts = [a for a in self._accounts if a.budget.applies_to(attributes, request.provider,
                                                                      request.request_model)]
        if self._templates:
            accounts += self._principal_accounts(attributes, request, started_wall)
        if not accounts:
            return None
        blocking = [a.budget.name if a.budget.principal is None else _template_name(a.budget)
                    for a in accounts if a.budget.action == "block"]
        try:
            state = self._decide(accounts, request, started_wall)
        except BudgetExceeded as exc:
            exc.explain(estimate_parts(request))
            self._count(blocking, exc.budget.name if exc.budget.principal is None else _template_name(exc.budget))
            raise
        if blocking:
            self._count(blocking)
        return state

    def _count(self, names: list[str], refused_by: str | None = None) -> None:
        """A block decision: each budget that decided admitted the call, or ``refused_by`` refused it."""
        with self._decisions_lock:
            if refused_by is not None:
                self._decisions.setdefault(refused_by, [0, 0])[1] += 1
                return
            for name in names:
                self._decisions.setdefault(name, [0, 0])[0] += 1

    def _decide(self, accounts: list[_Account], request: RequestInfo, started_wall: float) -> Any:
        if self.shared is not None:
            for account in accounts:
                if account.budget.principal is not None and account.budget.action == "warn":
                    self.shared.watch(account.budget)
            try:
                return self._admit_shared([a.budget for a in accounts if a.budget.action == "block"], request,
                                          started_wall)
            except BudgetExceeded as exc:
                self._note_blocked(exc.budget)
                raise
        usd, tokens = self._estimate(request)
        now = started_wall
        with self._lock:
            for account in accounts:
                self._roll(account, now)
                budget = account.budget
                if budget.action != "block":
                    continue
                over_usd = budget.limit_usd is not None and (
                    account.spent_usd + account.reserved_usd + usd > budget.limit_usd)
                over_tokens = budget.limit_tokens is not None and (
                    account.spent_tokens + account.reserved_tokens + tokens > budget.limit_tokens)
                calls = account.spent_requests + account.reserved_requests
                over_requests = budget.limit_requests is not None and calls + 1 > budget.limit_requests
                if over_usd or over_tokens or over_requests:
                    self._note_blocked(budget, locked=True)
                    raise BudgetExceeded(budget, account.spent_usd, account.spent_tokens, usd, tokens,
                                         calls if budget.limit_requests is not None else None)
            for account in accounts:
                account.reserved_usd += usd
                account.reserved_tokens += tokens
                account.reserved_requests += 1
        return (accounts, usd, tokens, True)

    def _batch_result(self, request: RequestInfo, attributes: Mapping[str, str], now: float) -> Any:
        """With a ledger its row counts once written; without one, its cost is added to the accounts it falls in."""
        if self.shared is not None:
            return None
        accounts = [a for a in self._accounts if a.budget.applies_to(attributes, request.provider,
                                                                      request.request_model)]
        if self._templates:
            accounts += self._principal_accounts(attributes, request, now)
        with self._lock:
            for account in accounts:
                self._roll(account, now)
        return (accounts, 0.0, 0, False) if accounts else None

    def _admit_shared(self, blocking: list[Budget], request: RequestInfo, now: float) -> Any:
        """One transaction against the ledger for the block budgets; warn budgets need no round trip."""
        if not blocking or self.shared is None:
            return None
        usd, tokens = self._estimate(request)
        try:
            return self.shared.admit_leased(blocking, usd, tokens, now)
        except BudgetExceeded:
            raise
        except Exception as exc:
            _errors.report("budget.unavailable", exc, "the shared budget store cannot be reached; calls are "
                           f"{'refused' if self._unavailable == 'block' else 'sent unchecked'} meanwhile")
            if self._unavailable == "block":
                raise BudgetUnavailable(blocking[0], type(exc).__name__) from None
            return None

    # ---- when the call ends (any thread)
    def abandon(self, state: Any) -> None:
        """Not an LLM call after all: its reservations go back, nothing is counted."""
        if state is not None:
            self._settle(state, 0.0, 0, None)

    def end(self, record: UsageRecord, state: Any) -> None:
        if record.status == "blocked" or state is None:  # refused, or no budget applied when it started
            return
        self._settle(state, *record.charged(), record.ts_utc)

    def _settle(self, state: Any, usd: float, tokens: int, counted_at: float | None) -> None:
        """Give back a call's reservations and, when it is ``counted_at`` (its start: the clock admission read, so a
        window ages both alike), count what it cost. With a ledger both go with the call's row."""
        if self.shared is not None:
            settlements = self.shared.settle(state, usd, tokens)
            if self._release is not None and settlements:
                self._release(settlements)
            return
        accounts, reserved_usd, reserved_tokens, admitted = state
        crossed: list[_Account] = []
        with self._lock:
            for account in accounts:
                account.reserved_usd = max(account.reserved_usd - reserved_usd, 0.0)
                account.reserved_tokens = max(account.reserved_tokens - reserved_tokens, 0)
                if admitted:  # a batch result reserved nothing
                    account.reserved_requests = max(account.reserved_requests - 1, 0)
                if counted_at is None:
                    continue
                account.spent_usd += usd
                account.spent_tokens += tokens
                account.spent_requests += 1
                if account.events is not None:
                    account.events.append((counted_at, usd, tokens))
                if not account.warned and self._over(account):
                    account.warned = True
                    crossed.append(account)
        for account in crossed:
            self._warn(account.budget, account.spent_usd, account.spent_tokens)

    def _note_blocked(self, budget: Budget, *, locked: bool = False) -> None:
        """Remember that a principal of a templated budget was refused this period (for the principal gauges)."""
        if budget.principal is None:
            return
        template = _template_name(budget)
        if not locked:
            with self._lock:
                self._note_blocked(budget, locked=True)
            return
        entry = self._principals.get((template, budget.principal))
        if entry is not None:
            entry.blocked_in = budget.period_bounds()[1].timestamp()

    def principal_counts(self) -> dict[str, tuple[int, int]]:
        """Per templated budget: (principals this process has seen this period, of them refused a call)."""
        now = time.time()
        counts = {t.name: [0, 0] for t in self._templates}
        with self._lock:
            entries = list(self._principals.items())
        for (template, _), entry in entries:
            if now < entry.account.period_end:
                counts[template][0] += 1
                counts[template][1] += entry.blocked_in > now
        return {name: (seen, blocked) for name, (seen, blocked) in counts.items()}

    def principal_status(self, **principal: str) -> list[BudgetStatus]:
        """Each templated budget's account for the principal named by keyword (``user_id="alice"``), with its
        spend this period: for the app's own "your usage" page."""
        found = []
        for template in self._templates:
            if not set(template.per_keys) <= set(principal):
                continue
            name = template.principal_of(principal, principal.get("provider", ""), principal.get("model", ""))
            if name is None:
                continue
            try:
                budget = template.account(name, self._limits.ask(template, name)[1])
            except Exception as exc:
                _errors.report("budget.limit_for", exc, f"budget {template.name!r}: the principal's limit could "
                               "not be read")
                budget = template.account(name)
            if self.shared is not None:
                spent = self.shared.spent_now(budget)
            else:
                with self._lock:
                    entry = self._principals.get((template.name, name))
                    if entry is not None:
                        self._roll(entry.account, time.time())
                    spent = (entry.account.spent_usd, entry.account.spent_tokens) if entry else (0.0, 0)
            found.append(BudgetStatus(budget, *spent))
        return found

    @staticmethod
    def _over(account: _Account) -> bool:
        b = account.budget
        return (b.limit_usd is not None and account.spent_usd >= b.limit_usd) or (
            b.limit_tokens is not None and account.spent_tokens >= b.limit_tokens) or (
            b.limit_requests is not None and account.spent_requests >= b.limit_requests)

    def _warn(self, budget: Budget, spent: float, tokens: int) -> None:
        logger.warning("budget %r (%s) reached: spent %s and %d tokens this %s", budget.name,
                       budget.action, usd(spent), tokens, budget.period)
        if budget.on_exceeded is not None:
            try:
                budget.on_exceeded(budget, spent, tokens)
            except Exception as exc:
                _errors.report("budget.callback", exc, "a budget on_exceeded callback raised")

    def status(self) -> list[BudgetStatus]:
        counts = self.principal_counts()
        with self._decisions_lock:
            decided = {name: (admitted, refused) for name, (admitted, refused) in self._decisions.items()}
        templates = [BudgetStatus(t, 0.0, 0, counts.get(t.name, (0, 0)), decided.get(t.name, (0, 0)))
                     for t in self._templates]
        if self.shared is not None:
            fleet = self.shared.status()
            return [BudgetStatus(a.budget, *fleet.get(a.budget.name, (0.0, 0)), None,
                                 decided.get(a.budget.name, (0, 0))) for a in self._accounts] + templates
        now = datetime.now(UTC).timestamp()
        with self._lock:
            for account in self._accounts:
                self._roll(account, now)
            return [BudgetStatus(a.budget, a.spent_usd, a.spent_tokens, None, decided.get(a.budget.name, (0, 0)))
                    for a in self._accounts] + templates

    def flush(self, timeout: float) -> bool:
        """With a shared ledger: read fleet-wide spend now (the rows just flushed), within ``timeout``, so the budget
        gauges are current when flush() returns. Nothing is buffered here, so nothing can be lost: always True."""
        if self.shared is not None and timeout > MIN_REFRESH_S:
            try:
                self.shared.refresh_now(timeout)
            except Exception as exc:
                _errors.report("budget.refresh", exc, "cannot read fleet-wide budget spend")
        return True

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
