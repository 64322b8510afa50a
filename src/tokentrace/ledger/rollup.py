"""The ledger's hourly roll-up, and reading a time window through it.

Two tables (schema v3) are kept in the very transaction that appends rows (``fold``), so in any snapshot they
equal an aggregate over ``llm_usage``:

- ``llm_usage_hourly``: per UTC hour, provider, model, operation, feature and status, the number of calls,
  token sums, cost, unpriced calls, summed latency, what budgets count (v4: ``charged_usd``/``charged_tokens``)
  and what prompt caching saved (v9: ``cache_savings_usd``);
- ``llm_usage_histogram``: per UTC hour and measure (``latency`` and ``tokens`` of answered calls with usage,
  ``ttft`` of streams), the count and sum of values in log-spaced buckets, 16 per doubling (each bucket spans
  4.4%; the value reported for a bucket is the mean of the values in it).

A window ``[begin, stop)`` is read as its whole hours from the roll-up plus the partial hours at its two edges
from the rows (``Window``), so a report over two million rows reads a few thousand roll-up rows and at most two
hours of rows, in SQL on both backends, and still gives the exact sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .._usage import TOKEN_COLUMNS
from .db import iso_utc

HOUR_OF_ROW = "substr(ts_utc, 1, 13)"
"""The roll-up's hour key of a row: ``2026-11-23T02`` (UTC)."""
ROLLUP_KEYS = ("provider", "model", "operation", "feature", "status")
BUCKETS_PER_DOUBLING = 16
_LN2 = 0.6931471805599453
NON_POSITIVE_BUCKET = -(2**20)
"""The bucket of values <= 0 (below every log bucket)."""

TABLES = """
CREATE TABLE IF NOT EXISTS llm_usage_hourly (
    hour               TEXT    NOT NULL,   -- UTC hour: 2026-11-23T02
    provider           TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    operation          TEXT    NOT NULL,
    feature            TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    calls              BIGINT  NOT NULL,
    input_tokens       BIGINT  NOT NULL,
    cache_read_tokens  BIGINT  NOT NULL,
    cache_write_tokens BIGINT  NOT NULL,
    output_tokens      BIGINT  NOT NULL,
    reasoning_tokens   BIGINT  NOT NULL,
    total_tokens       BIGINT  NOT NULL,
    cost_usd           {real}  NOT NULL,
    unpriced_calls     BIGINT  NOT NULL,
    latency_ms_sum     {real}  NOT NULL,
    PRIMARY KEY (hour, provider, model, operation, feature, status)
);
CREATE TABLE IF NOT EXISTS llm_usage_histogram (
    hour    TEXT    NOT NULL,
    measure TEXT    NOT NULL,              -- latency | tokens | ttft
    bucket  INTEGER NOT NULL,              -- floor(log2(value) * 16), or -1048576 for values <= 0
    n       BIGINT  NOT NULL,
    total   {real}  NOT NULL,
    PRIMARY KEY (hour, measure, bucket)
)
"""

_SUMS = (*TOKEN_COLUMNS, "total_tokens")
_UNPRICED = "CASE WHEN cost_usd IS NULL AND status = 'ok' AND usage_reported = 1 THEN 1 ELSE 0 END"
MEASURES: dict[str, tuple[str, str]] = {
    "latency": ("latency_ms", "status = 'ok' AND usage_reported = 1"),
    "tokens": ("total_tokens", "status = 'ok' AND usage_reported = 1"),
    "ttft": ("ttft_ms", "ttft_ms IS NOT NULL"),
}
"""measure -> (column, which rows it describes)."""


def bucket_sql(value: str) -> str:
    """SQL of a value's histogram bucket (the same expression on both backends)."""
    return (f"CASE WHEN {value} > 0 THEN CAST(floor(ln({value}) / {_LN2} * {BUCKETS_PER_DOUBLING}) AS INTEGER) "
            f"ELSE {NON_POSITIVE_BUCKET} END")


def _upsert(table: str, keys: tuple[str, ...], sums: tuple[str, ...]) -> str:
    added = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    return f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"


CHARGED_USD = "COALESCE(charged_usd, cost_usd, 0)"
CHARGED_TOKENS = "COALESCE(charged_tokens, total_tokens)"
"""What budgets count for a row: its cost and tokens, or the estimate charged to an answered call without usage."""
_HOURLY_SUMS = ("calls", *_SUMS, "cost_usd", "unpriced_calls", "latency_ms_sum", "charged_usd", "charged_tokens",
                "cache_savings_usd")
FOLD_HOURLY = (
    f"INSERT INTO llm_usage_hourly (hour, {', '.join(ROLLUP_KEYS)}, {', '.join(_HOURLY_SUMS)}) "
    f"SELECT {HOUR_OF_ROW}, {', '.join(ROLLUP_KEYS)}, COUNT(*), {', '.join(f'SUM({c})' for c in _SUMS)}, "
    f"COALESCE(SUM(cost_usd), 0), SUM({_UNPRICED}), SUM(latency_ms), SUM({CHARGED_USD}), SUM({CHARGED_TOKENS}), "
    f"COALESCE(SUM(cache_savings_usd), 0) "
    f"FROM llm_usage WHERE id > ? "
    f"GROUP BY {HOUR_OF_ROW}, {', '.join(ROLLUP_KEYS)}" + _upsert("llm_usage_hourly", ("hour", *ROLLUP_KEYS),
                                                                    _HOURLY_SUMS))


def _measured_rows(where: str) -> str:
    """hour, measure, bucket, value of every measured value in the rows matching ``where``."""
    return " UNION ALL ".join(
        f"SELECT {HOUR_OF_ROW} AS hour, '{name}' AS measure, {bucket_sql(column)} AS bucket, {column} AS v "
        f"FROM llm_usage WHERE ({where}) AND {condition}" for name, (column, condition) in MEASURES.items())


FOLD_HISTOGRAM = (
    f"INSERT INTO llm_usage_histogram (hour, measure, bucket, n, total) SELECT hour, measure, bucket, COUNT(*), "
    f"SUM(v) FROM ({_measured_rows('id > ?')}) AS m GROUP BY hour, measure, bucket"
    + _upsert("llm_usage_histogram", ("hour", "measure", "bucket"), ("n", "total")))


def fold(db: Any, after_id: int) -> None:
    """Add the rows with ``id > after_id`` to the roll-up (inside the transaction that wrote them)."""
    db.execute(FOLD_HOURLY, (after_id,))
    db.execute(FOLD_HISTOGRAM, (after_id, after_id, after_id))


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H")


@dataclass(frozen=True)
class Window:
    """``[begin, stop)`` (``stop`` None: open-ended) split into whole hours and the rows at the edges."""

    begin: datetime
    stop: datetime | None = None

    def _hours(self) -> tuple[datetime, datetime | None]:
        first = _hour_floor(self.begin)
        if first < self.begin:
            first += timedelta(hours=1)
        last = _hour_floor(self.stop) if self.stop is not None else None
        return first, last

    def rollup_where(self) -> tuple[str, list[Any]]:
        """Which roll-up rows the window covers whole (``hour`` column)."""
        first, last = self._hours()
        if last is None:
            return "hour >= ?", [_hour_key(first)]
        if first >= last:
            return "1 = 0", []
        return "hour >= ? AND hour < ?", [_hour_key(first), _hour_key(last)]

    def all_rows_where(self) -> tuple[str, list[Any]]:
        """Every ledger row of the window."""
        if self.stop is None:
            return "ts_utc >= ?", [iso_utc(self.begin.timestamp())]
        return "ts_utc >= ? AND ts_utc < ?", [iso_utc(self.begin.timestamp()), iso_utc(self.stop.timestamp())]

    def rows_where(self) -> tuple[str, list[Any]]:
        """Which ledger rows fall in the window's partial hours (``ts_utc`` column)."""
        first, last = self._hours()
        begin = iso_utc(self.begin.timestamp())
        if last is None:
            return "ts_utc >= ? AND ts_utc < ?", [begin, iso_utc(first.timestamp())]
        stop = iso_utc(self.stop.timestamp())  # type: ignore[union-attr]
        if first >= last:
            return "ts_utc >= ? AND ts_utc < ?", [begin, stop]
        return ("((ts_utc >= ? AND ts_utc < ?) OR (ts_utc >= ? AND ts_utc < ?))",
                [begin, iso_utc(first.timestamp()), iso_utc(last.timestamp()), stop])


SOURCE_COLUMNS = ("calls", "status", *_SUMS, "cost_usd", "unpriced_calls", "latency_ms_sum", "charged_usd",
                  "charged_tokens", "cache_savings_usd")
"""What ``aggregate_source`` yields per row, besides the group key ``k``."""


def aggregate_source(window: Window, key_rows: str, key_rollup: str | None, extra: str = "",
                     extra_params: list[Any] | None = None) -> tuple[str, list[Any]]:
    """A subquery of the window's calls in one shape whether they come from roll-up or rows: ``k`` (the group
    key) and SOURCE_COLUMNS. ``extra`` filters on roll-up key columns (the same SQL on rows and roll-up).
    ``key_rollup`` None: a key the roll-up does not keep, so every row of the window is read."""
    extra_params = extra_params or []
    condition = f" AND {extra}" if extra else ""
    edges, edge_params = window.rows_where() if key_rollup is not None else window.all_rows_where()
    from_rows = (f"SELECT {key_rows} AS k, 1 AS calls, status, {', '.join(_SUMS)}, COALESCE(cost_usd, 0) AS "
                 f"cost_usd, {_UNPRICED} AS unpriced_calls, latency_ms AS latency_ms_sum, "
                 f"{CHARGED_USD} AS charged_usd, {CHARGED_TOKENS} AS charged_tokens, "
                 f"COALESCE(cache_savings_usd, 0) AS cache_savings_usd FROM llm_usage "
                 f"WHERE {edges}{condition}")
    if key_rollup is None:
        return from_rows, [*edge_params, *extra_params]
    hours, hour_params = window.rollup_where()
    from_rollup = (f"SELECT {key_rollup} AS k, {', '.join(SOURCE_COLUMNS)} FROM llm_usage_hourly "
                   f"WHERE {hours}{condition}")
    return (f"{from_rows} UNION ALL {from_rollup}",
            [*edge_params, *extra_params, *hour_params, *extra_params])


def histogram_sql(window: Window) -> tuple[str, list[Any]]:
    """measure, bucket, count, sum over the window, ascending by bucket."""
    hours, hour_params = window.rollup_where()
    edges, edge_params = window.rows_where()
    return (f"SELECT measure, bucket, SUM(n), SUM(total) FROM ("
            f"SELECT measure, bucket, n, total FROM llm_usage_histogram WHERE {hours} UNION ALL "
            f"SELECT measure, bucket, 1 AS n, v AS total FROM ({_measured_rows(edges)}) AS e"
            f") AS h GROUP BY measure, bucket ORDER BY measure, bucket",
            [*hour_params, *edge_params * len(MEASURES)])
