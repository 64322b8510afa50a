"""The ``tokentrace`` commands (typer + rich). Bad input: one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from . import render
from .invocation import command_name

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="tokentrace: what your LLM calls cost, how fast they are, and where the budget stands.")
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)  # piped: wide
err_console = Console(stderr=True)

T = TypeVar("T")

LedgerOption = Annotated[str | None, typer.Option(
    "--ledger", metavar="PATH|URL",
    help="Ledger file or postgresql:// URL (default: $TOKENTRACE_LEDGER or ~/.local/share/tokentrace/usage.db).")]
SinceOption = Annotated[str | None, typer.Option(
    "--since", metavar="DURATION",
    help="Window ending now (or at --to): 90m, 24h, 7d, 2w, 3mo (m is minutes, mo months of 30 days). "
         "Not with --from.")]
FromOption = Annotated[str | None, typer.Option(
    "--from", metavar="DATE", help="Start: 2026-11-01 or an ISO time (UTC if naive).")]
ToOption = Annotated[str | None, typer.Option(
    "--to", metavar="DATE", help="End (exclusive): 2026-11-08 or an ISO time.")]


class By(StrEnum):
    provider = "provider"
    model = "model"
    feature = "feature"
    operation = "operation"
    day = "day"
    session = "session"
    user = "user"
    tier = "tier"
    agent = "agent"
    run = "run"
    step = "step"


# the choices of --format and --provider (a StrEnum's value is its member's name)
ReportFormat = StrEnum("ReportFormat", ["table", "csv", "json", "markdown"])
ExportFormat = StrEnum("ExportFormat", ["csv", "jsonl"])
OutputFormat = StrEnum("OutputFormat", ["table", "json"])
ReconcileFormat = StrEnum("ReconcileFormat", ["table", "csv", "json"])
ReconcileProvider = StrEnum("ReconcileProvider", ["openai", "anthropic"])


def _show_version(value: bool) -> None:
    if value:
        from .._version import __version__

        sys.stdout.write(f"tokentrace {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """tokentrace: what your LLM calls cost, how fast they are, and where the budget stands."""


def fail(message: str) -> NoReturn:
    err_console.print(f"tokentrace: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _since(since: str | None, start: str | None, default: str) -> str:
    """The window's length: --since, else the command's default; --since and --from together are refused (one of
    them would be ignored)."""
    if since is not None and start is not None:
        fail("--since and --from both set the window's start; give one of them (--to sets its end)")
    return since or default


def guarded(action: Callable[[], T]) -> T:
    """Run a report action; a bad option or ledger becomes one line on stderr and exit code 2."""
    from ..budgets import BudgetError
    from ..ledger.reports import CLI_NAMES, ReportError
    from ..pricing.overrides import PriceError
    from ..pricing.refresh import RefreshError

    try:
        return action()
    except ReportError as exc:
        message = exc.worded(CLI_NAMES)
        if message.startswith("no ledger at"):
            from .demo import demo_ledger_path

            demo = demo_ledger_path()
            if demo.exists():
                message = (message.split(" (", 1)[0] + f"; `tokentrace demo` wrote its calls to {demo}: "
                           f"{command_name()} report --ledger {demo}")
        fail(message)
    except (BudgetError, PriceError, RefreshError) as exc:
        fail(str(exc))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _show(fmt: StrEnum, data: Any, table: Callable[[Any, Any], None]) -> None:
    """``data`` as indented JSON when ``--format json``, else as the table ``table`` draws on the console."""
    if fmt.value == "json":
        _print_json(data)
    else:
        table(console, data)


@app.command()
def report(
    since: SinceOption = None,
    start: FromOption = None,
    end: ToOption = None,
    by: Annotated[By, typer.Option(help="Group by this key.")] = By.feature,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = ReportFormat.table,
    ledger: LedgerOption = None,
) -> None:
    """Spend, tokens and calls from the ledger, grouped by a key, with a daily cost trend."""
    from ..ledger import reports

    since = _since(since, start, "7d")
    data = guarded(lambda: reports.report(since, by.value, ledger, start=start, end=end))
    if fmt is ReportFormat.json:
        _print_json(data)
    elif fmt is ReportFormat.csv:
        sys.stdout.write(reports.to_csv(*reversed(render.report_csv_rows(data))))
    elif fmt is ReportFormat.markdown:
        sys.stdout.write(render.report_markdown(data))
    else:
        render.report_table(console, data)


@app.command()
def stats(
    since: SinceOption = None,
    start: FromOption = None,
    end: ToOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    ledger: LedgerOption = None,
) -> None:
    """Totals, per-call tokens and latency p50/p95/p99, and cache hit ratios."""
    from ..ledger import reports

    since = _since(since, start, "7d")
    data = guarded(lambda: reports.stats(since, ledger, start=start, end=end))
    _show(fmt, data, render.stats_table)


@app.command()
def export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv or jsonl.")] = ExportFormat.csv,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="File to write (default: stdout).")] = None,
    since: SinceOption = None,
    start: FromOption = None,
    end: ToOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Every ledger row in the window, as CSV or JSON lines."""
    from ..ledger import reports

    since = _since(since, start, "30d")
    rows = guarded(lambda: list(reports.export_rows(since, ledger, start=start, end=end)))
    text = reports.to_csv(rows, reports.EXPORT_FIELDS) if fmt is ExportFormat.csv else reports.to_jsonl(rows)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    err_console.print(f"wrote {len(rows):,} rows to {output}")


@app.command()
def budget(
    budgets: Annotated[Path | None, typer.Option("--budgets", metavar="FILE", help="Budgets TOML file (default: "
                                                                  "$TOKENTRACE_BUDGETS).")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    top: Annotated[int, typer.Option(min=0, max=1000, metavar="N", help="For each budget with per=..., also the N "
                                                                     "principals nearest their limit.")] = 0,
    ledger: LedgerOption = None,
) -> None:
    """Each budget's spend in its current period, from the ledger, against its limit."""
    from ..budgets import load_budgets
    from ..ledger import reports

    source = budgets or os.environ.get("TOKENTRACE_BUDGETS")
    if not source:
        fail("no budgets: pass --budgets FILE or set TOKENTRACE_BUDGETS")
    rows = guarded(lambda: reports.budget_status(load_budgets(source), ledger, top=top))
    _show(fmt, rows, render.budget_table)


@app.command()
def prices(
    model: Annotated[str | None, typer.Argument(metavar="MODEL", hidden=True)] = None,
    provider: Annotated[str | None, typer.Option(
        metavar="PROVIDER", help="Provider id (openai, xai, anthropic, google, ...). Default: for MODEL, every "
                                 "provider that prices it; for the list, openai.")] = None,
    prices_file: Annotated[str | None, typer.Option(
        "--prices", metavar="FILE", help="Override file (TOML/JSON/YAML/LiteLLM; default: $TOKENTRACE_PRICES).")
    ] = None,
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Fetch genai-prices' newest table (a network call, only when asked) and keep it for "
                          "tokentrace to use from now on.")] = False,
    url: Annotated[str | None, typer.Option(metavar="URL", help="Where --refresh fetches from (default: "
                                                                 "genai-prices' published table).")] = None,
    allow_http: Annotated[bool, typer.Option(
        "--allow-http", help="Let --refresh fetch from a plain http:// URL (a trusted local mirror).")] = False,
    explain: Annotated[tuple[str, str] | None, typer.Option(
        "--explain", metavar="PROVIDER MODEL",
        help="Say which entry, override or modifier a call of MODEL at PROVIDER would be charged by, and why "
             "(the model as the response names it, e.g. gpt-4o-mini-2024-07-18).")] = None,
    tier: Annotated[str | None, typer.Option(
        "--tier", metavar="T", help="With --explain: the tier the response says served the call (flex, priority, "
                                    "standard+inference_geo=us, ...).")] = None,
    ledger: LedgerOption = None,
) -> None:
    """List a provider's prices, or show MODEL's rates (USD per million tokens) and where they come from.

    MODEL is a model name as the provider spells it, e.g. gpt-4o-mini.
    """
    from rich.table import Table

    from .._registry import BY_ID
    from .._usage import TOKEN_TYPES
    from ..pricing import PriceTable
    from ..pricing.overrides import parse_overrides

    if provider is not None and provider not in BY_ID:
        fail(f"unknown provider {provider!r}; known: {', '.join(BY_ID)}")
    if refresh:
        from ..pricing.refresh import refresh_table

        stored, count = guarded(lambda: refresh_table(url, allow_http=allow_http))
        err_console.print(f"stored {count:,} model prices in {stored}", highlight=False, soft_wrap=True)
    source = prices_file or os.environ.get("TOKENTRACE_PRICES")
    table = guarded(lambda: PriceTable(parse_overrides(source) if source else None))
    table.warm()
    dated = table.table_date()
    console.print(f"price table: genai-prices {table.genai_prices_version}, {table.table_source}"
                  + (f" (newest price change in it: {dated})" if dated else "")
                  + (f" + overrides from {source}" if source else ""))
    names = TOKEN_TYPES
    if tier is not None and explain is None:
        fail("--tier goes with --explain PROVIDER MODEL")
    if explain is not None:
        explained, why = explain
        if explained not in BY_ID:
            fail(f"unknown provider {explained!r}; known: {', '.join(BY_ID)}")
        render.explanation(console, explained, why, tier, *table.price_for(explained, why, tier))
        return
    if model is None:  # list the provider's models
        named = provider is not None
        provider = provider or "openai"
        listing = Table(title=f"{provider} models (USD per million tokens; tiers: tokentrace prices MODEL)"
                        + ("" if named else "\nthe default provider; --provider NAME lists another's"))
        listing.add_column("model", no_wrap=True)  # never cut: text-embedding-3-small and -large must differ
        for name in names:
            listing.add_column(name, justify="right")
        for model_name, listed in table.models(provider):
            listing.add_row(model_name, *(render.rate(getattr(listed.base, n)) for n in names))
        console.print(listing)
        return
    if provider is None:  # the providers that price the name, the model's maker first
        pricing = _pricing_providers(table, model)
        if not pricing:
            fail(f"no price known for model {model!r} at any provider (tokentrace prices --provider NAME lists "
                 "a provider's models)")
        if len(pricing) > 1:
            console.print(f"priced by {', '.join(pricing)}; showing {pricing[0]} (--provider NAME for another)")
        provider = pricing[0]
    price = table.lookup(provider, model)
    if price is None:
        others = [p for p in _pricing_providers(table, model) if p != provider]
        fail(f"no price known for {provider} model {model!r}"
             + (f"; try --provider {others[0]}" if others else ""))
    out = Table(title=f"{provider} / {model}  ({price.source})")
    out.add_column("applies when all input >")
    for name in names:
        out.add_column(f"{name.replace('_', ' ')} $/MTok", justify="right")  # wraps, never cut
    for threshold, rates in ((0, price.base), *price.tiers):
        out.add_row(f"{threshold:,}", *(render.rate(getattr(rates, n)) for n in names))
    console.print(out)


@app.command()
def reconcile(
    provider: Annotated[ReconcileProvider, typer.Option(
        help="Whose bill: its admin key is read from OPENAI_ADMIN_KEY / ANTHROPIC_ADMIN_KEY (never printed).")],
    since: SinceOption = None,
    start: FromOption = None,
    end: ToOption = None,
    by: Annotated[list[str] | None, typer.Option(
        metavar="day|model|project|api_key", help="Group by these (repeat the option); default: day and model. "
                                                  "project and api_key are read from the ledger's attribution keys "
                                                  "of those names.")] = None,
    fmt: Annotated[ReconcileFormat, typer.Option("--format", help="Output format.")] = ReconcileFormat.table,
    base_url: Annotated[str | None, typer.Option(
        metavar="URL", help="The provider's API (default: its public one; the simulator's URL for a try-out).")] = None,
    tolerance: Annotated[float, typer.Option(
        min=0, max=100, metavar="PCT", help="A row matches when the dollars differ by at most this share of the "
                                            "bill (or half a cent).")] = 1.0,
    fail_over: Annotated[float | None, typer.Option(
        min=0, max=100, metavar="PCT", help="Exit 3 when the unseen share of the bill is above PCT (nightly jobs)."
    )] = None,
    ledger: LedgerOption = None,
) -> None:
    """Set the provider's own usage and cost reports beside the ledger, by UTC day and model: matched, unseen,
    ledger_only, mismatch or pending per row."""
    from .. import reconcile as reconciliation
    from ..ledger.reports import window

    since = _since(since, start, "30d")
    begin, stop = guarded(lambda: window(since, start, end))
    try:
        data = reconciliation.reconcile(provider.value, begin, stop, by=tuple(by or ("day", "model")),
                                        tolerance_pct=tolerance, base_url=base_url, ledger=ledger)
    except reconciliation.ReconcileError as exc:
        fail(str(exc))
    if fmt is ReconcileFormat.json:
        _print_json(data)
    elif fmt is ReconcileFormat.csv:
        from ..ledger.reports import to_csv

        sys.stdout.write(to_csv(data["rows"]))
    else:
        render.reconciliation(console, data)
    if fail_over is not None and data["totals"]["gap_pct"] > fail_over:
        raise typer.Exit(3)




def _pricing_providers(table: Any, model: str) -> list[str]:
    """Provider ids whose price table has ``model`` (local servers, which price everything at $0, left out)."""
    from .._registry import BY_ID, LOCAL, MODEL_MAKERS

    found = [p for p in BY_ID if p != "openai_compatible" and p not in LOCAL and table.lookup(p, model) is not None]
    return sorted(found, key=lambda p: MODEL_MAKERS.index(p) if p in MODEL_MAKERS else len(MODEL_MAKERS))


ledger_app = typer.Typer(help="The ledger database itself.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("init")
def ledger_init(ledger: LedgerOption = None) -> None:
    """Create the ledger's tables now (or migrate them to this tokentrace's schema), with the privileges of the
    command's own user: an app then connects with a role that needs no CREATE privilege."""
    from ..config import ledger_location
    from ..ledger.db import LedgerError
    from ..ledger.location import describe
    from ..ledger.schema import SCHEMA_VERSION
    from ..ledger.store import open_db

    location = ledger_location(ledger)
    if location is None:
        fail("no ledger: pass --ledger PATH|URL or set TOKENTRACE_LEDGER")
    try:
        open_db(location, create=True, timeout=10).close()
    except LedgerError as exc:
        fail(str(exc))
    console.print(f"ledger ready at {describe(str(location))} (schema {SCHEMA_VERSION})", highlight=False,
                  soft_wrap=True)


@app.command()
def demo(
    calls: Annotated[int, typer.Option(min=1, metavar="N", help="How many calls the workload makes.")] = 60,
    serve: Annotated[bool, typer.Option(help="Keep producing traffic and serving /metrics until stopped.")] = False,
    metrics_port: Annotated[int, typer.Option(min=0, max=65535, metavar="PORT", help="Port for /metrics.")] = 9464,
    metrics_addr: Annotated[str, typer.Option(
        metavar="ADDR", help="Address /metrics binds (0.0.0.0 for the compose stack).")] = "127.0.0.1",
    ledger: Annotated[str | None, typer.Option(
        "--ledger", metavar="PATH|URL",
        help="Ledger to write (default: the demo's own demo.db beside the usage ledger, emptied each run; "
             "your usage ledger is never touched unless you name it here).")] = None,
) -> None:
    """Run a simulated multi-provider workload through the real SDKs (no API keys), fill the ledger, report."""
    from .demo import run_demo

    run_demo(calls=calls, serve=serve, metrics_port=metrics_port, metrics_addr=metrics_addr, ledger=ledger,
             console=console, err_console=err_console, fail=fail)


def run() -> None:
    try:
        code = app(standalone_mode=False)  # returns the exit code of typer.Exit instead of raising it
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # usage errors (typer's click) and anything unexpected: one line, exit 2
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `tokentrace`: show the help, nothing failed
            ctx = getattr(exc, "ctx", None)
            sys.stdout.write((ctx.get_help() if ctx is not None else "Try 'tokentrace --help'.") + "\n")
            sys.exit(0)
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else f"{type(exc).__name__}: {exc}"
        message = message.replace("Value error, ", "")  # pydantic's prefix, which typer passes on from its enums
        err_console.print(f"tokentrace: error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
