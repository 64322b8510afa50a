"""Tolerant readers of SDK response fields: objects or dicts, missing or odd values become None or 0, never raise."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Mapping, ParamSpec, TypeVar
from urllib.parse import urlsplit

from .._support import errors as _errors


def int_or_none(value: Any) -> int | None:
    """An int usage field, or None for anything else (missing, None, bool, str, float, negative)."""
    if type(value) is int and value >= 0:
        return value
    return None


def number_or_none(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def field(obj: Any, name: str) -> Any:
    """An attribute of an SDK object or a key of a dict (providers send both shapes); None when absent."""
    if obj is None:
        return None
    if obj.__class__ is dict:
        return obj.get(name)
    values = getattr(obj, "__dict__", None)
    if values is not None:
        if name in values:
            return values[name]
        if hasattr(obj, "__pydantic_extra__"):  # a pydantic model: fields live in __dict__, extras here
            extra = obj.__pydantic_extra__  # (asking the model for a missing name raises slowly)
            return extra.get(name) if extra else None
    try:
        value = getattr(obj, name, None)
        if value is None and isinstance(obj, Mapping):
            return obj.get(name)
    except Exception:  # an odd object whose attribute access raises: treat as absent
        return None
    return value


_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


class _AttributeFields:
    """``fields_of`` for an object that is neither a dict nor a pydantic model: each read goes through ``field``."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def get(self, name: str, default: Any = None) -> Any:
        value = field(self.obj, name)
        return default if value is None else value


def fields_of(obj: Any) -> Mapping[str, Any]:
    """All fields of an SDK object at once, for readers that take several: one lookup of the object's storage,
    then plain ``.get(name)`` per field (None when absent), with the same answers as ``field``."""
    if obj is None:
        return _NO_FIELDS
    if obj.__class__ is dict:
        return obj
    values = getattr(obj, "__dict__", None)
    if values is not None and hasattr(obj, "__pydantic_extra__"):
        extra = obj.__pydantic_extra__
        return {**extra, **values} if extra else values
    return _AttributeFields(obj)  # type: ignore[return-value]


def server_of(url: Any) -> tuple[str | None, int | None]:
    """(host, port) of a base URL; the scheme's default port when none is given. Never raises."""
    if url is None:
        return None, None
    return _server_of_text(str(url))


@functools.lru_cache(maxsize=256)
def _server_of_text(url: str) -> tuple[str | None, int | None]:
    """A client's base URL is the same text on every call: parsed once (a handful of clients per process)."""
    try:
        parts = urlsplit(url)
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http"
                                              else None)
    except ValueError:
        return None, None


MAX_COUNT = 2**53 - 1
"""No call bills more tokens than this; a larger "count" is not a real one (and would overflow the ledger)."""


class UnreadableCountError(ValueError):
    """A usage count that is a number but cannot be a token count (fractional, huge, NaN): the whole usage of
    the call is then treated as not reported (budgets charge their estimate)."""


def count(obj: Any, name: str, stage: str) -> int:
    """A token count field: a non-negative int; 0 when absent.

    An integral float (``3000.0``, as some hosts send) is that int; an absent or null field is 0. Anything else
    (``3000.5``, ``2**63``, NaN, ``-5``, ``"12"``, ``True``, a list) raises UnreadableCountError, which
    ``usage_reader`` turns into "usage not reported".
    """
    return count_in(fields_of(obj), name, stage)


def count_in(values: Mapping[str, Any], name: str, stage: str) -> int:
    """``count`` over the fields of an object already read with ``fields_of``."""
    value = values.get(name)
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    if value is None:
        return 0
    if type(value) is float and value.is_integer() and 0 <= value <= MAX_COUNT:
        return int(value)
    shown = repr(value) if type(value) in (int, float, bool) else type(value).__name__
    _errors.report(stage, None, f"usage field {name!r} holds {shown}, which cannot be a token count; the call's "
                                "usage is treated as not reported")
    raise UnreadableCountError(name)  # negative, fractional, huge, NaN, a string, a boolean, a list: not a count


def counts_in(values: Mapping[str, Any], names: tuple[str, ...], stage: str) -> list[int]:
    """``count_in`` of several fields of one object in one pass: plain ints are taken as they are, anything else
    goes through ``count_in`` (so it may raise UnreadableCountError the same way)."""
    found = []
    for name in names:
        value = values.get(name)
        if type(value) is int and 0 <= value <= MAX_COUNT:
            found.append(value)
        elif value is None:
            found.append(0)
        else:
            found.append(count_in(values, name, stage))
    return found


P = ParamSpec("P")
R = TypeVar("R")


def usage_reader(read: Callable[P, R]) -> Callable[P, R | None]:
    """Decorate a provider's usage reader: a count that cannot be real makes the usage None (not reported)."""

    @functools.wraps(read)
    def reader(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            usage = read(*args, **kwargs)
        except UnreadableCountError:
            return None
        if usage is not None and not getattr(usage, "total", 1) and args and not _holds_a_count(args[0]):
            return None  # a usage that counts nothing at all (a list, every count null): not reported, never 0
        return usage

    return reader


def _holds_a_count(usage: Any) -> bool:
    """Whether a usage object (or its fields) holds at least one number: read only for a usage that adds up to 0.
    An object whose fields cannot be listed (a protobuf message) is taken to hold what was read from it."""
    if isinstance(usage, _AttributeFields):
        usage = usage.obj
    if isinstance(usage, Mapping):
        values: Any = usage.values()
    elif usage is None or isinstance(usage, (list, tuple, str, bytes, bool, int, float)):
        return False
    else:
        fields = getattr(usage, "__dict__", None)
        if fields is None:
            return True
        values = fields.values()
    return any(type(v) in (int, float) or (v is not None and not isinstance(v, (str, list, tuple, bool))
                                          and _holds_a_count(v)) for v in values)


USD_PER_TICK = 1e-10
"""xAI reports what it billed in ticks of 1e-10 USD (``cost_in_usd_ticks``)."""
REPORTED_BILL_FIELDS: tuple[tuple[str, float], ...] = (("cost", 1.0), ("cost_in_usd_ticks", USD_PER_TICK),
                                                      ("estimated_cost", 1.0))
"""Where a host says what it billed in a ``usage`` object, and its unit in USD: OpenRouter's ``cost``, xAI's
``cost_in_usd_ticks``, DeepInfra's ``estimated_cost``. Read in every API of the host (chat, completions,
embeddings, Responses); the figure wins over any price table."""


def reported_in(values: Mapping[str, Any]) -> float | None:
    """What the host reports it billed for the call (``REPORTED_BILL_FIELDS``), in USD; None when it does not."""
    for name, unit in REPORTED_BILL_FIELDS:
        raw = values.get(name)
        if raw is None:
            continue
        cost = number_or_none(raw)
        if cost is not None and 0 <= cost < math.inf:
            return cost * unit
    return None


def reported_cost(usage: Any) -> float | None:
    """What the host reports it billed (``REPORTED_BILL_FIELDS``); None for a host that does not say."""
    return None if usage is None else reported_in(fields_of(usage))


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
