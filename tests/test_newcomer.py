"""A newcomer's second hour: advice that works as typed, numbers that agree wherever they are printed, tables that
keep the columns that tell the story at 80 columns, and messages that say what to do."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import tokentrace
from tokentrace._support.text import usd
from tokentrace.cli import render
from tokentrace.ledger import reports

from .conftest import make_telemetry, openai_client
from .ledger_helpers import record, write_ledger

CLI = [sys.executable, "-m", "tokentrace"]


def _cli(*args: str, tmp: Path, columns: int = 200) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp), "COLUMNS": str(columns)}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)


def test_prices_of_a_model_name_the_provider_that_prices_it(tmp_path: Path) -> None:
    result = _cli("prices", "claude-haiku-4-5", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "anthropic / claude-haiku-4-5" in result.stdout  # not "no price known for openai model"
    wrong = _cli("prices", "claude-haiku-4-5", "--provider", "openai", tmp=tmp_path)
    assert wrong.returncode == 2 and "try --provider anthropic" in wrong.stderr


def test_the_price_list_says_its_default_provider_and_never_cuts_a_model_name(tmp_path: Path) -> None:
    result = _cli("prices", tmp=tmp_path, columns=80)
    assert result.returncode == 0, result.stderr
    assert "the default provider; --provider NAME" in result.stdout
    for name in ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"):
        assert name in result.stdout


def test_a_bad_by_lists_the_valid_keys_without_pydantics_prefix(tmp_path: Path) -> None:
    result = _cli("report", "--by", "features", tmp=tmp_path)
    assert result.returncode == 2
    assert "Value error" not in result.stderr and "'feature'" in result.stderr and "'tier'" in result.stderr


def test_report_without_a_ledger_after_the_demo_points_at_the_demos_ledger(tmp_path: Path) -> None:
    demo = tmp_path / "tokentrace" / "demo.db"
    write_ledger(demo, [record(time.time() - 60)])
    result = _cli("report", tmp=tmp_path)
    assert result.returncode == 2
    assert f"wrote its calls to {demo}" in result.stderr and f"report --ledger {demo}" in result.stderr


def test_advice_names_the_command_as_the_user_can_run_it(tmp_path: Path) -> None:
    from tokentrace.cli.invocation import command_name

    venv_script = tmp_path / ".venv" / "bin" / "tokentrace"
    venv_script.parent.mkdir(parents=True)
    venv_script.write_text("#!/bin/sh\n")
    venv_script.chmod(0o755)
    old_argv, old_cwd, old_path = sys.argv, os.getcwd(), os.environ.get("PATH", "")
    try:
        os.chdir(tmp_path)
        os.environ["PATH"] = "/usr/bin:/bin"  # the README's venv is not activated
        sys.argv = [".venv/bin/tokentrace"]
        assert command_name() == ".venv/bin/tokentrace"
        os.environ["PATH"] = f"{venv_script.parent}:/usr/bin:/bin"  # activated: the bare name works
        assert command_name() == "tokentrace"
    finally:
        sys.argv, os.environ["PATH"] = old_argv, old_path
        os.chdir(old_cwd)


def test_report_and_stats_agree_on_average_latency_blocked_calls_left_out(tmp_path: Path) -> None:
    now = time.time() - 60
    rows = [record(now, latency_s=0.010), record(now, latency_s=0.012),
            record(now, status="blocked", latency_s=0.00001, cost=0.0)]
    ledger = write_ledger(tmp_path / "usage.db", rows)
    report = reports.report(since="1d", ledger=ledger)
    assert report["totals"]["avg_latency_ms"] == pytest.approx(11.0)  # was 7.3: the blocked call pulled it down
    assert report["rows"][0]["avg_latency_ms"] == pytest.approx(11.0)


def test_one_spend_prints_the_same_in_a_budget_message_and_a_report() -> None:
    parts = [0.0000205, 0.0000205, 0.0000205]  # $0.0000615: a half-way sixth digit
    running = 0.0
    for part in parts:
        running += part
    summed_in_sql_order = sum(reversed(parts))
    assert usd(running) == usd(summed_in_sql_order) == render.money(running)
    budget = tokentrace.Budget("b", limit_usd=0.00005, action="block")
    message = str(tokentrace.BudgetExceeded(budget, running, 10, 0.00001, 5))
    assert usd(summed_in_sql_order) in message


def test_an_unpriced_model_gets_no_cost_series_that_would_read_as_free(simulator: Any) -> None:
    telemetry = make_telemetry(prices={})
    with openai_client(simulator, base_url="https://llm.internal.example/v1") as client:
        client.chat.completions.create(model="acme-private-7b", messages=[{"role": "user", "content": "hi"}])
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    names = {(s.name, s.labels.get("model")) for f in telemetry.registry.collect() for s in f.samples}
    assert ("llm_unpriced_requests_total", "acme-private-7b") in names
    assert ("chat_cost_usd_total", "acme-private-7b") not in names
    assert any(name == "chat_cost_usd_total" and model.startswith("gpt-4o-mini") for name, model in names if model)


def test_log_lines_carry_no_second_tokentrace_prefix(simulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    make_telemetry(prices={})
    with caplog.at_level(logging.WARNING, logger="tokentrace"), \
            openai_client(simulator, base_url="https://llm.internal.example/v1") as client:
        client.chat.completions.create(model="acme-private-7b", messages=[{"role": "user", "content": "hi"}])
    messages = [r.getMessage() for r in caplog.records if r.name == "tokentrace"]
    assert messages and not any(m.startswith("tokentrace:") for m in messages)  # %(name)s already says it


def _demo_like_report(tmp_path: Path) -> dict[str, Any]:
    now = time.time() - 60
    rows = [record(now, feature="chat", latency_s=0.2) for _ in range(10)]
    rows += [record(now, feature="chat", status="error", cost=0.0) for _ in range(3)]
    rows += [record(now, feature="agent", status="blocked", cost=0.0) for _ in range(2)]
    rows += [record(now, feature="faq", status="cached", cost=0.0) for _ in range(3)]
    return reports.report(since="1d", ledger=write_ledger(tmp_path / "usage.db", rows))


def _at(width: int, draw: Any, data: Any) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    draw(console, data)
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


def test_at_80_columns_a_report_keeps_errors_blocked_and_cached_and_drops_the_token_breakdown(
        tmp_path: Path) -> None:
    text = _at(80, render.report_table, _demo_like_report(tmp_path))
    header = next(line for line in text.splitlines() if "calls" in line)
    for column in ("errors", "blocked", "cached", "tokens", "cost"):
        assert column in header, text
    assert re.search(r"not shown at this width: (cache saved, )?cache write", text)  # the token breakdown leaves


def test_at_80_columns_a_budget_table_says_whether_each_budget_warns_or_blocks() -> None:
    rows = [{"name": "summarize-daily", "period": "day", "scope": "feature=summarize", "action": "warn",
             "spent_usd": 0.000352, "spent_tokens": 800, "limit_usd": 0.0002, "limit_tokens": None, "used": 1.76}]
    text = _at(80, render.budget_table, rows)
    assert "warn/day" in text and "176%" in text
