"""One INFO line per finished call through the ``tokentrace.calls`` logger; never prompt or completion text.

Always installed and silent until the application lets INFO through for ``tokentrace.calls`` (Python's default
level is WARNING): a disabled logger costs one cached level check per call. The line's fields are also attached
as ``record.tokentrace`` (a dict) for structured log handlers.
"""

from __future__ import annotations

import logging
from typing import Any

from .._support.text import usd
from .._usage import UsageRecord
from . import Sink

CALL_LOGGER = "tokentrace.calls"
_logger = logging.getLogger(CALL_LOGGER)
_enabled_for = _logger.isEnabledFor
_INFO = logging.INFO
_UNSAFE = {c: " " for c in range(32)}  # control characters (newlines) would forge log lines


def _plain(value: str) -> str:
    return value.translate(_UNSAFE) or "-"


class CallLogSink(Sink):
    name = "calllog"

    def end(self, record: UsageRecord, state: Any) -> None:
        if not _enabled_for(_INFO):
            return
        usage = record.usage
        cost = "unpriced" if record.cost_usd is None else usd(record.cost_usd)
        fields = {
            "provider": record.provider, "model": record.model, "operation": record.operation,
            "status": record.status, "feature": record.feature, "input": usage.input,
            "cache_read": usage.cache_read, "cache_write": usage.cache_write, "output": usage.output,
            "reasoning": usage.reasoning, "total_tokens": usage.total, "cost_usd": record.cost_usd,
            "latency_ms": round(record.latency_s * 1000.0, 3), "stream": record.stream,
            "usage_reported": record.usage_reported,
        }
        _logger.info(
            "llm call provider=%s model=%s operation=%s status=%s feature=%s tokens input=%d cache_read=%d "
            "cache_write=%d output=%d reasoning=%d total=%d cost=%s latency=%.1fms%s",
            _plain(record.provider), _plain(record.model), record.operation, record.status, _plain(record.feature),
            usage.input, usage.cache_read, usage.cache_write, usage.output, usage.reasoning, usage.total, cost,
            record.latency_s * 1000.0, "" if record.usage_reported else " usage=not-reported",
            extra={"tokentrace": fields},
        )
