"""``opentelemetry-instrument`` support: the entry point class that starts tokentrace with zero code."""

from __future__ import annotations

import inspect
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]


class TokentraceInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Calls ``tokentrace.instrument()`` with those keyword arguments it takes (env vars configure the rest)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # any installed provider SDK is patched; none is required

    def _instrument(self, **kwargs: Any) -> None:
        import tokentrace

        allowed = inspect.signature(tokentrace.instrument).parameters
        tokentrace.instrument(**{k: v for k, v in kwargs.items() if k in allowed})

    def _uninstrument(self, **kwargs: Any) -> None:
        import tokentrace

        tokentrace.uninstrument()
