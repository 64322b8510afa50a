"""tokentrace: every LLM call made visible and affordable. ``tokentrace.instrument()`` at start-up is all it takes."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._usage import TOKEN_TYPES, Usage, UsageRecord
from ._version import __version__
from .budgets import Budget, BudgetError, BudgetExceeded, BudgetUnavailable
from .budgets.run import run_budget
from .config import ConfigError, env_flag
from .context import attributes

if TYPE_CHECKING:
    from .instrumentation.instrumentor import Instrumentation
    from .ledger.reports import ReportError
    from .pricing.overrides import PriceError


__all__ = [
    "TOKEN_TYPES",
    "Budget",
    "BudgetError",
    "BudgetExceeded",
    "BudgetUnavailable",
    "ConfigError",
    "Instrumentation",
    "PriceError",
    "ReportError",
    "Usage",
    "UsageRecord",
    "__version__",
    "attributes",
    "budget_status",
    "flush",
    "instrument",
    "record_cache_hit",
    "report",
    "run_budget",
    "uninstrument",
    "usage_app",
]


def instrument(
    providers: Iterable[str] | None = None,
    *,
    prices: str | Mapping[str, Any] | None = None,
    ledger: Any = None,
    budgets: Any = (),
    metrics_port: int | None = None,
    metrics_addr: str | None = None,
    capture_content: bool | None = None,
    metric_labels: Iterable[str] = ("feature",),
    namespace: str | None = None,
    stream_usage: bool | None = None,
    max_label_values: int | None = None,
    budget_unavailable: str = "allow",
    flush_on_sigterm: bool | None = None,
    infer_prices: bool | None = None,
    http: bool | None = None,
    llm_hosts: Iterable[str] | None = None,
    usage_token: str | None = None,
    usage_by_identity: bool | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    registry: Any = None,
) -> Instrumentation:
    """Patch the installed provider SDKs so every call is measured. Idempotent: a second call returns the same handle.

    Raises ConfigError (a ValueError) for arguments that cannot work; never raises for an absent SDK.
    ``flush_on_sigterm`` (default: ``TOKENTRACE_FLUSH_ON_SIGTERM``, on): on SIGTERM, write queued rows (at most
    2 s) before the signal's previous handler or default action runs.
    ``infer_prices`` (default: ``TOKENTRACE_INFER_PRICES``, on): a call to an unknown OpenAI-compatible host
    (provider ``openai_compatible``) whose model name exactly one price-table price matches is priced from it,
    with ``price_source`` starting ``inferred``; False leaves such calls unpriced.

    ``http`` (default: ``TOKENTRACE_HTTP``, on): also measure LLM calls that no patched SDK method made, seen on
    the wire in httpx, requests/urllib3 and aiohttp (LiteLLM, raw HTTP, other SDKs). On a host that is not a known
    provider, only a request whose body is an LLM request of its format is measured, and budgets refuse it only
    once the host has answered one like an LLM API, or when ``llm_hosts`` (default: ``TOKENTRACE_LLM_HOSTS``)
    names it. ``usage_token`` (default:
    ``TOKENTRACE_USAGE_TOKEN``): the bearer token ``GET /usage`` on the metrics server asks for; without one,
    ``/usage`` answers 403 when ``metrics_addr`` is not a loopback address. ``usage_by_identity`` (default:
    ``TOKENTRACE_USAGE_BY_IDENTITY``, off): let ``GET /usage`` group by user or session.
    """
    from . import config
    from .instrumentation import instrumentor as _instrumentor

    given = {name: value for name, value in locals().items() if name not in ("_instrumentor", "config")}
    existing = _instrumentor.current()
    if existing is not None:
        import inspect

        defaults = {name: p.default for name, p in inspect.signature(instrument).parameters.items()}
        existing.warn_if_different(given, defaults)  # only what this call passed can be "ignored"
        return existing
    if env_flag("TOKENTRACE_DISABLED"):
        handle = _instrumentor.instrument(None, disabled=True)  # type: ignore[arg-type]
        handle.arguments = given
        return handle
    settings = config.resolve(**{name: value for name, value in given.items()
                                 if name not in ("tracer_provider", "meter_provider", "registry")})
    handle = _instrumentor.instrument(
        settings, tracer_provider=tracer_provider, meter_provider=meter_provider, registry=registry
    )
    handle.arguments = given
    return handle


def uninstrument() -> None:
    """Restore every patched SDK method and stop serving metrics. Safe to call twice."""
    from .instrumentation import instrumentor as _instrumentor

    _instrumentor.uninstrument()


def flush(timeout: float = 5.0) -> bool:
    """Drain buffered telemetry (ledger writer, exporters). True when everything was written in time.

    Also writes the ledger rows of calls that were still in flight at the last ``uninstrument()``.
    """
    from .instrumentation import instrumentor as _instrumentor

    handle = _instrumentor.current()
    flushed = handle.flush(timeout) if handle is not None else True
    return _instrumentor.flush_retired(timeout) and flushed


def report(since: str = "7d", by: str = "feature", ledger: str | os.PathLike[str] | None = None, *,
           start: str | None = None, end: str | None = None, limit: int | None = None) -> dict[str, Any]:
    """Spend and tokens from the ledger grouped ``by`` provider/model/feature/operation/day/session/user.
    ``limit``: at most that many groups, the most expensive (``truncated`` says whether any were left out).

    The same dict ``tokentrace report --format json`` prints. Raises ``tokentrace.ReportError`` (a ValueError)
    for bad options or a missing ledger. Rows still queued in this process are written first.
    """
    from .ledger import reports

    flush()
    return reports.report(since, by, ledger, start=start, end=end, limit=limit)


def budget_status(**principal: str) -> list[dict[str, Any]]:
    """One principal's standing in every budget with ``per=`` its keys, e.g. ``budget_status(user_id="alice")``:
    a list of ``{name, period, spent_usd, limit_usd, used, ...}`` (what ``tokentrace budget`` shows), for the
    app's own "your usage" page. Fleet-wide with a ledger (read now), this process's own without one; [] when
    tokentrace is not instrumented or no templated budget names these keys."""
    from ._support.text import bounded
    from .instrumentation import instrumentor as _instrumentor
    from .ledger.reports import budget_row

    handle = _instrumentor.current()
    sink = handle.sink("budget") if handle is not None else None
    if sink is None:
        return []
    named = {key: bounded(str(value)) for key, value in principal.items() if value is not None}  # as attributes()
    templates = tuple(getattr(sink, "templates", ()))
    if named and templates and not any(set(t.per_keys) <= set(named) for t in templates):
        keys = sorted({" + ".join(t.per_keys) for t in templates})
        raise ConfigError(f"budget_status({', '.join(f'{k}=...' for k in named)}): no budget with per= is keyed by "
                          f"{', '.join(sorted(named))}; the per= keys are {'; '.join(keys)}")
    return [budget_row(s.budget, s.spent_usd, s.spent_tokens) for s in sink.principal_status(**named)]


def usage_app(ledger: str | os.PathLike[str] | None = None, *, token: str | None = None,
              by_identity: bool = False) -> Callable[..., Awaitable[None]]:
    """An ASGI app answering ``GET /usage`` (query ``since``, ``from``, ``to``, ``by``) with the report as JSON.

    Mount it in a web app, e.g. ``app.mount("/usage", tokentrace.usage_app())`` in Starlette or FastAPI.
    Bad parameters answer 400 with one line of text. ``ledger``: None reads the ledger ``instrument()`` was given
    (else the default one). ``token`` (default: ``TOKENTRACE_USAGE_TOKEN``): requests must carry
    ``Authorization: Bearer <token>``. ``by_identity``: allow ``by=user`` / ``by=session``.
    """
    from .serving.usage import usage_app as make

    return make(ledger, token=token, by_identity=by_identity)


def record_cache_hit(provider: str, model: str, **attributes_: Any) -> None:
    """Record an app-level response-cache hit (no provider call): status ``cached``, cost 0, every sink."""
    from ._usage import ZERO_USAGE, RequestInfo, ResponseInfo
    from .instrumentation import instrumentor as _instrumentor

    handle = _instrumentor.current()
    if handle is None or handle.recorder is None:
        return
    try:
        with attributes(**attributes_):
            call = handle.recorder.start(RequestInfo(provider=provider, operation="chat", request_model=model,
                                                     cached=True))
            call.detach()
            call.stop(ResponseInfo(usage=ZERO_USAGE, response_model=model), status="cached")
    except Exception as exc:
        from ._support import errors as _errors

        _errors.report("record_cache_hit", exc, "could not record a cache hit")


def __getattr__(name: str) -> Any:
    if name == "Instrumentation":
        from .instrumentation.instrumentor import Instrumentation

        return Instrumentation
    if name == "ReportError":
        from .ledger.reports import ReportError

        return ReportError
    if name == "PriceError":
        from .pricing.overrides import PriceError

        return PriceError
    if name in ("testing", "reports"):  # public submodules, loaded when first used
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tokentrace' has no attribute {name!r}")
