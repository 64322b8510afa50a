"""Budgets: a spend or token limit per calendar period, optionally scoped to attribution keys (and to the provider
or model asked for); warn or block; one shared limit, or one per principal (``per="user_id"``).

``Budget`` objects come from code or a TOML file. ``BudgetExceeded`` is raised by a ``block`` budget before
the request leaves the process. Period arithmetic and narrowing a templated budget to one principal's account
(``Budget.account``) live here; the accounting lives in sinks/budget.py.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._support.config_error import ConfigError
from .._support.text import encodable, usd
from .refusal import CallRefused

PERIODS = ("hour", "day", "week", "month")
ACTIONS = ("warn", "block")


class BudgetExceeded(CallRefused):
    """A ``block`` budget would be exceeded by this call; the request was not sent and nothing was spent."""

    def __init__(self, budget: Budget, spent_usd: float, spent_tokens: int, estimate_usd: float,
                 estimate_tokens: int, requests: int | None = None) -> None:
        self.budget = budget
        self.spent_usd = spent_usd
        self.spent_tokens = spent_tokens
        self.estimate_usd = estimate_usd
        self.estimate_tokens = estimate_tokens
        self.requests = requests
        """Calls counted in the period or window (a budget with ``limit_requests``), else None."""
        limits = [usd(budget.limit_usd) if budget.limit_usd is not None else "",
                  f"{budget.limit_tokens:,} tokens" if budget.limit_tokens is not None else "",
                  f"{budget.limit_requests:,} calls" if budget.limit_requests is not None else ""]
        span = f"this {budget.period}" if budget.window is None else f"in the {budget.span}"
        counted = f"; {requests:,} calls {span}" if requests is not None else ""
        super().__init__(
            f"budget {budget.name!r} ({budget.span}, limit {' / '.join(x for x in limits if x)}) would be exceeded: "
            f"spent and reserved {usd(spent_usd)} and {spent_tokens:,} tokens {span}{counted} (reserved: calls "
            f"in flight anywhere in the fleet), this call could cost up to "
            f"{usd(estimate_usd)} and {estimate_tokens:,} tokens; the request was not sent"
        )


    def explain(self, parts: str) -> None:
        """Add what the estimate is made of (``estimate.estimate_parts``) to the message."""
        self.args = (f"{self.args[0]} ({parts})" if self.args else parts,)


class BudgetUnavailable(CallRefused):
    """``budget_unavailable="block"`` and the shared budget store (the ledger database) cannot be reached."""

    def __init__(self, budget: Budget, reason: str) -> None:
        self.budget = budget
        super().__init__(f"budget {budget.name!r} cannot be checked ({reason}); the request was not sent "
                         "(budget_unavailable='block')")


STANDARD_SCOPE_KEYS = ("feature", "session_id", "user_id", "agent_id")
"""The attribution keys ``tokentrace.attributes()`` names; a scope key close to one of them is a typo."""
REQUEST_KEYS = ("provider", "model")
"""Scope and ``per`` keys read from the request itself: the provider id and the model asked for."""
MAX_PRINCIPAL_CHARS = 200
"""A principal value longer than this is kept as its first characters and a hash (distinct values stay distinct)."""
PRINCIPAL_SEPARATOR = "/"
"""Joins the values of a pair ``per=("tenant", "feature")`` into one principal: ``acme/chat``."""


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
    per: str | tuple[str, ...] | None = None
    """A templated budget: the limit applies to each distinct value of this attribution key (or pair of keys)
    separately, e.g. ``per="user_id"``: each user may spend ``limit_usd``. A call without the key is not counted."""
    limits: Mapping[str, float] | None = None
    """Per-principal limits overriding the default one (USD if the budget has ``limit_usd``, else tokens)."""
    limit_for: Callable[[str], float | None] | None = field(default=None, compare=False, repr=False)
    """A principal's limit from the application (its own plans table); None: the default. Asked on a principal's
    first call and again every ``LIMIT_REFRESH_S`` seconds, so a changed plan applies without a restart."""
    principal: str | None = None
    """Set on an account (``Budget.account``): the principal this budget was narrowed to."""
    window: str | None = None
    """A rolling window (``"1m"``, ``"24h"``, ``"7d"``: seconds, minutes, hours or days) instead of the calendar
    ``period``: the limit applies to what was spent in the last ``window``, at any moment."""
    limit_requests: int | None = None
    """At most this many calls (answered or failed) in the period or window: the runaway-user limit, e.g.
    ``limit_requests=60, window="1m"``."""

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
        if self.limit_requests is not None and (isinstance(self.limit_requests, bool) or not isinstance(
                self.limit_requests, int) or self.limit_requests < 0):
            raise BudgetError(f"budget {self.name!r}: limit_requests must be an integer >= 0, "
                              f"not {self.limit_requests!r}")
        if self.window is not None and window_seconds(self.window) is None:
            raise BudgetError(f"budget {self.name!r}: window must be a length such as '1m', '1h', '24h' or '7d' "
                              f"(at most 31d), not {self.window!r}")
        if self.limit_usd is None and self.limit_tokens is None and self.limit_requests is None:
            raise BudgetError(f"budget {self.name!r}: give limit_usd, limit_tokens and/or limit_requests")
        if (self.limit_usd is not None and self.limit_usd < 0) or (self.limit_tokens is not None and
                                                                    self.limit_tokens < 0):
            raise BudgetError(f"budget {self.name!r}: limits cannot be negative")
        try:
            self.tz()
        except (ZoneInfoNotFoundError, ValueError):
            raise BudgetError(f"budget {self.name!r}: unknown time zone {self.timezone!r}") from None
        if self.scope is not None:
            for key, value in self.scope.items():
                if not isinstance(value, (str, int)) or isinstance(value, bool):
                    raise BudgetError(f"budget {self.name!r}: scope {key} = {value!r}: a scope value must be one "
                                      f"text value (one budget per value, or per={key!r} for one per value)")
            object.__setattr__(self, "scope", {str(k): str(v) for k, v in self.scope.items()})
            for key in self.scope:
                self._check_key(key, "scope key", identifier=False)
        self._check_template()

    def _check_key(self, key: Any, what: str, *, identifier: bool = True) -> None:
        if not isinstance(key, str) or not key or (identifier and not key.isidentifier()):
            raise BudgetError(f"budget {self.name!r}: {what} {key!r} is not an attribution key (a name such as "
                              f"user_id, or {', '.join(REQUEST_KEYS)})")
        near = difflib.get_close_matches(key, (*STANDARD_SCOPE_KEYS, *REQUEST_KEYS), n=1, cutoff=0.75)
        if near and key != near[0]:  # "featur" would never match a call: the budget would never apply
            raise BudgetError(f"budget {self.name!r}: {what} {key!r} looks like a misspelling of "
                              f"{near[0]!r}; an attribution key of your own must not look like a standard one")

    def _check_template(self) -> None:
        if self.per is not None:
            keys = (self.per,) if isinstance(self.per, str) else self.per
            if not isinstance(keys, tuple) or not keys:
                raise BudgetError(f"budget {self.name!r}: per must be an attribution key or a tuple of them, "
                                  f"not {self.per!r}")
            for key in keys:
                self._check_key(key, "per key")
            if len(set(keys)) != len(keys):
                raise BudgetError(f"budget {self.name!r}: per names a key twice: {keys}")
            object.__setattr__(self, "per", keys)
        if self.limits is not None:
            if self.per is None:
                raise BudgetError(f"budget {self.name!r}: limits for named principals need per=... (the key whose "
                                  "values they name)")
            if not isinstance(self.limits, Mapping):
                raise BudgetError(f"budget {self.name!r}: limits must map a principal to its limit, "
                                  f"not {self.limits!r}")
            for principal, limit in self.limits.items():
                if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) \
                        or limit < 0:
                    raise BudgetError(f"budget {self.name!r}: the limit of {principal!r} must be a finite number "
                                      f">= 0, not {limit!r}")
            object.__setattr__(self, "limits", {str(k): float(v) for k, v in self.limits.items()})
        if self.limit_for is not None:
            if self.per is None:
                raise BudgetError(f"budget {self.name!r}: limit_for needs per=... (the key whose values it prices)")
            if not callable(self.limit_for):
                raise BudgetError(f"budget {self.name!r}: limit_for must be callable")

    @property
    def window_s(self) -> float | None:
        """The rolling window in seconds; None for a calendar period."""
        return None if self.window is None else window_seconds(self.window)

    @property
    def span(self) -> str:
        """What the limit is counted over, for messages: ``day``, or ``last 24h``."""
        return self.period if self.window is None else f"last {self.window}"

    @property
    def per_keys(self) -> tuple[str, ...]:
        """The key(s) of a templated budget; () for an ordinary one (or an account)."""
        return () if self.per is None or self.principal is not None else tuple(self.per)

    def principal_of(self, attributes: Mapping[str, str], provider: str = "", model: str = "") -> str | None:
        """The principal a call belongs to under this templated budget; None when the call lacks a key."""
        values = []
        for key in self.per_keys:
            value = attributes.get(key) if key not in REQUEST_KEYS else provider if key == "provider" else model
            if not value:
                return None
            values.append(value)
        return bounded_principal(join_principal(values))

    def limit_of(self, principal: str) -> float | None:
        """The principal's own limit, from ``limits`` or ``limit_for``; None: the budget's default. Raises what
        ``limit_for`` raises, or BudgetError for a value that is no limit."""
        if self.limits is not None and principal in self.limits:
            return self.limits[principal]
        if self.limit_for is None:
            return None
        limit = self.limit_for(principal)
        if limit is None:
            return None
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit < 0:
            raise BudgetError(f"budget {self.name!r}: limit_for({principal!r}) returned {limit!r}, not a finite "
                              "number >= 0")
        return float(limit)

    def account(self, principal: str, limit: float | None = None) -> Budget:
        """This templated budget narrowed to one principal: an ordinary budget named ``name[principal]``, scoped to
        the principal's key values, with the principal's limit (``limit``, else the default)."""
        values = split_principal(principal) if len(self.per_keys) > 1 else [principal]
        scope = {**(self.scope or {}), **dict(zip(self.per_keys, values, strict=False))}
        usd_limit, token_limit = self.limit_usd, self.limit_tokens
        if limit is not None:
            if usd_limit is not None:
                usd_limit = limit
            else:
                token_limit = int(limit)
        return Budget(f"{self.name}[{principal}]", self.period, usd_limit, token_limit, scope, self.action,
                      self.timezone, self.on_exceeded, per=self.per, principal=principal, window=self.window,
                      limit_requests=self.limit_requests)

    def tz(self) -> tzinfo:
        return UTC if self.timezone.upper() == "UTC" else ZoneInfo(self.timezone)

    def applies_to(self, attributes: Mapping[str, str], provider: str = "", model: str = "") -> bool:
        """Whether a call with these attributes (and, for ``provider``/``model`` scope keys, this provider and
        requested model) counts against this budget."""
        if not self.scope:
            return True
        for key, value in self.scope.items():
            have = attributes.get(key) if key not in REQUEST_KEYS else provider if key == "provider" else model
            if have != value:
                return False
        return True

    def period_bounds(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """[start, end) of the calendar period containing ``now``, as aware datetimes in the budget's zone."""
        window = self.window_s
        if window is not None:  # rolling: the last ``window`` up to now (a warning is once per window-long slot)
            moment = (now or datetime.now(UTC)).astimezone(UTC)
            return moment - timedelta(seconds=window), moment + timedelta(seconds=window)
        local = (now or datetime.now(UTC)).astimezone(self.tz())
        if self.period == "hour":  # an hour is an hour in every zone: bounds in UTC, DST cannot stretch one
            begin = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            return begin, begin + timedelta(hours=1)
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


_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW_S = 31 * 86400


def window_seconds(text: Any) -> float | None:
    """``"90s"``, ``"1m"``, ``"24h"``, ``"7d"`` in seconds; None when it is no such length (or over 31 days)."""
    if not isinstance(text, str) or len(text) < 2 or text[-1] not in _WINDOW_UNITS or not text[:-1].isdigit():
        return None
    seconds = int(text[:-1][:9]) * _WINDOW_UNITS[text[-1]]
    return float(seconds) if 0 < seconds <= MAX_WINDOW_S else None


LIMIT_REFRESH_S = 60.0
"""How long a principal's limit from ``limit_for`` holds before it is asked again."""


def join_principal(values: list[str]) -> str:
    """The principal of a pair or more of key values: joined by ``/``, each ``\\`` and ``/`` inside a value escaped
    with a backslash, so ``acme/chat`` + ``summary`` and ``acme`` + ``chat/summary`` are two principals. One value is
    its own principal, unescaped."""
    if len(values) == 1:
        return values[0]
    return PRINCIPAL_SEPARATOR.join(v.replace("\\", "\\\\").replace("/", "\\/") for v in values)


def split_principal(principal: str) -> list[str]:
    """The key values ``join_principal`` joined."""
    values, current, escaped = [], [], False
    for char in principal:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == PRINCIPAL_SEPARATOR:
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    return values


def bounded_principal(value: str) -> str:
    """A principal value safe to store and show: encodable, at most MAX_PRINCIPAL_CHARS characters (a longer one
    keeps its start and a hash of the whole, so two long values never share an account)."""
    value = encodable(value)
    if len(value) <= MAX_PRINCIPAL_CHARS:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
    return f"{value[:MAX_PRINCIPAL_CHARS - 18]}~{digest}"  # (kept as it was: principals already stored use it)


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
    known = {"name", "period", "limit_usd", "limit_tokens", "scope", "action", "timezone", "per", "limits", "window",
             "limit_requests"}
    for entry in entries:
        if not isinstance(entry, dict):
            raise BudgetError(f"{path}: expected [[budget]] tables, found {entry!r}")
        unknown = set(entry) - known
        if unknown:
            raise BudgetError(f"{path}: unknown budget field(s) {sorted(unknown)}")
        if isinstance(entry.get("per"), list):
            entry = {**entry, "per": tuple(entry["per"])}
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
