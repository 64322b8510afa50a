"""Reports on a known ledger: the Python API and every CLI command print the expected numbers."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace import Usage
from tokentrace.ledger.reports import ReportError

from .conftest import make_telemetry
from .ledger_helpers import record, write_ledger

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = 86400.0


def _ts(days_ago: float) -> float:
    return (NOW - timedelta(days=days_ago)).timestamp()


@pytest.fixture
def known_ledger(tmp_path: Path) -> Path:
    """10 calls over 3 days; one 40 days ago (outside every default window)."""
    records = [
        record(_ts(0.1), feature="chat", session_id="s1", user_id="u1", usage=Usage(input=100, output=50),
               cost=0.010, latency_s=0.1),
        record(_ts(0.2), feature="chat", session_id="s1", user_id="u1", usage=Usage(input=80, cache_read=20,
                                                                                   output=40), cost=0.008,
               latency_s=0.2, ttft_s=0.05),
        record(_ts(0.3), feature="chat", session_id="s2", user_id="u2", status="error", usage=Usage(), cost=0.0,
               latency_s=0.3),
        record(_ts(1.1), feature="search", model="text-embedding-3-small", operation="embeddings",
               usage=Usage(input=300), cost=0.0006, latency_s=0.05),
        record(_ts(1.2), feature="search", model="text-embedding-3-small", operation="embeddings",
               usage=Usage(input=200), cost=0.0004, latency_s=0.07),
        record(_ts(1.3), provider="xai", model="grok-3-mini", feature="agent", usage=Usage(input=10, output=5,
                                                                                         reasoning=20),
               cost=0.002, latency_s=0.9),
        record(_ts(2.1), provider="xai", model="grok-3-mini", feature="agent", status="blocked", usage=Usage(),
               cost=0.0, latency_s=0.001),
        record(_ts(2.2), feature="chat", model="private-7b", usage=Usage(input=10, output=10), cost=None,
               latency_s=0.4),
        record(_ts(2.3), feature="chat", status="cached", usage=Usage(), cost=0.0, latency_s=0.0001),
        record(_ts(2.4), feature="", usage=Usage(input=1, output=1), cost=0.0001, latency_s=0.5),
        record(_ts(40), feature="chat", usage=Usage(input=1000, output=1000), cost=1.0),
    ]
    return write_ledger(tmp_path / "known.db", records)


def test_report_by_feature(known_ledger: Path) -> None:
    data = tokentrace.report(since="7d", by="feature", ledger=known_ledger)
    by_key = {row["key"]: row for row in data["rows"]}
    assert list(by_key) == ["chat", "agent", "search", ""]  # most expensive first
    chat = by_key["chat"]
    assert (chat["calls"], chat["errors"], chat["cached"], chat["unpriced_calls"]) == (5, 1, 1, 1)
    assert chat["input_tokens"] == 190 and chat["cache_read_tokens"] == 20 and chat["output_tokens"] == 100
    assert chat["cost_usd"] == pytest.approx(0.018)
    assert by_key["agent"]["blocked"] == 1 and by_key["agent"]["reasoning_tokens"] == 20
    totals = data["totals"]
    assert totals["calls"] == 10
    assert totals["cost_usd"] == pytest.approx(0.0211)
    assert totals["total_tokens"] == 100 + 50 + 80 + 20 + 40 + 300 + 200 + 35 + 20 + 2
    assert [d["day"] for d in data["daily"]] == sorted(d["day"] for d in data["daily"])
    assert sum(d["calls"] for d in data["daily"]) == 10


@pytest.mark.parametrize(("by", "keys"), [
    ("provider", {"openai", "xai"}),
    ("model", {"gpt-4o-mini", "text-embedding-3-small", "grok-3-mini", "private-7b"}),
    ("operation", {"chat", "embeddings"}),
    ("session", {"s1", "s2", ""}),
    ("user", {"u1", "u2", ""}),
])
def test_report_by_every_key(known_ledger: Path, by: str, keys: set[str]) -> None:
    data = tokentrace.report(since="7d", by=by, ledger=known_ledger)
    assert {r["key"] for r in data["rows"]} == keys
    assert sum(r["calls"] for r in data["rows"]) == 10


def test_report_windows(known_ledger: Path) -> None:
    assert tokentrace.report(since="24h", ledger=known_ledger)["totals"]["calls"] == 3
    assert tokentrace.report(since="60d", ledger=known_ledger)["totals"]["calls"] == 11
    start = (NOW - timedelta(days=1.5)).isoformat()
    end = (NOW - timedelta(days=0.5)).isoformat()
    assert tokentrace.report(ledger=known_ledger, start=start, end=end)["totals"]["calls"] == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"by": "colour"}, "by must be one of"),
    ({"since": "yesterday"}, "since must look like"),
    ({"start": "not-a-date"}, "start must be a date"),
    ({"start": "2026-11-10", "end": "2026-11-01"}, "start must be before"),
])
def test_report_bad_options(known_ledger: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ReportError, match=message):
        tokentrace.report(ledger=known_ledger, **kwargs)


def test_report_on_a_missing_ledger(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no ledger at"):
        tokentrace.report(ledger=tmp_path / "nope.db")


def test_stats_percentiles_and_cache_ratios(known_ledger: Path) -> None:
    from tokentrace.ledger.reports import stats

    data = stats("7d", known_ledger)
    # ok calls with usage: tokens 150, 140, 300, 200, 35, 20, 2 ; latency ms 100, 200, 50, 70, 900, 400, 500
    assert data["tokens_per_call"] == {"p50": 140, "p95": 300, "p99": 300}
    assert data["latency_ms"] == {"p50": 200.0, "p95": 900.0, "p99": 900.0}
    assert data["prompt_cache_hit_ratio"] == pytest.approx(20 / (190 + 20 + 500 + 10 + 1))
    assert data["response_cache_hit_ratio"] == pytest.approx(1 / 9)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokentrace.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "220", **(env or {})})


def test_cli_report_json_equals_the_python_api(known_ledger: Path) -> None:
    result = run_cli("report", "--since", "7d", "--by", "model", "--format", "json", "--ledger", str(known_ledger))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    api = tokentrace.report(since="7d", by="model", ledger=known_ledger)
    for part in ("rows", "totals", "daily", "by"):
        assert printed[part] == api[part]


def test_cli_report_table_csv_markdown(known_ledger: Path) -> None:
    table = run_cli("report", "--ledger", str(known_ledger))
    assert table.returncode == 0 and "chat" in table.stdout and "$0.021100" in table.stdout
    assert "Daily cost" in table.stdout and "█" in table.stdout
    rows = list(csv.DictReader(io.StringIO(run_cli("report", "--format", "csv", "--ledger",
                                                   str(known_ledger)).stdout)))
    assert {r["feature"] for r in rows} == {"chat", "agent", "search", ""}
    assert float(next(r for r in rows if r["feature"] == "chat")["cost_usd"]) == pytest.approx(0.018)
    markdown = run_cli("report", "--format", "markdown", "--by", "provider", "--ledger", str(known_ledger)).stdout
    assert markdown.startswith("## LLM usage by provider")
    assert "| **total** | 10 |" in markdown


def test_cli_stats(known_ledger: Path) -> None:
    result = run_cli("stats", "--format", "json", "--ledger", str(known_ledger))
    assert result.returncode == 0
    assert json.loads(result.stdout)["latency_ms"]["p50"] == 200.0
    assert "p50 / p95 / p99" in run_cli("stats", "--ledger", str(known_ledger)).stdout


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_cli_export_round_trips(known_ledger: Path, fmt: str, tmp_path: Path) -> None:
    from tokentrace.ledger.reports import export_rows

    out = tmp_path / f"export.{fmt}"
    result = run_cli("export", "--format", fmt, "--since", "60d", "--output", str(out), "--ledger",
                     str(known_ledger))
    assert result.returncode == 0, result.stderr
    expected = list(export_rows("60d", known_ledger))
    text = out.read_text()
    if fmt == "jsonl":
        assert [json.loads(line) for line in text.splitlines()] == expected
    else:
        parsed = list(csv.DictReader(io.StringIO(text)))
        assert len(parsed) == len(expected) == 11
        for got, want in zip(parsed, expected, strict=True):
            assert got == {k: "" if v is None else str(v) for k, v in want.items() if not isinstance(v, float)} | {
                k: got[k] for k, v in want.items() if isinstance(v, float)}
            for k, v in want.items():
                if isinstance(v, float):  # plain decimals: costs to 12 places, milliseconds to 3
                    assert float(got[k]) == pytest.approx(v, abs=1e-3 if k.endswith("_ms") else 1e-12)


def test_cli_budget_status(known_ledger: Path, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nname = "chat-month"\nperiod = "month"\nlimit_usd = 0.02\n'
                       '[budget.scope]\nfeature = "chat"\n')
    result = run_cli("budget", "--budgets", str(budgets), "--format", "json", "--ledger", str(known_ledger))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    month_start = NOW.replace(day=1, hour=0, minute=0, second=0)
    expected = sum(cost for days, cost in ((0.1, 0.010), (0.2, 0.008), (0.3, 0.0))
                   if datetime.fromtimestamp(_ts(days), UTC) >= month_start)
    assert row["spent_usd"] == pytest.approx(expected)
    assert row["limit_usd"] == 0.02
    assert "chat-month" in run_cli("budget", "--budgets", str(budgets), "--ledger", str(known_ledger)).stdout


@pytest.mark.parametrize("args", [
    ("report", "--by", "colour"),
    ("report", "--since", "yesterday"),
    ("report", "--from", "2026-13-45"),
    ("stats", "--to", "soon"),
    ("export", "--format", "xml"),
    ("budget",),
])
def test_cli_bad_input_is_one_line_exit_2(known_ledger: Path, args: tuple[str, ...]) -> None:
    result = run_cli(*args, "--ledger", str(known_ledger), env={"TOKENTRACE_BUDGETS": ""})
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("tokentrace: error:") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [None, b"garbage" * 500])
def test_cli_missing_or_corrupt_ledger(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "usage.db"
    if content is not None:
        path.write_bytes(content)
    for command in ("report", "stats", "export"):
        result = run_cli(command, "--ledger", str(path))
        assert result.returncode == 2
        assert result.stderr.startswith("tokentrace: error:") and "ledger" in result.stderr


def test_record_cache_hit(simulator: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "usage.db"
    telemetry = make_telemetry(ledger=ledger)
    tokentrace.record_cache_hit("openai", "gpt-4o-mini", feature="chat", session_id="s9")
    tokentrace.flush()
    data = tokentrace.report(since="1d", by="feature", ledger=ledger)
    assert data["rows"] == [{**data["rows"][0], "key": "chat", "calls": 1, "cached": 1, "cost_usd": 0.0}]
    assert telemetry.sample("llm_requests_total", provider="openai", model="gpt-4o-mini", operation="chat",
                            status="cached", feature="chat") == 1
    import sqlite3

    row = sqlite3.connect(ledger).execute("SELECT status, cache_hit, cost_usd, session_id FROM llm_usage").fetchone()
    assert row == ("cached", 1, 0.0, "s9")


def test_report_totals_equal_the_metrics(simulator: Any, tmp_path: Path) -> None:
    """The demo workload: what the ledger reports is what Prometheus counted."""
    from tokentrace.cli.demo import run_workload

    ledger = tmp_path / "usage.db"
    telemetry = make_telemetry(ledger=ledger, prices=None)
    run_workload(simulator.port, 33, simulator=simulator)
    tokentrace.flush()
    totals = tokentrace.report(since="1d", by="provider", ledger=ledger)["totals"]

    def metric_sum(name: str, **match: str) -> float:
        return sum(s.value for m in telemetry.registry.collect() for s in m.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in match.items()))

    assert totals["calls"] == metric_sum("llm_requests_total") == 33
    assert totals["errors"] == metric_sum("llm_requests_total", status="error")
    assert totals["cached"] == metric_sum("llm_requests_total", status="cached")
    assert totals["cost_usd"] == pytest.approx(metric_sum("chat_cost_usd_total"), rel=1e-9)
    for column, token_type in (("input_tokens", "input"), ("cache_read_tokens", "cache_read"),
                               ("output_tokens", "output"), ("reasoning_tokens", "reasoning")):
        assert totals[column] == metric_sum("tokens_used_total", token_type=token_type)
    assert totals["total_tokens"] == metric_sum("tokens_used_total") > 0
