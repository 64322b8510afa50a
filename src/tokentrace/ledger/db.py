"""The usage ledger's row: one append-only row per call in ``llm_usage``, its columns and how a record becomes one.

The schema, migrations and the connection to either backend (SQLite or PostgreSQL) live in ``ledger.store``.
Stdlib only.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Mapping

from .._usage import TOKEN_COLUMNS, UsageRecord

COLUMNS: tuple[str, ...] = (
    "ts_utc", "provider", "model", "request_model", "operation", "feature", "session_id", "user_id", "agent_id",
    "attributes_json", *TOKEN_COLUMNS, "total_tokens", "cost_usd", "latency_ms", "ttft_ms", "stream", "status",
    "error_type", "response_id", "trace_id", "price_source", "usage_reported", "cache_hit", "charged_usd",
    "charged_tokens", "service_tier", "fees_usd", "cache_savings_usd", "audio_seconds", "characters", "images",
)

NULLABLE_COLUMNS = frozenset({
    "session_id", "user_id", "agent_id", "cost_usd", "ttft_ms", "error_type", "response_id", "trace_id",
    "price_source", "charged_usd", "charged_tokens", "service_tier", "fees_usd", "cache_savings_usd",
    "audio_seconds", "characters", "images",
})
"""The columns that may be NULL and default to NULL: a writer may leave them out of an INSERT when they are NULL."""


class LedgerError(Exception):
    """The ledger file cannot be opened or read (missing, corrupt, newer schema)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        """Retrying cannot heal it (a wrong password, a database that does not exist): say so once, stop."""


class NewerSchemaError(LedgerError):
    """The ledger was migrated by a newer tokentrace while this process was writing to it: this process must not
    write rows in its older layout (they would be dropped or under-counted by the newer readers)."""


_last_second: tuple[int, str] = (-1, "")


def iso_utc(ts: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` of a Unix time, rounded to the microsecond as ``datetime`` rounds it.

    The writer thread formats one per row: the text up to the second is kept from the previous call (rows come in
    time order), so most rows cost one f-string.
    """
    global _last_second
    if not 0 <= ts < 253402300800:  # outside years 1970..9999: leave it to datetime
        return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fraction, whole = math.modf(ts)
    micro = round(fraction * 1e6)
    second = int(whole)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    last = _last_second
    if last[0] != second:
        last = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{last[1]}.{micro:06d}Z"


_last_attributes: tuple[Any, str] = (None, "{}")


def attributes_json(attrs: Mapping[str, str]) -> str:
    """The attribution as compact JSON with sorted keys. Calls in one ``attributes()`` block share one immutable
    mapping, so the text of the previous row's mapping (kept with the mapping itself, never by id) is reused."""
    global _last_attributes
    if not attrs:
        return "{}"
    last = _last_attributes
    if last[0] is attrs:
        return last[1]
    try:  # string keys and values (what attributes() keeps): the text json.dumps gives, at a third of its cost
        text = "{" + ",".join([f"{_quote(key)}:{_quote(value)}" for key, value in sorted(attrs.items())]) + "}"
    except TypeError:  # something else: let json decide
        text = json.dumps(dict(attrs), separators=(",", ":"), sort_keys=True)
    _last_attributes = (attrs, text)
    return text


_NO_MEDIA = (None, None, None)


def row_of(record: UsageRecord) -> tuple[Any, ...]:
    """The ledger row of a record, in COLUMNS order (cheap: called on the writer thread for every row)."""
    (ts, provider, model, request_model, operation, usage, cost, source, latency, status, stream, ttft, error_type,
     response_id, _, usage_reported, attrs, trace_id, _, charged_usd, charged_tokens, tier, fees, cache, media) = record
    inp, read, write, out, reasoning = usage[:5]
    if attrs:
        get = attrs.get
        who: tuple[Any, ...] = (get("feature", ""), get("session_id"), get("user_id"), get("agent_id"),
                                attributes_json(attrs))
    else:
        who = _NO_ATTRIBUTION
    return (
        iso_utc(ts), provider, model, request_model, operation, *who,
        inp, read, write, out, reasoning, inp + read + write + out + reasoning,
        cost, latency * 1000.0, None if ttft is None else ttft * 1000.0,
        int(stream), status, error_type, response_id, trace_id,
        source, int(usage_reported), int(status == "cached"), charged_usd, charged_tokens, tier, fees,
        None if cache is None else cache[0] - cache[1],
        *(_NO_MEDIA if media is None else (media.audio_seconds or None, media.characters or None,
                                           media.images or None)),
    )


_NO_ATTRIBUTION = ("", None, None, None, "{}")
"""feature, session_id, user_id, agent_id and attributes_json of a call made outside any ``attributes()``."""


INSERT_SQL = f"INSERT INTO llm_usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
"""With ``?`` placeholders; ``ledger.store.Db`` turns them into the backend's own."""
