"""``opentelemetry-instrument`` support: the entry point class that starts tokentrace with zero code."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

logger = logging.getLogger("tokentrace")


def warn_if_no_sdk() -> None:
    """Say so when ``opentelemetry-instrument`` set up no OpenTelemetry SDK: spans would go nowhere, silently."""
    from opentelemetry import trace

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        logger.warning(
            "opentelemetry-instrument configured no OpenTelemetry SDK, so spans and gen_ai.* metrics "
            "are dropped (Prometheus metrics and the ledger still work). Install opentelemetry-distro "
            "(pip install 'tokentrace[otlp]') and pick exporters, e.g. OTEL_TRACES_EXPORTER=otlp or console.")


class TokentraceInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Calls ``tokentrace.instrument()`` with those keyword arguments it takes (env vars configure the rest)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # any installed provider SDK is patched; none is required

    def _instrument(self, **kwargs: Any) -> None:
        import tokentrace

        allowed = inspect.signature(tokentrace.instrument).parameters
        tokentrace.instrument(**{k: v for k, v in kwargs.items() if k in allowed})
        if kwargs.get("tracer_provider") is None:
            warn_if_no_sdk()

    def _uninstrument(self, **kwargs: Any) -> None:
        import tokentrace

        tokentrace.uninstrument()
