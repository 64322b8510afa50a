"""tokentrace: every LLM call made visible and affordable. ``tokentrace.instrument()`` at start-up is all it takes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._usage import TOKEN_TYPES, Usage, UsageRecord
from .config import ConfigError, env_flag
from .context import attributes

if TYPE_CHECKING:
    from ._instrumentor import Instrumentation

__version__ = "0.1.0"

__all__ = [
    "TOKEN_TYPES",
    "ConfigError",
    "Instrumentation",
    "Usage",
    "UsageRecord",
    "__version__",
    "attributes",
    "flush",
    "instrument",
    "uninstrument",
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
    tracer_provider: Any = None,
    meter_provider: Any = None,
    registry: Any = None,
) -> Instrumentation:
    """Patch the installed provider SDKs so every call is measured. Idempotent: a second call returns the same handle.

    Raises ConfigError (a ValueError) for arguments that cannot work; never raises for an absent SDK.
    """
    from . import _instrumentor, config

    existing = _instrumentor.current()
    if existing is not None:
        return existing
    if env_flag("TOKENTRACE_DISABLED"):
        return _instrumentor.instrument(None, disabled=True)  # type: ignore[arg-type]
    settings = config.resolve(
        providers, prices, ledger, budgets, metrics_port, metrics_addr, capture_content, metric_labels,
        namespace, stream_usage,
    )
    return _instrumentor.instrument(
        settings, tracer_provider=tracer_provider, meter_provider=meter_provider, registry=registry
    )


def uninstrument() -> None:
    """Restore every patched SDK method and stop serving metrics. Safe to call twice."""
    from . import _instrumentor

    _instrumentor.uninstrument()


def flush(timeout: float = 5.0) -> bool:
    """Drain buffered telemetry (ledger writer, exporters). True when everything was written in time."""
    from . import _instrumentor

    handle = _instrumentor.current()
    return handle.flush(timeout) if handle is not None else True


def __getattr__(name: str) -> Any:
    if name == "Instrumentation":
        from ._instrumentor import Instrumentation

        return Instrumentation
    if name == "testing":
        import importlib

        return importlib.import_module(".testing", __name__)
    raise AttributeError(f"module 'tokentrace' has no attribute {name!r}")
