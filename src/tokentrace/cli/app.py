"""The ``tokentrace`` commands (typer + rich). Bad input: one line on stderr and exit code 2."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="tokentrace: what your LLM calls cost, how fast they are, and where the budget stands.")
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    err_console.print(f"tokentrace: error: {message}", markup=False, highlight=False)
    raise typer.Exit(2)


def _money(value: float) -> str:
    return f"${value:,.6f}" if value < 1 else f"${value:,.2f}"


@app.command()
def demo(
    calls: Annotated[int, typer.Option(min=1, help="How many calls the workload makes.")] = 30,
    serve: Annotated[bool, typer.Option(help="Keep producing traffic and serving /metrics until stopped.")] = False,
    metrics_port: Annotated[int, typer.Option(min=0, max=65535, help="Port for /metrics (127.0.0.1).")] = 9464,
) -> None:
    """Run a simulated multi-provider workload through the real SDKs (no API keys) and print what was measured."""
    try:
        import openai  # noqa: F401

        from ..simulator import Simulator
    except ImportError as exc:
        fail(f"the demo needs the openai and simulator extras ({exc.name} is missing): "
             "pip install 'tokentrace[openai,simulator]'")
    import tokentrace
    from tokentrace.testing import capture_usage

    from .demo import run_workload
    from .summary import summarize

    tokentrace.instrument(metrics_port=metrics_port if serve else None)
    with Simulator(latency_ms=5, chunk_delay_ms=1) as sim, capture_usage() as records:
        from rich.progress import Progress

        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("simulated LLM calls", total=calls)
            run_workload(sim.port, calls, on_call=lambda: progress.advance(task))
        _print_summary(summarize(records))
        if serve:
            console.print(f"Serving /metrics on http://127.0.0.1:{metrics_port}/metrics; Ctrl-C to stop.")
            try:
                while True:
                    run_workload(sim.port, 10)
                    time.sleep(1.0)
            except KeyboardInterrupt:
                pass
    tokentrace.flush()


def _print_summary(rows: list[Any]) -> None:
    table = Table(title="LLM calls measured by tokentrace")
    for name in ("provider", "model", "calls", "errors", "input", "cache_read", "cache_write", "output",
                 "reasoning", "cost (USD)", "p50 latency"):
        table.add_column(name, justify="left" if name in ("provider", "model") else "right")
    total_cost = 0.0
    for row in rows:
        total_cost += row.cost_usd
        cost = _money(row.cost_usd) + (f" (+{row.unpriced} unpriced)" if row.unpriced else "")
        table.add_row(*row.key, str(row.calls), str(row.errors), *(f"{v:,}" for v in row.tokens.values()), cost,
                      f"{row.p50_latency_ms:.1f} ms")
    console.print(table)
    console.print(f"Total cost: {_money(total_cost)}")


@app.command()
def prices(
    model: Annotated[str | None, typer.Argument(help="Model to look up, e.g. gpt-4o-mini.")] = None,
    provider: Annotated[str, typer.Option(help="Provider id (openai, xai, anthropic, google, ...).")] = "openai",
    prices_file: Annotated[str | None, typer.Option("--prices", help="Override file (TOML/JSON/YAML/LiteLLM).")] = None,
) -> None:
    """Show the price of a model (USD per million tokens) and where it comes from."""
    from ..pricing import GENAI_PRICES_PROVIDER, PriceError, PriceTable, parse_overrides

    if provider not in GENAI_PRICES_PROVIDER:
        fail(f"unknown provider {provider!r}; known: {', '.join(GENAI_PRICES_PROVIDER)}")
    try:
        table = PriceTable(parse_overrides(prices_file) if prices_file else None)
    except PriceError as exc:
        fail(str(exc))
    table.warm()
    console.print(f"price table: genai-prices {table.genai_prices_version}")
    if model is None:
        return
    price = table.lookup(provider, model)
    if price is None:
        fail(f"no price known for {provider} model {model!r}")
    out = Table(title=f"{provider} / {model}  ({price.source})")
    out.add_column("applies when all input >")
    for name in ("input", "cache_read", "cache_write", "output", "reasoning"):
        out.add_column(name, justify="right")
    for threshold, rates in ((0, price.base), *price.tiers):
        out.add_row(f"{threshold:,}", *(f"${getattr(rates, n):g}" for n in
                                        ("input", "cache_read", "cache_write", "output", "reasoning")))
    console.print(out)


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
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else f"{type(exc).__name__}: {exc}"
        err_console.print(f"tokentrace: error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
