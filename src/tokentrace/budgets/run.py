"""Run budgets (``tokentrace.run_budget``): a limit on the calls made inside one block (an agent run, a request
handler), kept in this process on a contextvar, so threads started with the block's context and tasks spawned
inside it count against it and nothing outside it does.

A ``block`` run budget is decided like every block budget: before the request leaves (``RunBudgetSink`` holds each
call's estimate until the call ends and counts what it was charged), so calls running at once cannot pass the
limit together. Nested run budgets each count the calls inside them; the budgets ``instrument()`` was given apply
as well.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar

from .._support import errors as _errors
from .._support.text import usd
from . import ACTIONS, Budget, BudgetError, BudgetExceeded

logger = logging.getLogger("tokentrace")
_F = TypeVar("_F", bound=Callable[..., Any])

active: ContextVar[tuple[run_budget, ...]] = ContextVar("tokentrace_run_budgets", default=())
"""The run budgets the calls made here count against, the outermost first."""


class run_budget:  # noqa: N801 - used like a function: `with tokentrace.run_budget(0.50):`
    """A budget for the calls made inside one block, in USD, tokens and/or calls.

    A context manager (``with`` / ``async with``) and a decorator (each call of the decorated function is a run of
    its own). ``action="block"`` refuses a call that could pass the limit (``BudgetExceeded``, nothing sent);
    ``"warn"`` logs once when the run passes it. ``spent_usd`` / ``spent_tokens`` / ``requests`` are what the run's
    ended calls were charged, readable during and after the run.
    """

    def __init__(self, limit_usd: float | None = None, *, limit_tokens: int | None = None,
                 limit_requests: int | None = None, action: str = "block", name: str | None = None) -> None:
        if action not in ACTIONS:
            raise BudgetError(f"run_budget: action must be one of {', '.join(ACTIONS)}, not {action!r}")
        # the limits are checked as a Budget's are (types, signs, at least one given)
        self.budget = Budget(name or "run", limit_usd=limit_usd, limit_tokens=limit_tokens,
                             limit_requests=limit_requests, action=action)
        self.name = self.budget.name
        self.spent_usd = 0.0
        self.spent_tokens = 0
        self.requests = 0
        self._reserved = (0.0, 0, 0)
        self._lock = threading.Lock()
        self._tokens: list[tuple[Token[tuple[run_budget, ...]], threading.Thread]] = []
        self._closed = False
        self._warned = False
        self.last_run: run_budget | None = None
        """As a decorator: the budget of the most recent call (each call is a run of its own)."""

    # ---- the block
    def __enter__(self) -> run_budget:
        self._closed = False
        self._tokens.append((active.set((*active.get(), self)), threading.current_thread()))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._closed = True  # calls made later in a context that still holds it no longer count against it
        if not self._tokens:
            return
        token, thread = self._tokens.pop()
        try:
            active.reset(token)
        except ValueError as error:  # exited from another thread or context than it was entered in
            _errors.report("run_budget.exit", error, f"run budget {self.name!r} was exited in another context "
                           f"than {thread.name!r} entered it in; it no longer applies")

    async def __aenter__(self) -> run_budget:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: _F) -> _F:
        def fresh() -> run_budget:
            run = run_budget(self.budget.limit_usd, limit_tokens=self.budget.limit_tokens,
                             limit_requests=self.budget.limit_requests, action=self.budget.action, name=self.name)
            self.last_run = run
            return run

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with fresh():
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    # ---- the calls inside (RunBudgetSink)
    def admit(self, estimate_usd: float, estimate_tokens: int) -> bool:
        """Hold a call's estimate, or raise BudgetExceeded (a block budget it could pass). False: closed."""
        if self._closed:
            return False
        budget = self.budget
        with self._lock:
            held_usd, held_tokens, held_calls = self._reserved
            used_usd, used_tokens = self.spent_usd + held_usd, self.spent_tokens + held_tokens
            calls = self.requests + held_calls
            if budget.action == "block" and (
                    (budget.limit_usd is not None and used_usd + estimate_usd > budget.limit_usd)
                    or (budget.limit_tokens is not None and used_tokens + estimate_tokens > budget.limit_tokens)
                    or (budget.limit_requests is not None and calls + 1 > budget.limit_requests)):
                refused = BudgetExceeded(budget, used_usd, used_tokens, estimate_usd, estimate_tokens,
                                         calls if budget.limit_requests is not None else None)
                refused.args = (f"run budget {self.name!r} ({self._limits()}) would be exceeded: spent and reserved "
                                f"{usd(used_usd)} and {used_tokens:,} tokens in {calls:,} calls in this run, this "
                                f"call could cost up to {usd(estimate_usd)} and {estimate_tokens:,} tokens; the "
                                "request was not sent",)
                raise refused
            self._reserved = (held_usd + estimate_usd, held_tokens + estimate_tokens, held_calls + 1)
        return True

    def settle(self, estimate_usd: float, estimate_tokens: int, charged: tuple[float, int] | None) -> None:
        """A call admitted with this estimate ended: ``charged`` (USD, tokens) is counted; None: it was never sent
        (refused by another budget, or not an LLM call after all)."""
        crossed = False
        with self._lock:
            held_usd, held_tokens, held_calls = self._reserved
            self._reserved = (max(held_usd - estimate_usd, 0.0), max(held_tokens - estimate_tokens, 0),
                              max(held_calls - 1, 0))
            if charged is None:
                return
            self.spent_usd += charged[0]
            self.spent_tokens += charged[1]
            self.requests += 1
            if not self._warned and self._over():
                self._warned = crossed = True
        if crossed and self.budget.action == "warn":
            logger.warning("run budget %r (%s) passed: %s and %s tokens in %s calls", self.name, self._limits(),
                           usd(self.spent_usd), f"{self.spent_tokens:,}", f"{self.requests:,}")

    def _over(self) -> bool:
        budget = self.budget
        return ((budget.limit_usd is not None and self.spent_usd > budget.limit_usd)
                or (budget.limit_tokens is not None and self.spent_tokens > budget.limit_tokens)
                or (budget.limit_requests is not None and self.requests > budget.limit_requests))

    def _limits(self) -> str:
        budget = self.budget
        parts = [usd(budget.limit_usd) if budget.limit_usd is not None else "",
                 f"{budget.limit_tokens:,} tokens" if budget.limit_tokens is not None else "",
                 f"{budget.limit_requests:,} calls" if budget.limit_requests is not None else ""]
        return "limit " + " / ".join(p for p in parts if p)

    def __repr__(self) -> str:
        return (f"run_budget({self.name!r}, {self._limits()}, spent {usd(self.spent_usd)}, "
                f"{self.spent_tokens:,} tokens, {self.requests:,} calls)")
