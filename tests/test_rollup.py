"""The hourly roll-up: reports read through it give exactly what an aggregate over every row gives.

Compared against plain SQL over ``llm_usage`` for random rows and random windows (edges inside hours, on hour
boundaries, inside one hour), after migrating a ledger written before the roll-up existed, and for the
histogram percentiles against the exact ones.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentrace import Budget, Usage
from tokentrace.ledger import reports
from tokentrace.ledger.db import row_of
from tokentrace.ledger.schema import SCHEMA_VERSION
from tokentrace.ledger.store import open_db

from .ledger_helpers import record, write_ledger

NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
FEATURES = ("chat", "search", "")
STATUSES = ("ok", "ok", "ok", "error", "blocked", "cached")


def _records(seeds: list[tuple[int, int, int, int]]) -> list[Any]:
    """One record per seed: (seconds before NOW, feature, status, size)."""
    out = []
    for seconds, feature, status, size in seeds:
        out.append(record((NOW - timedelta(seconds=seconds)).timestamp(), feature=FEATURES[feature],
                          status=STATUSES[status], model=("gpt-4o-mini", "gpt-4o")[size % 2],
                          usage=Usage(input=size, cache_read=size // 3, output=size // 2, reasoning=size % 7),
                          cost=None if size % 11 == 0 else size * 1e-6, latency_s=(size + 1) / 1000,
                          ttft_s=size / 5000 if size % 2 else None))
    return out


def _by_rows(path: Path, by_sql: str, begin: datetime, stop: datetime) -> dict[str, tuple[Any, ...]]:
    """The reference: one GROUP BY over every row of the window."""
    conn = sqlite3.connect(path)
    rows = conn.execute(
        f"SELECT {by_sql}, COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(input_tokens), "
        f"SUM(cache_read_tokens), SUM(output_tokens), SUM(reasoning_tokens), SUM(total_tokens), "
        f"COALESCE(SUM(cost_usd), 0), SUM(CASE WHEN cost_usd IS NULL AND status = 'ok' AND usage_reported = 1 "
        f"THEN 1 ELSE 0 END), COALESCE(AVG(CASE WHEN status = 'ok' THEN latency_ms END), 0) "  # answered calls
        f"FROM llm_usage WHERE ts_utc >= ? AND ts_utc < ? GROUP BY 1",
        (begin.isoformat(timespec="microseconds").replace("+00:00", "Z"),
         stop.isoformat(timespec="microseconds").replace("+00:00", "Z"))).fetchall()
    conn.close()
    return {str(r[0]): r[1:] for r in rows}


def _as_reference(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["calls"], row["errors"], row["input_tokens"], row["cache_read_tokens"], row["output_tokens"],
            row["reasoning_tokens"], row["total_tokens"], row["cost_usd"], row["unpriced_calls"],
            row["avg_latency_ms"])


def _rounded(values: tuple[Any, ...]) -> tuple[Any, ...]:
    cost = round(float(values[7]), 12)
    unpriced = values[8]
    # reports say null (unpriced) for a group with unpriced calls and nothing priced to add up
    return (*values[:7], None if unpriced and cost == 0 else cost, unpriced, round(float(values[9]), 3))


seed = st.tuples(st.integers(0, 3 * 86400), st.integers(0, 2), st.integers(0, 5), st.integers(0, 5000))
edge = st.one_of(st.integers(0, 3 * 86400), st.sampled_from([0, 1800, 3600, 5400, 86400, 86400 + 1800]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seeds=st.lists(seed, min_size=0, max_size=60), ends=st.tuples(edge, edge))
def test_reports_through_the_rollup_equal_an_aggregate_over_every_row(seeds: list[Any],
                                                                      ends: tuple[int, int]) -> None:
    later, earlier = sorted(ends)
    begin, stop = NOW - timedelta(seconds=earlier + 1), NOW - timedelta(seconds=later) + timedelta(seconds=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_ledger(Path(tmp) / "usage.db", _records(seeds))
        for by, by_sql in (("feature", "feature"), ("model", "model"), ("day", "substr(ts_utc, 1, 10)"),
                           ("user", "COALESCE(user_id, '')")):
            data = reports.report(by=by, ledger=path, start=begin.isoformat(), end=stop.isoformat())
            expected = {k: _rounded(v) for k, v in _by_rows(path, by_sql, begin, stop).items()}
            assert {r["key"]: _as_reference(r) for r in data["rows"]} == expected
        totals = reports.stats(ledger=path, start=begin.isoformat(), end=stop.isoformat())["totals"]
        expected_total = _by_rows(path, "'t'", begin, stop).get("t")
        assert _as_reference(totals) == (_rounded(expected_total) if expected_total else (0,) * 7 + (0.0, 0, 0.0))


def _as_version(path: Path, version: int) -> None:
    """Make the file look like a ledger written by an older tokentrace: schema 3 (no budget charge columns, nor any
    later one) or schema 2 (no roll-up either)."""
    conn = sqlite3.connect(path)
    conn.executescript("ALTER TABLE llm_usage DROP COLUMN audio_seconds; "
                       "ALTER TABLE llm_usage DROP COLUMN characters; "
                       "ALTER TABLE llm_usage DROP COLUMN images; "
                       "ALTER TABLE llm_usage DROP COLUMN cache_savings_usd; "
                       "ALTER TABLE llm_usage_hourly DROP COLUMN cache_savings_usd; "
                       "ALTER TABLE llm_usage DROP COLUMN service_tier; "
                       "ALTER TABLE llm_usage DROP COLUMN fees_usd; "
                       "ALTER TABLE llm_usage DROP COLUMN charged_usd; "
                       "ALTER TABLE llm_usage DROP COLUMN charged_tokens; "
                       "ALTER TABLE llm_usage_hourly DROP COLUMN charged_usd; "
                       "ALTER TABLE llm_usage_hourly DROP COLUMN charged_tokens;")
    if version < 3:
        conn.executescript("DROP TABLE llm_usage_hourly; DROP TABLE llm_usage_histogram;")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


@pytest.mark.parametrize("version", [2, 3])
def test_an_older_ledger_is_rolled_up_when_opened_and_budgets_read_the_same_spend(tmp_path: Path,
                                                                                   version: int) -> None:
    rows = _records([(i * 997, i % 3, i % 6, i * 13) for i in range(200)])
    path = write_ledger(tmp_path / "usage.db", rows)
    budgets = [Budget("all", period="week", limit_usd=1.0), Budget("chat", period="week", limit_usd=1.0,
                                                                    scope={"feature": "chat"})]
    before = reports.report(since="7d", by="feature", ledger=path), reports.budget_status(budgets, path)
    _as_version(path, version)
    open_db(path, create=True).close()  # what an instrumented app does at start-up: migrate
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    after = reports.report(since="7d", by="feature", ledger=path), reports.budget_status(budgets, path)
    assert before[0]["rows"] == after[0]["rows"] and before[1] == after[1]
    week_start = budgets[0].period_bounds()[0].timestamp()
    assert abs(before[1][0]["spent_usd"] - sum(
        r.cost_usd or 0 for r in rows if r.status in ("ok", "error") and r.ts_utc >= week_start)) < 1e-9
    assert abs(before[1][1]["spent_usd"] - sum(r.cost_usd or 0 for r in rows if r.status in ("ok", "error") and
                                               r.ts_utc >= week_start and r.attributes["feature"] == "chat")) < 1e-9


def test_rows_appended_in_many_batches_fold_into_the_same_rollup_as_one_batch(tmp_path: Path) -> None:
    rows = [row_of(r) for r in _records([(i * 61, i % 3, i % 6, i) for i in range(300)])]
    one, many = open_db(tmp_path / "one.db", create=True), open_db(tmp_path / "many.db", create=True)
    one.insert(rows)
    for start in range(0, len(rows), 7):
        many.insert(rows[start:start + 7])
    for table in ("llm_usage_hourly", "llm_usage_histogram"):
        query = f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5, 6" if table.endswith("hourly") else \
            f"SELECT * FROM {table} ORDER BY 1, 2, 3"
        def rounded(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:  # float sums differ in the last bit
            return [tuple(round(v, 12) if isinstance(v, float) else v for v in row) for row in rows]

        assert rounded(one.execute(query).fetchall()) == rounded(many.execute(query).fetchall())
    one.close()
    many.close()


def test_histogram_percentiles_stay_within_a_bucket_of_the_exact_ones(tmp_path: Path) -> None:
    rng = random.Random(7)
    rows = [record((NOW - timedelta(seconds=rng.randrange(86400))).timestamp(), latency_s=rng.lognormvariate(-1, 1),
                   usage=Usage(input=rng.randrange(1, 5000), output=rng.randrange(0, 800)),
                   ttft_s=rng.uniform(0.01, 2.0)) for _ in range(3000)]
    path = write_ledger(tmp_path / "usage.db", rows)
    exact = reports.stats(since="2d", ledger=path)
    binned = reports.stats(since="2d", ledger=path, exact_up_to=0)
    for measure in ("latency_ms", "tokens_per_call", "ttft_ms"):
        for q in ("p50", "p95", "p99"):
            assert exact[measure][q] > 0
            assert abs(binned[measure][q] / exact[measure][q] - 1) < 2 ** (1 / 16) - 1, (measure, q)
    assert exact["totals"] == binned["totals"]
