"""Budgets: a spend or token limit per calendar period, optionally scoped to attribution keys; warn or block.

``Budget`` objects come from code or a TOML file. ``BudgetExceeded`` is raised by a ``block`` budget before
the request leaves the process. Period arithmetic lives here; the accounting lives in sinks/budget.py.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._config_error import ConfigError
from ._refusal import CallRefused
from ._text import usd

PERIODS = ("day", "week", "month")
ACTIONS = ("warn", "block")


class BudgetExceeded(CallRefused):
    """A ``block`` budget would be exceeded by this call; the request was not sent and nothing was spent."""

    def __init__(self, budget: Budget, spent_usd: float, spent_tokens: int, estimate_usd: float,
                 estimate_tokens: int) -> None:
        self.budget = budget
        self.spent_usd = spent_usd
        self.spent_tokens = spent_tokens
        self.estimate_usd = estimate_usd
        self.estimate_tokens = estimate_tokens
        limit = (f"${budget.limit_usd:g}" if budget.limit_usd is not None else "") + (
            f"{' / ' if budget.limit_usd is not None and budget.limit_tokens is not None else ''}"
            f"{budget.limit_tokens:,} tokens" if budget.limit_tokens is not None else "")
        super().__init__(
            f"budget {budget.name!r} ({budget.period}, limit {limit}) would be exceeded: spent {usd(spent_usd)} "
            f"and {spent_tokens:,} tokens this {budget.period}, this call could cost up to {usd(estimate_usd)} "
            f"and {estimate_tokens:,} tokens; the request was not sent"
        )


class BudgetUnavailable(CallRefused):
    """``budget_unavailable="block"`` and the shared budget store (the ledger database) cannot be reached."""

    def __init__(self, budget: Budget, reason: str) -> None:
        self.budget = budget
        super().__init__(f"budget {budget.name!r} cannot be checked ({reason}); the request was not sent "
                         "(budget_unavailable='block')")


STANDARD_SCOPE_KEYS = ("feature", "session_id", "user_id", "agent_id")
"""The attribution keys ``tokentrace.attributes()`` names; a scope key close to one of them is a typo."""


class BudgetError(ConfigError):
    """A budget definition that cannot work (a ``ConfigError``, as every configuration error)."""


@dataclass(frozen=True)
class Budget:
    """A limit in USD and/or tokens per calendar period (in ``timezone``), on all calls or those in ``scope``."""

    name: str
    period: str = "day"
    limit_usd: float | None = None
    limit_tokens: int | None = None
    scope: Mapping[str, str] | None = None
    action: str = "warn"
    timezone: str = "UTC"
    on_exceeded: Callable[[Budget, float, int], None] | None = field(default=None, compare=False, repr=False)
    """Called (from the thread that crossed the limit) once per period when a ``warn`` budget is crossed."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise BudgetError(f"a budget needs a name (a non-empty string), not {self.name!r}")
        for label, value in (("period", self.period), ("action", self.action), ("timezone", self.timezone)):
            if not isinstance(value, str):
                raise BudgetError(f"budget {self.name!r}: {label} must be a string, not {value!r}")
        if self.limit_usd is not None and (isinstance(self.limit_usd, bool) or not isinstance(
                self.limit_usd, (int, float)) or not math.isfinite(self.limit_usd)):
            raise BudgetError(f"budget {self.name!r}: limit_usd must be a finite number, not {self.limit_usd!r}")
        if self.limit_tokens is not None and (isinstance(self.limit_tokens, bool) or not isinstance(
                self.limit_tokens, int)):
            raise BudgetError(f"budget {self.name!r}: limit_tokens must be an integer, not {self.limit_tokens!r}")
        if self.scope is not None and not isinstance(self.scope, Mapping):
            raise BudgetError(f"budget {self.name!r}: scope must be a mapping such as {{'feature': 'chat'}}, "
                              f"not {self.scope!r}")
        if self.on_exceeded is not None and not callable(self.on_exceeded):
            raise BudgetError(f"budget {self.name!r}: on_exceeded must be callable")
        if self.period not in PERIODS:
            raise BudgetError(f"budget {self.name!r}: period must be one of {', '.join(PERIODS)}, not {self.period!r}")
        if self.action not in ACTIONS:
            raise BudgetError(f"budget {self.name!r}: action must be 'warn' or 'block', not {self.action!r}")
        if self.limit_usd is None and self.limit_tokens is None:
            raise BudgetError(f"budget {self.name!r}: give limit_usd and/or limit_tokens")
        if (self.limit_usd is not None and self.limit_usd < 0) or (self.limit_tokens is not None and
                                                                    self.limit_tokens < 0):
            raise BudgetError(f"budget {self.name!r}: limits cannot be negative")
        try:
            self.tz()
        except (ZoneInfoNotFoundError, ValueError):
            raise BudgetError(f"budget {self.name!r}: unknown time zone {self.timezone!r}") from None
        if self.scope is not None:
            object.__setattr__(self, "scope", {str(k): str(v) for k, v in self.scope.items()})
            for key in self.scope:
                near = difflib.get_close_matches(key, STANDARD_SCOPE_KEYS, n=1, cutoff=0.75)
                if near and key != near[0]:  # "featur" would never match a call: the budget would never apply
                    raise BudgetError(f"budget {self.name!r}: scope key {key!r} looks like a misspelling of "
                                      f"{near[0]!r}; an attribution key of your own must not look like a standard one")

    def tz(self) -> tzinfo:
        return UTC if self.timezone.upper() == "UTC" else ZoneInfo(self.timezone)

    def applies_to(self, attributes: Mapping[str, str]) -> bool:
        return not self.scope or all(attributes.get(k) == v for k, v in self.scope.items())

    def period_bounds(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """[start, end) of the calendar period containing ``now``, as aware datetimes in the budget's zone."""
        local = (now or datetime.now(UTC)).astimezone(self.tz())
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "week":
            start -= timedelta(days=start.weekday())
        elif self.period == "month":
            start = start.replace(day=1)
        if self.period == "day":
            end = start + timedelta(days=1)
        elif self.period == "week":
            end = start + timedelta(days=7)
        else:
            end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        # recompute through the zone so DST changes inside the period are honoured
        tz = self.tz()
        return (start.replace(tzinfo=None).replace(tzinfo=tz), end.replace(tzinfo=None).replace(tzinfo=tz))


def load_budgets(source: str | os.PathLike[str]) -> list[Budget]:
    """Read ``[[budget]]`` tables from a TOML file."""
    path = Path(source)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BudgetError(f"cannot read budgets file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BudgetError(f"cannot parse budgets file {path}: {exc}") from None
    unknown_tables = sorted(set(data) - {"budget", "budgets"})
    if unknown_tables:  # a misspelled [[buget]] would otherwise turn every budget off without a word
        raise BudgetError(f"{path}: unknown table(s) {unknown_tables}; budgets are [[budget]] tables")
    entries = data.get("budget", data.get("budgets", []))
    if not isinstance(entries, list):
        raise BudgetError(f"{path}: expected [[budget]] tables")
    if not entries:
        raise BudgetError(f"{path} defines no budget; add [[budget]] tables (see examples/budgets.toml)")
    budgets = []
    known = {"name", "period", "limit_usd", "limit_tokens", "scope", "action", "timezone"}
    for entry in entries:
        if not isinstance(entry, dict):
            raise BudgetError(f"{path}: expected [[budget]] tables, found {entry!r}")
        unknown = set(entry) - known
        if unknown:
            raise BudgetError(f"{path}: unknown budget field(s) {sorted(unknown)}")
        try:
            budgets.append(Budget(**entry))
        except TypeError as exc:
            raise BudgetError(f"{path}: {exc}") from None
    return budgets


def resolve_budgets(budgets: Any) -> list[Budget]:
    """instrument(budgets=...): Budget objects, or a path to a TOML file."""
    if not budgets:
        return []
    if isinstance(budgets, (str, os.PathLike)):
        result = load_budgets(budgets)
    elif isinstance(budgets, Budget):
        result = [budgets]
    elif isinstance(budgets, Iterable) and not isinstance(budgets, Mapping):
        result = list(budgets)
        if not all(isinstance(b, Budget) for b in result):
            raise BudgetError("budgets must be tokentrace.Budget objects or a path to a budgets TOML file")
    else:
        raise BudgetError(f"budgets must be tokentrace.Budget objects or a path to a budgets TOML file, "
                          f"not {budgets!r}")
    names = [b.name for b in result]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BudgetError(f"budget names must be unique; repeated: {', '.join(duplicates)}")
    return result
