"""Configuration: instrument() arguments and TOKENTRACE_* environment variables resolved into one frozen Settings.

Budgets and price overrides are read and checked here, so a bad file fails instrument() before anything is built.
Also the one resolver of the ledger location (instrument, reports and the CLI all use it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ._registry import SDK_NAMES
from ._support.config_error import ConfigError as ConfigError  # re-exported: tokentrace.config.ConfigError
from .budgets import Budget, resolve_budgets
from .pricing import ModelPrice
from .pricing.overrides import PriceError, parse_overrides

KNOWN_PROVIDERS = SDK_NAMES
_OFF = {"off", "0", "false", "none", "no"}
_FALSE = {"0", "false", "no", "off", ""}
_TRUE = {"1", "true", "yes", "on"}
CAPTURING = {"true", "1", "span_only", "event_only", "span_and_event"}
"""OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT values that capture (OpenTelemetry's documented ones, any
case); every other value, NO_CONTENT included, captures nothing."""




ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("TOKENTRACE_DISABLED", "`1`: `instrument()` does nothing"),
    ("TOKENTRACE_LEDGER", "ledger path, `postgresql://` URL, or `off` (`instrument(ledger=...)`)"),
    ("TOKENTRACE_BUDGETS", "budgets TOML file (`instrument(budgets=...)`)"),
    ("TOKENTRACE_PRICES", "price override file: model prices and tier `modifiers` (`instrument(prices=...)`)"),
    ("TOKENTRACE_METRICS_PORT", "serve `/metrics` (and `/usage`) on this port (`instrument(metrics_port=...)`)"),
    ("TOKENTRACE_METRICS_ADDR", "address `/metrics` binds (default `127.0.0.1`)"),
    ("TOKENTRACE_NAMESPACE", "metric name prefix (`instrument(namespace=...)`)"),
    ("TOKENTRACE_STREAM_USAGE", "`0`: do not add `stream_options.include_usage` to OpenAI-format streams"),
    ("TOKENTRACE_HTTP", "`0`: do not measure calls on the wire (httpx, requests, aiohttp; `instrument(http=False)`)"),
    ("TOKENTRACE_LLM_HOSTS", "comma-separated host names whose LLM-shaped requests budgets may refuse from the first "
                             "call (`instrument(llm_hosts=...)`; other unknown hosts: once they answered like an LLM "
                             "API)"),
    ("TOKENTRACE_USAGE_TOKEN", "bearer token `GET /usage` asks for (required beyond loopback; "
                               "`instrument(usage_token=...)`)"),
    ("TOKENTRACE_USAGE_BY_IDENTITY", "`1`: let `GET /usage` group by user or session "
                                     "(`instrument(usage_by_identity=True)`)"),
    ("TOKENTRACE_INFER_PRICES", "`0`: leave calls to unknown hosts unpriced instead of inferring from an "
                                "unambiguous table match (`instrument(infer_prices=False)`)"),
    ("TOKENTRACE_FLUSH_ON_SIGTERM", "`0`: do not install the SIGTERM handler that writes queued rows "
                                    "(`instrument(flush_on_sigterm=False)`)"),
    ("TOKENTRACE_UNPRICED_ESTIMATE_USD", "what a block budget reserves for a call to a model without a known "
                                         "price (default 0.10)"),
    ("TOKENTRACE_RESERVATION_TTL_S", "seconds a budget reservation lives without renewal (default 60)"),
    ("TOKENTRACE_MAX_LABEL_VALUES", "distinct values per Prometheus label (default 1,000; extra values become "
                                    "`other` and are counted)"),
    ("TOKENTRACE_LEDGER_QUEUE_SIZE", "rows waiting for the ledger writer before new ones are dropped and counted "
                                     "(default 100,000)"),
    ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
     "default of `capture_content`: `true`/`SPAN_ONLY` put prompt and completion text on spans, `EVENT_ONLY` on a "
     "`gen_ai.client.inference.operation.details` event, `SPAN_AND_EVENT` both; never in metrics or the ledger"),
    ("TOKENTRACE_REALTIME_CLOSE_ON_BUDGET",
     "`1`: close a realtime session when a block budget would refuse a response the server started itself "
     "(server-side turn detection); default: such responses are counted, the session left open"),
    ("OTEL_SEMCONV_STABILITY_OPT_IN",
     "comma-separated; with `gen_ai_latest_experimental`, spans also carry the proposed cost trio "
     "`gen_ai.usage.cost.amount` / `.currency` / `.source` (semantic-conventions-genai #443, not yet released)"),
)
"""Every environment variable tokentrace reads, with its meaning: the documentation's table is made from this
(``docs/hooks.py``), and a test checks that the code reads no variable missing here."""


def env_flag(name: str, default: bool = False) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off (any case; empty: ``default``). Else ConfigError."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ConfigError(f"{name} must be 1/true/yes/on or 0/false/no/off, not {value!r}")


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, not {value!r}")
    return value


def capture_from_env() -> bool:
    value = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value.strip().lower() in CAPTURING


def default_ledger_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tokentrace" / "usage.db"


def ledger_location(ledger: Any = None, *, reading: bool = False) -> Path | str | None:
    """Where the ledger is: ``ledger`` when given (False: none), else ``TOKENTRACE_LEDGER``, else the default path.

    A SQLite file comes back as a Path, a ``postgresql://`` URL as the string itself.
    ``TOKENTRACE_LEDGER=off`` means no ledger for an instrumented app; readers (``reading``) then use the default.
    """
    if ledger is False:
        return None
    if ledger is not None:
        if isinstance(ledger, bool) or not isinstance(ledger, (str, os.PathLike)):
            raise ConfigError(f"ledger must be a file path, a postgresql:// URL or False, not {ledger!r}")
        return _location(ledger)
    env = os.environ.get("TOKENTRACE_LEDGER", "").strip()
    if env.lower() in _OFF:
        return None if not reading else default_ledger_path()
    return _location(env) if env else default_ledger_path()


def _location(value: str | os.PathLike[str]) -> Path | str:
    if isinstance(value, str) and value.startswith(("postgresql://", "postgres://")):
        from .ledger.location import url_problem

        problem = url_problem(value)
        if problem:
            raise ConfigError(problem)
        return value
    text = os.fspath(value)
    if not text or text.endswith(("/", os.sep)) or (os.path.isdir(text)):
        raise ConfigError(f"ledger {text!r} is a directory; give the ledger file's path (e.g. {text.rstrip('/')}"
                          f"/usage.db) or a postgresql:// URL")
    return Path(value)


@dataclass(frozen=True)
class Settings:
    """Everything instrument() needs, checked; built only by ``resolve``."""

    providers: tuple[str, ...]
    price_overrides: Mapping[tuple[str | None, str], ModelPrice]
    ledger: Path | str | None
    budgets: tuple[Budget, ...]
    metrics_port: int | None
    metrics_addr: str
    capture_content: bool
    metric_labels: tuple[str, ...]
    namespace: str
    stream_usage: bool
    max_label_values: int = 1000
    ledger_queue_size: int = 100_000
    budget_unavailable: str = "allow"
    reservation_ttl_s: float = 60.0
    flush_on_sigterm: bool = True
    infer_prices: bool = True
    usage_token: str | None = None
    """Bearer token GET /usage asks for (TOKENTRACE_USAGE_TOKEN); required when metrics_addr is not loopback."""
    usage_by_identity: bool = False
    """GET /usage answers by=user and by=session (TOKENTRACE_USAGE_BY_IDENTITY)."""
    http: bool = True
    """Measure LLM calls seen on the wire (httpx, requests, aiohttp) too (TOKENTRACE_HTTP)."""
    llm_hosts: tuple[str, ...] = ()
    """Hosts that are not known providers but serve LLM APIs (a gateway, a self-hosted server): their LLM-shaped
    requests may be refused by budgets from the first call (TOKENTRACE_LLM_HOSTS)."""


def _port(value: Any, source: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, (bool, float)):
        raise ConfigError(f"{source} must be a port number, got {value!r}")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source} must be a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{source} must be between 0 and 65535, got {port}")
    return port


def _names(value: Any, wanted: str) -> tuple[Any, ...]:
    """One name or an iterable of them, as a tuple; anything else is a ConfigError saying what was ``wanted``."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        return tuple(value)
    raise ConfigError(f"{wanted}, not {value!r}")


#: instrument()'s settings with their defaults, in the order resolve() unpacks them.
_ARGUMENTS: dict[str, Any] = dict.fromkeys((
    "providers", "prices", "ledger", "budgets", "metrics_port", "metrics_addr", "capture_content", "metric_labels",
    "namespace", "stream_usage", "max_label_values", "budget_unavailable", "flush_on_sigterm", "infer_prices",
    "usage_token", "usage_by_identity", "http", "llm_hosts")) | {
    "budgets": (), "metric_labels": ("feature",), "budget_unavailable": "allow"}


def resolve(**given: Any) -> Settings:
    """Check instrument()'s arguments, fill the rest from the environment, read budget and price files."""
    unknown = sorted(set(given) - set(_ARGUMENTS))
    if unknown:
        raise TypeError(f"unexpected setting(s) {unknown}; known: {', '.join(_ARGUMENTS)}")
    (providers, prices, ledger, budgets, metrics_port, metrics_addr, capture_content, metric_labels, namespace,
     stream_usage, max_label_values, budget_unavailable, flush_on_sigterm, infer_prices, usage_token,
     usage_by_identity, http, llm_hosts) = ({**_ARGUMENTS, **given}[name] for name in _ARGUMENTS)
    chosen: tuple[str, ...]
    if providers is None:
        chosen = KNOWN_PROVIDERS
    else:
        chosen = _names(providers, "providers must be provider names such as ('openai', 'anthropic')")
        unknown = [p for p in chosen if p not in KNOWN_PROVIDERS]
        if unknown:
            raise ConfigError(f"unknown provider(s) {unknown}; known: {', '.join(KNOWN_PROVIDERS)}")

    price_source = prices if prices is not None else os.environ.get("TOKENTRACE_PRICES") or None
    if price_source is not None and (isinstance(price_source, bool) or not isinstance(
            price_source, (str, os.PathLike, Mapping))):
        raise ConfigError(f"prices must be a file path or a mapping, not {price_source!r}")

    capture_content = capture_from_env() if capture_content is None else _bool(capture_content, "capture_content")
    stream_usage = env_flag("TOKENTRACE_STREAM_USAGE", True) if stream_usage is None else _bool(stream_usage,
                                                                                             "stream_usage")
    flush_on_sigterm = env_flag("TOKENTRACE_FLUSH_ON_SIGTERM", True) if flush_on_sigterm is None else _bool(
        flush_on_sigterm, "flush_on_sigterm")
    infer_prices = env_flag("TOKENTRACE_INFER_PRICES", True) if infer_prices is None else _bool(
        infer_prices, "infer_prices")
    usage_by_identity = env_flag("TOKENTRACE_USAGE_BY_IDENTITY") if usage_by_identity is None else _bool(
        usage_by_identity, "usage_by_identity")
    http = env_flag("TOKENTRACE_HTTP", True) if http is None else _bool(http, "http")
    token = usage_token if usage_token is not None else os.environ.get("TOKENTRACE_USAGE_TOKEN") or None
    if token is not None and (not isinstance(token, str) or len(token.strip()) < 16 or not token.isprintable()):
        raise ConfigError("usage_token (TOKENTRACE_USAGE_TOKEN) must be printable text of at least 16 characters")
    if namespace is not None and (not isinstance(namespace, str) or (namespace and not namespace.isidentifier())):
        raise ConfigError(f"namespace must be an identifier such as 'acme', not {namespace!r}")

    from .budgets.estimate import check_unpriced_estimate

    try:
        check_unpriced_estimate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if budget_unavailable not in ("allow", "block"):
        raise ConfigError(f"budget_unavailable must be 'allow' or 'block', not {budget_unavailable!r}")

    labels = _names(metric_labels, "metric_labels must be label names such as ('feature',) (() for none)")
    for label in labels:
        if not isinstance(label, str) or not label.isidentifier() or label in (
                "provider", "model", "operation", "token_type", "status"):
            raise ConfigError(f"metric label {label!r} is not allowed")

    hosts = _names(llm_hosts, "llm_hosts must be host names such as ('llm.internal.example',)") \
        if llm_hosts is not None else tuple(h.strip() for h in os.environ.get("TOKENTRACE_LLM_HOSTS", "").split(","))
    for host in hosts:
        if not isinstance(host, str) or any(c in host for c in "/: ") or not host.isprintable():
            raise ConfigError(f"llm_hosts: {host!r} is not a host name (no scheme, port or path)")
    return Settings(
        llm_hosts=tuple(h.strip().lower() for h in hosts if h.strip()),
        providers=chosen,
        price_overrides=_overrides(price_source),
        ledger=ledger_location(ledger),
        budgets=tuple(resolve_budgets(budgets if budgets else os.environ.get("TOKENTRACE_BUDGETS") or ())),
        metrics_port=_port(metrics_port, "metrics_port") if metrics_port is not None
        else _port(os.environ.get("TOKENTRACE_METRICS_PORT"), "TOKENTRACE_METRICS_PORT"),
        metrics_addr=metrics_addr or os.environ.get("TOKENTRACE_METRICS_ADDR") or "127.0.0.1",
        capture_content=capture_content,
        metric_labels=labels,
        namespace=namespace if namespace is not None else os.environ.get("TOKENTRACE_NAMESPACE", ""),
        stream_usage=stream_usage,
        flush_on_sigterm=flush_on_sigterm,
        infer_prices=infer_prices,
        usage_token=token.strip() if token else None,
        usage_by_identity=usage_by_identity,
        http=http,
        max_label_values=_positive(max_label_values, "max_label_values") if max_label_values is not None
        else _positive(os.environ.get("TOKENTRACE_MAX_LABEL_VALUES") or 1000, "TOKENTRACE_MAX_LABEL_VALUES"),
        ledger_queue_size=_positive(os.environ.get("TOKENTRACE_LEDGER_QUEUE_SIZE") or 100_000,
                                    "TOKENTRACE_LEDGER_QUEUE_SIZE"),
        budget_unavailable=budget_unavailable,
        reservation_ttl_s=float(_positive(os.environ.get("TOKENTRACE_RESERVATION_TTL_S") or 60,
                                          "TOKENTRACE_RESERVATION_TTL_S")),
    )


def _overrides(source: Any) -> Mapping[tuple[str | None, str], ModelPrice]:
    if not source:
        return {}
    try:
        return parse_overrides(source)
    except PriceError as exc:
        raise ConfigError(str(exc)) from None


def _positive(value: Any, source: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ConfigError(f"{source} must be a positive integer, got {number}")
    return number
