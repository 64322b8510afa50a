"""Turns report/stats/budget dicts into terminal tables, bar charts, CSV and Markdown."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .._usage import TOKEN_COLUMNS, TOKEN_TYPES

TOKEN_HEADERS = tuple((column, kind.replace("_", " ")) for column, kind in zip(TOKEN_COLUMNS, TOKEN_TYPES, strict=True))
"""(report field, column header) of each token type."""
BAR_WIDTH = 40


def money(value: float) -> str:
    return f"${value:,.6f}" if abs(value) < 1 else f"${value:,.2f}"


def _row_cells(row: dict[str, Any]) -> list[str]:
    unpriced = f" (+{row['unpriced_calls']} unpriced)" if row["unpriced_calls"] else ""
    return [
        f"{row['calls']:,}", f"{row['errors']:,}", f"{row['blocked']:,}", f"{row['cached']:,}",
        *(f"{row[k]:,}" for k, _ in TOKEN_HEADERS), money(row["cost_usd"]) + unpriced, f"{row['avg_latency_ms']:.1f}",
    ]


HEADERS = ["calls", "errors", "blocked", "cached", *(h for _, h in TOKEN_HEADERS), "cost (USD)", "avg ms"]


def report_table(console: Console, data: dict[str, Any]) -> None:
    table = Table(title=f"LLM usage by {data['by']}  ({data['from'][:19]} .. {data['to'][:19]} UTC)",
                  show_footer=True)
    table.add_column(data["by"], footer="total")
    totals = _row_cells({**data["totals"]})
    for header, footer in zip(HEADERS, totals, strict=True):
        table.add_column(header, justify="right", footer=footer)
    for row in data["rows"]:
        table.add_row(row["key"] or "(none)", *_row_cells(row))
    console.print(table)
    daily_bars(console, data["daily"])


def daily_bars(console: Console, daily: list[dict[str, Any]]) -> None:
    if not daily:
        console.print("No calls in this window.")
        return
    peak = max(d["cost_usd"] for d in daily) or 1.0
    console.print("Daily cost")
    for day in daily:
        width = round(day["cost_usd"] / peak * BAR_WIDTH)
        bar = "█" * width or ("▏" if day["calls"] else "")
        console.print(f"  {day['day']}  {bar:<{BAR_WIDTH}}  {money(day['cost_usd'])}  ({day['calls']:,} calls)",
                      highlight=False)


def report_markdown(data: dict[str, Any]) -> str:
    totals = data["totals"]
    lines = [
        f"## LLM usage by {data['by']}",
        "",
        f"{data['from'][:10]} to {data['to'][:10]} (UTC): **{money(totals['cost_usd'])}** over "
        f"{totals['calls']:,} calls, {totals['total_tokens']:,} tokens "
        f"({totals['errors']:,} errors, {totals['blocked']:,} blocked, {totals['cached']:,} cache hits).",
        "",
        f"| {data['by']} | " + " | ".join(HEADERS) + " |",
        "|---|" + "---:|" * len(HEADERS),
    ]
    for row in data["rows"]:
        lines.append(f"| {row['key'] or '(none)'} | " + " | ".join(_row_cells(row)) + " |")
    lines.append("| **total** | " + " | ".join(_row_cells(totals)) + " |")
    if data["daily"]:
        peak = max(d["cost_usd"] for d in data["daily"]) or 1.0
        lines += ["", "Daily cost:", "", "```"]
        for day in data["daily"]:
            bar = "█" * round(day["cost_usd"] / peak * BAR_WIDTH)
            lines.append(f"{day['day']}  {bar:<{BAR_WIDTH}}  {money(day['cost_usd'])}")
        lines.append("```")
    return "\n".join(lines) + "\n"


def report_csv_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [{data["by"]: r["key"], **{k: v for k, v in r.items() if k != "key"}} for r in data["rows"]]


def stats_table(console: Console, data: dict[str, Any]) -> None:
    t = data["totals"]
    table = Table(title=f"LLM call statistics  ({data['from'][:19]} .. {data['to'][:19]} UTC)", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("calls (errors / blocked / cache hits)", f"{t['calls']:,} ({t['errors']:,} / {t['blocked']:,} / "
                                                           f"{t['cached']:,})")
    table.add_row("cost", money(t["cost_usd"]) + (f" (+{t['unpriced_calls']} unpriced)" if t["unpriced_calls"] else ""))
    table.add_row("tokens", f"{t['total_tokens']:,}")
    for key, label in TOKEN_HEADERS:
        table.add_row(f"  {label}", f"{t[key]:,}")
    for name, unit, values in (("tokens per call", "", data["tokens_per_call"]),
                               ("latency", " ms", data["latency_ms"]), ("time to first token", " ms", data["ttft_ms"])):
        table.add_row(f"{name} p50 / p95 / p99", " / ".join(f"{values[p]:,.1f}{unit}" for p in ("p50", "p95", "p99")))
    table.add_row("prompt cache hit ratio (cached input / all input)", f"{data['prompt_cache_hit_ratio']:.1%}")
    table.add_row("response cache hit ratio (app cache hits / calls)", f"{data['response_cache_hit_ratio']:.1%}")
    console.print(table)


def budget_table(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title="Budgets (current period)")
    for name in ("budget", "period", "scope", "action", "spent", "limit", "used"):
        table.add_column(name, justify="right" if name in ("spent", "limit", "used") else "left")
    for r in rows:
        spent = money(r["spent_usd"]) if r["limit_usd"] is not None else f"{r['spent_tokens']:,} tok"
        limit = money(r["limit_usd"]) if r["limit_usd"] is not None else f"{r['limit_tokens']:,} tok"
        used = r["used"]
        style = "red" if used >= 1 else "yellow" if used >= 0.8 else "green"
        table.add_row(r["name"], r["period"], r["scope"] or "all calls", r["action"], spent, limit,
                      f"[{style}]{used:.0%}[/{style}]")
    console.print(table)
