"""The tokentrace command: the demo runs end to end, bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "from tokentrace.cli import main; main()"]


def run_cli(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp), "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)


def test_demo_fills_the_ledger_and_reports_it(tmp_path: Path) -> None:
    result = run_cli("demo", "--calls", "33", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    ledger = tmp_path / "tokentrace" / "demo.db"
    assert f"Ledger: {ledger}" in result.stdout
    for text in ("openai", "xai", "deepseek", "groq", "summarize", "agent", "Daily cost", "Budgets"):
        assert text in result.stdout
    import tokentrace
    from tokentrace.cli.demo import SCENARIOS

    made = [SCENARIOS[i % len(SCENARIOS)] for i in range(33)]
    totals = tokentrace.report(since="1d", ledger=ledger)["totals"]
    assert totals["calls"] == 33
    assert totals["errors"] == sum(s.headers.get("x-sim-error") == "429" for s in made)
    assert totals["cached"] == sum(s.kind == "cache_hit" for s in made)
    by_provider = {r["key"] for r in tokentrace.report(since="1d", by="provider", ledger=ledger)["rows"]}
    assert {"openai", "anthropic", "google", "xai", "deepseek", "groq", "bedrock", "cohere", "mistral", "ollama"} \
        <= by_provider
    from tokentrace.cli.render import money

    assert money(totals["cost_usd"]) in result.stdout  # the printed total row is the ledger's
    assert f"{totals['input_tokens']:,}" in result.stdout
    assert "budget 'summarize-daily' (warn) reached" in result.stderr  # the demo's budget crossing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("demo", "--calls", "x"), "valid integer"),
        (("demo", "--calls", "0"), "--calls"),
        (("nonsense",), "No such command"),
        (("prices", "no-such-model-xyz"), "no price known"),
        (("prices", "gpt-4o", "--provider", "nope"), "unknown provider"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = run_cli(*args, tmp=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("tokentrace: error:")


def test_prices_shows_the_rates_and_their_source(tmp_path: Path) -> None:
    result = run_cli("prices", "gpt-4o-mini", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "genai-prices" in result.stdout and "$0.15" in result.stdout


def test_prices_lists_a_providers_models_and_the_table_date(tmp_path: Path) -> None:
    result = run_cli("prices", "--provider", "xai", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "newest price change in it: 20" in result.stdout
    assert "grok-3-mini" in result.stdout and "$0.3" in result.stdout


def test_a_day_of_unpriced_calls_and_no_streams_says_so(tmp_path: Path) -> None:
    """Issue 43 item 9: a sum of no prices is not $0.000000, and percentiles of no streamed call are not 0.0 ms."""
    import time

    from .ledger_helpers import record, write_ledger

    ledger = write_ledger(tmp_path / "u.db", [record(time.time() - 60, model="in-house-7b", cost=None)
                                              for _ in range(3)])
    stats = run_cli("stats", "--ledger", str(ledger), "--since", "1d", tmp=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert "no streamed calls" in stats.stdout and "0.0 / 0.0 / 0.0 ms" not in stats.stdout
    assert "unpriced (3 calls)" in stats.stdout
    by_day = run_cli("report", "--ledger", str(ledger), "--since", "1d", "--by", "day", tmp=tmp_path)
    assert by_day.returncode == 0, by_day.stderr
    assert "unpriced (3 calls)" in by_day.stdout and "$0.000000" not in by_day.stdout


def test_budget_on_a_per_principal_budget_summarises_its_principals(tmp_path: Path) -> None:
    """Issue 43 item 8: a ``per="user_id"`` budget's row said ``all calls``, spent above the limit and 0% used."""
    import time

    from .ledger_helpers import record, write_ledger

    now = time.time() - 60
    calls = [record(now, cost=0.4, user_id="ann"), record(now, cost=0.3, user_id="bob"),
             record(now, cost=0.9, user_id="bob"), record(now, cost=0.05, user_id="cy")]
    ledger = write_ledger(tmp_path / "u.db", calls)
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nname = "per-user"\nperiod = "day"\nlimit_usd = 1.0\nper = "user_id"\n'
                       'action = "block"\n', encoding="utf-8")
    shown = run_cli("budget", "--budgets", str(budgets), "--ledger", str(ledger), tmp=tmp_path)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "per user_id" in text and "all calls" not in text
    assert "3 principals: 1 at limit, 0 >= 80%" in text  # bob's $1.20 is over his $1; ann's $0.40 is not near
    assert "each $1.00" in text and "all $1.65" in text
    assert "--top N" in text
