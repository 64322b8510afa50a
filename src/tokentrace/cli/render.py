"""Turns report/stats/budget dicts into terminal tables, bar charts, CSV and Markdown.

Numbers are never cut: numeric columns do not wrap and keep their full width; names wrap first; when the
terminal is still too narrow the least important columns are left out (and the table says which), and below
that each row becomes a block of ``header: value`` lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._support.text import usd
from .._usage import TOKEN_COLUMNS, TOKEN_TYPES

TOKEN_HEADERS = tuple((column, kind.replace("_", " ")) for column, kind in zip(TOKEN_COLUMNS, TOKEN_TYPES, strict=True))
"""(report field, column header) of each token type."""
BAR_WIDTH = 40
NAME_MIN_WIDTH = 12
"""A name column is never squeezed below this (or its longest value, when shorter); longer names wrap."""
UNPRICED = "unpriced"
MAX_WORD_WIDTH = 20
"""A name column is at least as wide as its longest word (``openai_compatible``), up to this; longer words fold."""


def printable(text: str) -> str:
    """``text`` safe to print: control characters (a terminal escape, a newline) and other unprintable characters
    shown as ``\\x1b``-style escapes, so a hostile attribution value can neither drive the terminal nor break a
    row."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
                   for c in text)


def markdown_cell(text: str) -> str:
    """A table cell in Markdown: printable, with ``|`` escaped so it cannot split the row."""
    return printable(text).replace("|", "\\|")


def plural(count: int, word: str) -> str:
    """``1 call``, ``2 calls``, ``1,000 calls``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def money(value: float | None) -> str:
    """A cost in USD: 6 decimals under a dollar, cents above; ``unpriced`` when unknown."""
    return UNPRICED if value is None else usd(value)


def rate(value: float) -> str:
    """A price in USD per million tokens, with at least two decimals and no exponent: $0.60, $0.00001, $15.00."""
    whole, _, fraction = f"{value:,.6f}".rstrip("0").partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def cost_cell(row: dict[str, Any]) -> str:
    """The cost of a report row: the priced sum, plus how many calls had no price; ``unpriced`` when no call of the
    row had one (a sum of no prices is not $0)."""
    if row["cost_usd"] is None or (not row["cost_usd"] and row["unpriced_calls"]
                                   and row["unpriced_calls"] >= row.get("calls", row["unpriced_calls"])):
        return f"{UNPRICED} ({plural(row['unpriced_calls'], 'call')})"
    return money(row["cost_usd"]) + (f" (+{row['unpriced_calls']:,} unpriced)" if row["unpriced_calls"] else "")


@dataclass
class Column:
    """One table column: its header, cells and footer; ``keep`` columns are never left out."""

    header: str
    cells: list[str]
    footer: str = ""
    numeric: bool = True
    keep: bool = False
    drop_rank: int = 0
    """Among droppable columns, the lowest rank is left out first."""
    shrink_to: int = NAME_MIN_WIDTH
    """A name column's narrowest width (or its longest value, when shorter); longer names wrap."""
    widths: list[int] = field(init=False)

    def __post_init__(self) -> None:
        if not self.numeric:  # names come from attribution values and budget files: anyone's text
            self.cells = [printable(c) for c in self.cells]
        self.widths = [len(self.header), len(self.footer), *(len(c) for c in self.cells)]

    @property
    def empty(self) -> bool:
        """Nothing but zeros: the first to leave when space is short."""
        return self.numeric and all(c in ("0", "0.0", "") for c in (*self.cells, self.footer))

    @property
    def width(self) -> int:
        """The width this column needs (a name column: what it may shrink to)."""
        full = max(self.widths)
        if self.numeric:
            return full
        word = max((len(w) for c in self.cells for w in c.split()), default=0)  # names wrap between words only
        return min(full, max(self.shrink_to, len(self.header), min(word, MAX_WORD_WIDTH)))


def _table_width(columns: Sequence[Column], *, shrunk: bool = True) -> int:
    """Width of a table of ``columns`` (name columns at their narrowest when ``shrunk``, else whole)."""
    widths = (c.width if shrunk else max(c.widths) for c in columns)
    return sum(w + 3 for w in widths) + 1  # one space of padding each side, one border between columns


def fit_columns(columns: list[Column], width: int) -> tuple[list[Column], list[Column]]:
    """The columns that fit ``width`` (in their order) and those left out, least important first.

    All-zero columns leave first while names still fit whole; then names may wrap, and then the other
    droppable columns leave in ``drop_rank`` order.
    """
    shown = list(columns)
    dropped: list[Column] = []
    droppable = sorted((c for c in columns if not c.keep), key=lambda c: (not c.empty, c.drop_rank))
    for column in droppable:
        if _table_width(shown, shrunk=False) <= width or not column.empty:
            break
        shown.remove(column)
        dropped.append(column)
    for column in droppable:
        if column in dropped:
            continue
        if _table_width(shown) <= width:
            break
        shown.remove(column)
        dropped.append(column)
    return shown, dropped


def print_table(console: Console, title: str, columns: list[Column], *, footer: bool = False,
                show_header: bool = True) -> None:
    """Print ``columns`` as one table that fits the console, leaving out columns rather than cutting a number."""
    shown, dropped = fit_columns(columns, console.width)
    if _table_width(shown) > console.width:
        _print_vertical(console, title, columns, footer=footer, labelled=show_header)
        return
    table = Table(title=title, show_footer=footer, show_header=show_header, title_justify="left")
    for column in shown:
        if column.numeric:
            table.add_column(column.header, footer=column.footer, justify="right", no_wrap=True,
                             min_width=max(column.widths))
        else:
            table.add_column(column.header, footer=column.footer, overflow="fold", min_width=column.width)
    for cells in zip(*(c.cells for c in shown), strict=True):
        table.add_row(*(Text(cell) for cell in cells))  # a name like "[beta]" is text, not rich markup
    console.print(table)
    if dropped:
        console.print(f"(not shown at this width: {', '.join(c.header for c in dropped)})", highlight=False,
                      soft_wrap=True)


def _print_vertical(console: Console, title: str, columns: list[Column], *, footer: bool, labelled: bool) -> None:
    """Too narrow for any table: one block per row, ``header: value`` a line (``measure: value`` for a table
    without headers), nothing cut."""
    console.print(title, highlight=False, soft_wrap=True)
    values = columns[1:]
    rows = list(zip(*(c.cells for c in columns), strict=True))
    if footer:
        rows.append(tuple(c.footer for c in columns))
    for cells in rows:
        if not labelled:
            console.print(Text(f"{cells[0].strip()}: {' '.join(cells[1:])}"), soft_wrap=True)
            continue
        console.print(Text(cells[0]), soft_wrap=True)
        for column, cell in zip(values, cells[1:], strict=True):
            if not (column.empty and not column.keep):
                console.print(Text(f"  {column.header}: {cell}"), soft_wrap=True)


_REPORT_DROP_ORDER = ("cache saved", "cache write", "reasoning", "cache read", "input", "output", "cached", "avg ms",
                      "blocked", "errors", "tokens")
"""When a report is too wide, after the all-zero columns: the token breakdown first (the ``tokens`` total stays
while it can), then the columns that tell what happened to calls, errors and the total last."""


def _report_columns(key_header: str, rows: list[dict[str, Any]], totals: dict[str, Any] | None) -> list[Column]:
    def numbers(header: str, values: list[str], total: str = "") -> Column:
        rank = _REPORT_DROP_ORDER.index(header) if header in _REPORT_DROP_ORDER else 0
        return Column(header, values, total, keep=header not in _REPORT_DROP_ORDER, drop_rank=rank)

    t = totals or {}
    columns = [Column(key_header, [r["key"] or "(none)" for r in rows], "total" if totals else "", numeric=False,
                      keep=True)]
    for name in ("calls", "errors", "blocked", "cached"):
        columns.append(numbers(name, [f"{r[name]:,}" for r in rows], f"{t[name]:,}" if t else ""))
    for key, header in TOKEN_HEADERS:
        columns.append(numbers(header, [f"{r[key]:,}" for r in rows], f"{t[key]:,}" if t else ""))
    columns.append(numbers("tokens", [f"{r['total_tokens']:,}" for r in rows], f"{t['total_tokens']:,}" if t else ""))
    columns.append(numbers("cost (USD)", [cost_cell(r) for r in rows], cost_cell(t) if t else ""))
    columns.append(numbers("avg ms", [f"{r['avg_latency_ms']:.1f}" for r in rows],
                           f"{t['avg_latency_ms']:.1f}" if t else ""))

    def saved(row: dict[str, Any]) -> str:  # "0" when caching made no difference: an all-zero column leaves first
        return money(row["cache_savings_usd"]) if row.get("cache_savings_usd") else "0"

    columns.append(numbers("cache saved", [saved(r) for r in rows], saved(t) if t else ""))
    return columns


def report_table(console: Console, data: dict[str, Any], *, title: str | None = None, totals: bool = True,
                 trend: bool = True) -> None:
    heading = title or f"LLM usage by {data['by']}  ({data['from'][:19]} .. {data['to'][:19]} UTC)"
    print_table(console, heading, _report_columns(data["by"], data["rows"], data["totals"] if totals else None),
                footer=totals)
    if trend:
        daily_bars(console, data["daily"])


def daily_bars(console: Console, daily: list[dict[str, Any]]) -> None:
    if not daily:
        console.print("No calls in this window.")
        return
    peak = max(d["cost_usd"] for d in daily) or 1.0
    labels = [f"{_day_cost(d)}  ({plural(d['calls'], 'call')})" for d in daily]
    bar_width = max(5, min(BAR_WIDTH, console.width - 16 - max(len(label) for label in labels)))
    console.print("Daily cost")
    for day, label in zip(daily, labels, strict=True):
        width = round(day["cost_usd"] / peak * bar_width)
        bar = "█" * width or ("▏" if day["calls"] else "")
        console.print(f"  {day['day']}  {bar:<{bar_width}}  {label}", highlight=False, soft_wrap=True)


def _day_cost(day: dict[str, Any]) -> str:
    """A day's cost; ``unpriced`` for a day none of whose calls had a price."""
    unpriced = day.get("unpriced_calls", 0)
    return UNPRICED if unpriced and unpriced >= day["calls"] else money(day["cost_usd"])


def report_markdown(data: dict[str, Any]) -> str:
    totals = data["totals"]
    columns = _report_columns(data["by"], data["rows"], totals)
    lines = [
        f"## LLM usage by {data['by']}",
        "",
        f"{data['from'][:10]} to {data['to'][:10]} (UTC): **{cost_cell(totals)}** over "
        f"{totals['calls']:,} calls, {totals['total_tokens']:,} tokens "
        f"({totals['errors']:,} errors, {totals['blocked']:,} blocked, {totals['cached']:,} cache hits).",
        "",
        "| " + " | ".join(c.header for c in columns) + " |",
        "|---|" + "---:|" * (len(columns) - 1),
    ]
    for cells in zip(*(c.cells for c in columns), strict=True):
        lines.append("| " + " | ".join(map(markdown_cell, cells)) + " |")
    lines.append("| **total** | " + " | ".join(c.footer for c in columns[1:]) + " |")
    if data["daily"]:
        peak = max(d["cost_usd"] for d in data["daily"]) or 1.0
        lines += ["", "Daily cost:", "", "```"]
        for day in data["daily"]:
            bar = "█" * round(day["cost_usd"] / peak * BAR_WIDTH)
            lines.append(f"{day['day']}  {bar:<{BAR_WIDTH}}  {_day_cost(day)}")
        lines.append("```")
    return "\n".join(lines) + "\n"


def report_csv_rows(data: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(CSV header, rows) of a report; the header is there for an empty window too."""
    from ..ledger.reports import REPORT_ROW_FIELDS

    fields = [data["by"], *REPORT_ROW_FIELDS]
    return fields, [{data["by"]: r["key"], **{k: v for k, v in r.items() if k != "key"}} for r in data["rows"]]


def stats_table(console: Console, data: dict[str, Any]) -> None:
    t = data["totals"]
    rows = [
        ("calls (errors / blocked / cache hits)",
         f"{t['calls']:,} ({t['errors']:,} / {t['blocked']:,} / {t['cached']:,})"),
        ("cost", cost_cell(t)),
        ("tokens", f"{t['total_tokens']:,}"),
        *((f"  {label}", f"{t[key]:,}") for key, label in TOKEN_HEADERS),
        *((f"{name} p50 / p95 / p99", " / ".join(f"{values[p]:,.1f}{unit}" for p in ("p50", "p95", "p99"))
           if any(values.values()) or name != "time to first token" else "no streamed calls")
          for name, unit, values in (("tokens per call", "", data["tokens_per_call"]),
                                     ("latency", " ms", data["latency_ms"]),
                                     ("time to first token", " ms", data["ttft_ms"]))),
        ("prompt cache hit ratio (cache reads / all input tokens)", f"{data['prompt_cache_hit_ratio']:.1%}"),
        ("response cache hit ratio (app cache hits / calls not blocked)", f"{data['response_cache_hit_ratio']:.1%}"),
    ]
    columns = [Column("measure", [r[0] for r in rows], numeric=False, keep=True, shrink_to=20),
               Column("value", [r[1] for r in rows], keep=True)]
    print_table(console, f"LLM call statistics  ({data['from'][:19]} .. {data['to'][:19]} UTC)", columns,
                show_header=False)


def _limit_cells(r: dict[str, Any]) -> tuple[str, str]:
    """(spent, limit) of a budget row: USD and tokens, whichever limits it has."""
    spent, limit = [], []
    if r["limit_usd"] is not None:
        spent.append(money(r["spent_usd"]))
        limit.append(money(r["limit_usd"]))
    if r["limit_tokens"] is not None:
        spent.append(f"{r['spent_tokens']:,} tok")
        limit.append(f"{r['limit_tokens']:,} tok")
    return " / ".join(spent), " / ".join(limit)


def _scope_cell(r: dict[str, Any]) -> str:
    per = f"per {r['per']}" if r.get("per") else ""
    return ", ".join(x for x in (per, r["scope"]) if x) or "all calls"


def _used_cell(r: dict[str, Any]) -> str:
    """``used`` of a budget row; for a templated budget's summary, its principals against their own limits."""
    if not r.get("per"):
        return f"{r['used']:.0%}"
    return f"{plural(r['principals'], 'principal')}: {r['at_limit']:,} at limit, {r['near_limit']:,} >= 80%"


def budget_table(console: Console, rows: list[dict[str, Any]]) -> None:
    limits = [_limit_cells(r) for r in rows]
    columns = [
        Column("budget", [r["name"] for r in rows], numeric=False, keep=True),
        Column("rule", [f"{r['action']}/{r['period']}" for r in rows], numeric=False, keep=True),
        Column("scope", [_scope_cell(r) for r in rows], numeric=False, drop_rank=0),
        Column("spent", [("all " + s) if r.get("per") else s for r, (s, _) in zip(rows, limits, strict=True)],
               keep=True),
        Column("limit", [("each " + lim) if r.get("per") else lim for r, (_, lim) in zip(rows, limits, strict=True)],
               keep=True),
        Column("used", [_used_cell(r) for r in rows], keep=True),
    ]
    print_table(console, "Budgets (current period)", columns)
    if any(r.get("per") for r in rows):
        console.print("Per-principal budgets: `tokentrace budget --top N` lists the N principals nearest their own "
                      "limits.", highlight=False)
    if any(r["action"] == "block" for r in rows):
        console.print("A block budget refuses a call when its spend so far plus the call's worst-case estimate "
                      "(prompt characters / 3 tokens plus the request's max output tokens, at the model's price) "
                      "would pass the limit, so it can refuse calls while under 100%. Refused calls cost nothing "
                      "and show as blocked in `tokentrace report`.",
                      highlight=False, soft_wrap=False)


def explanation(console: Any, provider: str, model: str, tier: str | None, price: Any, reason: str | None) -> None:
    """``tokentrace prices --explain``: what a call would be charged by (the price and where it came from, with
    every modifier applied), or why no price applies."""
    from rich.table import Table

    from .._usage import TOKEN_TYPES

    console.print(f"a call of {provider} model {model!r}" + (f" served at {tier!r}" if tier else "")
                  + " is charged by:", highlight=False, soft_wrap=True)
    if price is None:
        console.print(f"  nothing: {reason}", highlight=False, soft_wrap=True)
        return
    source, _, applied = price.source.partition(" @ ")
    kind = ("your override" if source.startswith("override:") else "an inferred genai-prices entry"
            if source.startswith("inferred") else "the local price ($0)" if source == "local"
            else "the genai-prices entry")
    console.print(f"  {kind}: {source}", highlight=False, soft_wrap=True)
    for note in applied.split("; ") if applied else ():
        console.print(f"  modifier: {note}", highlight=False, soft_wrap=True)
    if tier and not applied:
        console.print(f"  the tier {tier!r} names no surcharge: standard rates", highlight=False, soft_wrap=True)
    out = Table(title="USD per million tokens")
    out.add_column("applies when all input >")
    for name in TOKEN_TYPES:
        out.add_column(name, justify="right")
    for threshold, rates in ((0, price.base), *price.tiers):
        out.add_row(f"{threshold:,}", *(rate(getattr(rates, n)) for n in TOKEN_TYPES))
    console.print(out)


def reconciliation(console: Any, data: dict[str, Any]) -> None:
    """``tokentrace reconcile``'s table: one row per group with both sides and the verdict, then the totals."""
    from rich.table import Table

    by = data["by"]
    out = Table(title=f"{data['provider']} bill vs ledger, {data['from']} to {data['to']} (UTC days, end exclusive)")
    for name in by:
        out.add_column(name, no_wrap=True)
    for name in ("ledger $", "provider $", "ledger tokens", "provider tokens"):
        out.add_column(name, justify="right")
    out.add_column("verdict")
    for row in data["rows"]:
        out.add_row(*(str(row[name] if row[name] is not None else "") for name in by), usd(row["ledger_usd"]),
                    usd(row["provider_usd"]), f"{row['ledger_tokens']:,}", f"{row['provider_tokens']:,}",
                    row["verdict"])
    console.print(out)
    totals = data["totals"]
    counts = ", ".join(f"{n} {verdict}" for verdict, n in totals["rows"].items() if n)
    console.print(f"ledger {usd(totals['ledger_usd'])}, provider {usd(totals['provider_usd'])}, unseen "
                  f"{usd(totals['unseen_usd'])} ({totals['gap_pct']:.2f}% of the bill); rows: {counts or 'none'}",
                  highlight=False, soft_wrap=True)
