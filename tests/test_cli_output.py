"""What a new user sees: tables that never cut a number, empty CSVs with headers, unpriced shown as such,
the demo's own ledger, help and version, and the per-call log line."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import tokentrace
from tokentrace._usage import Usage
from tokentrace.cli import render

from .conftest import make_telemetry, openai_client
from .ledger_helpers import record, write_ledger
from .test_cli import run_cli

LONG_FEATURE = "customer-support-escalation-summaries-for-the-enterprise-tier"


def _report_data(tmp_path: Path) -> dict[str, Any]:
    now = time.time() - 60
    records = [
        record(now, feature=LONG_FEATURE, cost=1234.567891, usage=Usage(input=123_456_789, output=98_765_432,
                                                                      cache_read=1_000_000, reasoning=55_555)),
        record(now, feature="chat", cost=0.0021834),
        record(now, feature="unpriced-only", model="acme-private-7b", cost=None),
        record(now, feature="unpriced-only", model="acme-private-7b", cost=None),
        record(now, feature="mixed", cost=0.00002789),
        record(now, feature="mixed", model="acme-private-7b", cost=None),
    ]
    ledger = write_ledger(tmp_path / "usage.db", records)
    return tokentrace.report(since="1d", ledger=ledger)


def _render(width: int, draw: Any, data: Any) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    draw(console, data)
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize("width", [40, 60, 80, 100, 120, 200])
def test_report_table_never_cuts_a_number(width: int, tmp_path: Path) -> None:
    data = _report_data(tmp_path)
    out = _render(width, render.report_table, data)
    assert "…" not in out
    assert all(len(line) <= width for line in out.splitlines() if line.startswith(("┃", "│", "┏", "└", "┡", "├")))
    for row in [*data["rows"], data["totals"]]:
        assert render.cost_cell(row) in out  # every cost whole, with its unpriced mark
        assert f"{row['calls']:,}" in out
    assert "$1,234.57" in out and "$0.002183" in out
    if width == 200:  # room for every number and the whole name; only all-zero columns may leave
        assert "123,456,789" in out and "98,765,432" in out and LONG_FEATURE in out
        left_out = re.search(r"\(not shown at this width: ([^)]*)\)", out)
        all_zero = {"blocked", "cached", "cache write", "cache saved"}
        assert left_out and set(left_out.group(1).split(", ")) <= all_zero
    if width < 200:
        assert "(not shown at this width" in out or width == 40  # 40 columns: one block per row instead


@pytest.mark.parametrize("width", [50, 80, 120])
def test_stats_budget_and_demo_provider_tables_fit(width: int, tmp_path: Path) -> None:
    data = _report_data(tmp_path)
    stats = tokentrace.reports.stats(since="1d", ledger=tmp_path / "usage.db")
    out = _render(width, render.stats_table, stats)
    assert render.cost_cell(stats["totals"]) in out and f"{stats['totals']['total_tokens']:,}" in out
    budget_rows = [tokentrace.reports.budget_row(tokentrace.Budget("a-very-long-budget-name-for-the-team", "month",
                                                                   limit_usd=2000.0, limit_tokens=500_000_000,
                                                                   scope={"feature": LONG_FEATURE},
                                                                   action="block"),
                                                 1234.56789, 123_456_789)]
    out = _render(width, render.budget_table, budget_rows)
    assert "$1,234.57 / 123,456,789 tok" in out.replace("\n", "") or (
        "$1,234.57" in out and "123,456,789 tok" in out)
    assert "$2,000.00" in out and "500,000,000 tok" in out  # both limits shown
    assert "worst-case estimate" in " ".join(out.split())  # why a block budget refuses below 100%
    provider = tokentrace.report(since="1d", by="provider", ledger=tmp_path / "usage.db")
    from tokentrace.cli.demo import _provider_table

    out = _render(width, _provider_table, provider)
    for row in provider["rows"]:
        assert render.cost_cell(row) in out
    assert data["rows"]


def test_unpriced_is_null_in_json_and_marked_in_tables(tmp_path: Path) -> None:
    data = _report_data(tmp_path)
    rows = {r["key"]: r for r in data["rows"]}
    assert rows["unpriced-only"]["cost_usd"] is None and rows["unpriced-only"]["unpriced_calls"] == 2
    assert rows["mixed"]["cost_usd"] == pytest.approx(0.00002789) and rows["mixed"]["unpriced_calls"] == 1
    assert render.cost_cell(rows["unpriced-only"]) == "unpriced (2 calls)"
    assert render.cost_cell(rows["mixed"]) == "$0.000028 (+1 unpriced)"
    assert "$0.000000" not in _render(120, render.report_table, data)
    assert render.rate(0.6) == "$0.60" and render.rate(0.00001) == "$0.00001" and render.rate(15) == "$15.00"


def test_csv_has_a_header_when_empty_and_plain_decimals(tmp_path: Path) -> None:
    empty = write_ledger(tmp_path / "empty.db", [])
    result = run_cli("report", "--format", "csv", "--ledger", str(empty), tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("feature,calls,errors,blocked,cached,input_tokens")
    result = run_cli("export", "--ledger", str(empty), tmp=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("id,ts_utc,provider,model"), result.stderr
    _report_data(tmp_path)
    for args in (("report", "--format", "csv"), ("export",)):
        result = run_cli(*args, "--ledger", str(tmp_path / "usage.db"), tmp=tmp_path)
        assert result.returncode == 0, result.stderr
        assert not re.search(r"\de-\d", result.stdout), result.stdout  # no 2.7899999999999997e-05
        assert not re.search(r"\.\d{13,}", result.stdout), result.stdout
    rows = list(csv.DictReader(io.StringIO(run_cli("export", "--ledger", str(tmp_path / "usage.db"),
                                                   tmp=tmp_path).stdout)))
    assert {r["cost_usd"] for r in rows} >= {"0.00002789", "1234.567891", ""}
    assert {r["latency_ms"] for r in rows} == {"100.000"}


def test_the_demo_leaves_the_users_ledger_alone(tmp_path: Path) -> None:
    first = run_cli("demo", "--calls", "5", tmp=tmp_path)
    assert first.returncode == 0, first.stderr
    demo_ledger = tmp_path / "tokentrace" / "demo.db"
    assert f"Ledger: {demo_ledger} (the demo's own" in first.stdout
    assert not (tmp_path / "tokentrace" / "usage.db").exists()
    second = run_cli("demo", "--calls", "5", tmp=tmp_path)
    assert second.returncode == 0, second.stderr
    assert tokentrace.report(since="1d", ledger=demo_ledger)["totals"]["calls"] == 5  # each run starts empty
    assert f"tokentrace budget --budgets {Path(tokentrace.__file__).parent / 'cli' / 'demo_budgets.toml'}" in \
        second.stdout.replace("\n", "")
    shown = run_cli("budget", "--budgets", str(Path(tokentrace.__file__).parent / "cli" / "demo_budgets.toml"),
                    "--ledger", str(demo_ledger), "--format", "json", tmp=tmp_path)
    assert shown.returncode == 0 and {b["name"] for b in json.loads(shown.stdout)} == {
        "summarize-daily", "agent-daily", "all-monthly"}
    mine = tmp_path / "mine.db"
    assert run_cli("demo", "--calls", "3", "--ledger", str(mine), tmp=tmp_path).returncode == 0
    assert tokentrace.report(since="1d", ledger=mine)["totals"]["calls"] == 3


def test_demo_serve_on_a_busy_port_fails_instead_of_claiming_to_serve(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("demo", "--serve", "--metrics-port", str(port), tmp=tmp_path)
    assert result.returncode == 2
    assert "Serving" not in result.stdout
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize("args", [("--help",), ("demo", "--help"), ("report", "--help"), ("prices", "--help")])
def test_help_has_no_type_tags(args: tuple[str, ...], tmp_path: Path) -> None:
    result = run_cli(*args, tmp=tmp_path)
    assert result.returncode == 0
    assert not re.search(r"<(bool|str|int|int range|path)>", result.stdout), result.stdout


def test_version_bare_command_and_python_dash_m(tmp_path: Path) -> None:
    assert run_cli("--version", tmp=tmp_path).stdout.strip() == f"tokentrace {tokentrace.__version__}"
    bare = run_cli(tmp=tmp_path)
    assert bare.returncode == 0 and "Usage:" in bare.stdout and "error" not in bare.stderr
    module = subprocess.run([sys.executable, "-m", "tokentrace", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert module.returncode == 0 and module.stdout.strip() == f"tokentrace {tokentrace.__version__}"


def test_errors_name_the_option_of_the_interface_used(tmp_path: Path) -> None:
    ledger = write_ledger(tmp_path / "usage.db", [])
    zero = run_cli("report", "--since", "0d", "--ledger", str(ledger), tmp=tmp_path)
    assert zero.returncode == 2 and "--since must be longer than zero" in zero.stderr
    backwards = run_cli("report", "--from", "2026-11-08", "--to", "2026-11-01", "--ledger", str(ledger), tmp=tmp_path)
    assert "--from must be before" in backwards.stderr
    with pytest.raises(tokentrace.ReportError, match=r"^start must be before"):
        tokentrace.report(start="2026-11-08", end="2026-11-01", ledger=ledger)
    with pytest.raises(tokentrace.ReportError, match=r"^by must be one of"):
        tokentrace.report(by="colour", ledger=ledger)
    from tokentrace.serving.usage import usage_response

    status, _, body = usage_response("from=2026-11-08&to=2026-11-01", ledger)
    assert status == 400 and body.startswith(b"from must be before")
    assert issubclass(tokentrace.PriceError, ValueError)


def test_examples_load(tmp_path: Path) -> None:
    root = Path(__file__).parents[1] / "examples"
    budgets = tokentrace.budgets.load_budgets(root / "budgets.toml")
    assert [b.name for b in budgets] == ["monthly-total", "chat-daily", "summarize-daily-eu"]
    from tokentrace.pricing import PriceTable
    from tokentrace.pricing.overrides import parse_overrides

    table = PriceTable(parse_overrides(str(root / "prices.toml")))
    price = table.lookup("openai_compatible", "acme-private-7b")
    assert price is not None and price.base.input == 0.05


def test_each_call_logs_one_info_line_without_content(simulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    make_telemetry()
    client = openai_client(simulator)
    with caplog.at_level(logging.WARNING, logger="tokentrace.calls"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "SECRET prompt"}])
    assert not [r for r in caplog.records if r.name == "tokentrace.calls"]  # off below INFO: no line
    with caplog.at_level(logging.INFO, logger="tokentrace.calls"), \
            tokentrace.attributes(feature="summarize\nforged line"):
        response = client.chat.completions.create(model="gpt-4o-mini",
                                                  messages=[{"role": "user", "content": "SECRET prompt"}])
    lines = [r for r in caplog.records if r.name == "tokentrace.calls"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    message = lines[0].getMessage()
    usage = response.usage
    assert "\n" not in message and "SECRET" not in message
    assert response.choices[0].message.content not in message
    assert f"provider=openai model={response.model} operation=chat status=ok feature=summarize forged line" in message
    assert f"total={usage.total_tokens}" in message and "cost=$0.0000" in message
    fields = lines[0].tokentrace  # type: ignore[attr-defined]
    assert fields["input"] + fields["cache_read"] == usage.prompt_tokens and fields["cost_usd"] > 0


def test_hostile_attribution_values_cannot_drive_the_terminal_or_break_a_markdown_row(tmp_path: Path) -> None:
    now = time.time() - 60
    hostile = ["\x1b[31mred\x1b[0m", "two\nlines", "a | b", "bell\x07"]
    ledger = write_ledger(tmp_path / "usage.db", [record(now, feature=f, cost=0.001) for f in hostile])
    data = tokentrace.report(since="1d", ledger=ledger)
    for width in (40, 120):
        out = _render(width, render.report_table, data)
        assert "\x1b" not in out and "\x07" not in out
        assert "\\x1b" in out  # shown, as an escape
    markdown = render.report_markdown(data)
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(hostile) + 1  # header, rule, one line per group, total: no row split
    assert all(line.count(" | ") == table[0].count(" | ") for line in table[2:])
    assert "\x1b" not in markdown and "two\\x0alines" in markdown and "a \\| b" in markdown
    budgets = [{"name": "x\x1b[2J", "period": "day", "scope": "feature=\x1b]0;t\x07", "action": "warn",
                "spent_usd": 1.0, "limit_usd": 2.0, "spent_tokens": 0, "limit_tokens": None, "used": 0.5}]
    out = _render(120, render.budget_table, budgets)
    assert "\x1b" not in out and "\x07" not in out


def test_since_and_from_together_are_refused_and_months_are_mo(tmp_path: Path) -> None:
    from tokentrace.ledger.reports import parse_since

    ledger = write_ledger(tmp_path / "usage.db", [record(time.time() - 60, feature="chat", cost=0.001)])
    both = run_cli("report", "--since", "7d", "--from", "2026-11-01", "--ledger", str(ledger), tmp=tmp_path)
    assert both.returncode == 2 and "--since and --from" in both.stderr and "Traceback" not in both.stderr
    assert run_cli("report", "--from", "2026-01-01", "--ledger", str(ledger), tmp=tmp_path).returncode == 0
    assert run_cli("report", "--since", "2mo", "--ledger", str(ledger), tmp=tmp_path).returncode == 0
    now = datetime.now(UTC)
    assert now - parse_since("2mo", now) == timedelta(days=60) and now - parse_since("2m", now) == timedelta(minutes=2)
    assert "m is minutes" in run_cli("report", "--help", tmp=tmp_path).stdout.replace("\n", " ")


def test_one_call_is_one_call() -> None:
    assert render.cost_cell({"cost_usd": None, "unpriced_calls": 1}) == "unpriced (1 call)"
    assert render.plural(2, "call") == "2 calls" and render.plural(1_000, "call") == "1,000 calls"


def test_prices_and_the_demos_notes_fit_80_columns(tmp_path: Path) -> None:
    """Issue 43 item 9: at 80 columns ``prices`` cut cache_read and cache_write to the same ``cache_…``, and the
    demo's inference note ran to 131 columns."""
    import time

    from rich.console import Console

    from tokentrace.cli.demo import _inferred_prices

    from .ledger_helpers import record, write_ledger

    shown = subprocess.run([sys.executable, "-m", "tokentrace", "prices", "gpt-4o"], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    assert "…" not in shown.stdout and "cache read" in shown.stdout and "write" in shown.stdout
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80
    source = "inferred: openai/gpt-4o-mini, the one price-table entry whose model clause matches this model name"
    ledger = write_ledger(tmp_path / "u.db", [record(time.time())._replace(provider="openai_compatible",
                                                                         price_source=source)])
    console = Console(width=80, record=True, force_terminal=False)
    _inferred_prices(console, ledger)
    lines = console.export_text().splitlines()
    assert lines and max(len(line) for line in lines) <= 80
