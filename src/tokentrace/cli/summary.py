"""Aggregates UsageRecords into rows for terminal tables (used by the demo before the ledger exists)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Iterable

from .._usage import TOKEN_TYPES, UsageRecord


@dataclass
class Row:
    key: tuple[str, ...]
    calls: int = 0
    errors: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_TYPES, 0))
    cost_usd: float = 0.0
    unpriced: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def p50_latency_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else 0.0


def summarize(records: Iterable[UsageRecord], by: tuple[str, ...] = ("provider", "model")) -> list[Row]:
    rows: dict[tuple[str, ...], Row] = {}
    for record in records:
        key = tuple(str(getattr(record, k, None) or record.attributes.get(k, "")) for k in by)
        row = rows.setdefault(key, Row(key))
        row.calls += 1
        row.errors += record.status == "error"
        for name, value in record.usage.by_type():
            row.tokens[name] += value
        if record.cost_usd is None:
            row.unpriced += record.usage_reported and record.status == "ok"
        else:
            row.cost_usd += record.cost_usd
        row.latencies.append(record.latency_s)
    return sorted(rows.values(), key=lambda r: -r.cost_usd)
