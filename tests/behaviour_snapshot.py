"""What the demo workload leaves behind (ledger rows, /metrics samples, finished spans), minus what varies by run.

Used by ``test_behaviour_snapshot.py`` to prove that refactors change no observable behaviour:
``python tests/behaviour_snapshot.py > tests/data/demo_snapshot.json`` writes the reference.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# ledger columns, span attributes and metric samples that differ between runs of the same workload
VOLATILE_COLUMNS = {"id", "ts_utc", "latency_ms", "ttft_ms", "trace_id", "response_id"}
VOLATILE_SPAN_ATTRIBUTES = {"gen_ai.response.id", "tokentrace.time_to_first_token_s",
                            "gen_ai.response.time_to_first_chunk", "server.port"}
TIMED_METRICS = ("llm_latency_seconds", "llm_time_to_first_token_seconds")
_TABLE_VERSION = re.compile(r"genai-prices \d+\.\d+\.\d+")


def _unversioned(value: Any) -> Any:
    """A price source without the installed genai-prices release (which one CI installs is not this test's
    business; its prices are)."""
    return _TABLE_VERSION.sub("genai-prices X", value) if isinstance(value, str) else value


def _metrics(registry: Any) -> list[list[Any]]:
    samples = []
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            timed = sample.name.startswith(TIMED_METRICS)
            if timed and not sample.name.endswith("_count"):
                continue  # bucket placement and sums depend on the clock; counts do not
            value = round(sample.value, 12)
            samples.append([sample.name, sorted(sample.labels.items()), value])
    return sorted(samples, key=json.dumps)


def _spans(exporter: Any) -> list[dict[str, Any]]:
    spans = []
    for span in exporter.get_finished_spans():
        attributes = {k: (list(v) if isinstance(v, tuple) else _unversioned(v))
                      for k, v in (span.attributes or {}).items() if k not in VOLATILE_SPAN_ATTRIBUTES}
        spans.append({"name": span.name, "kind": str(span.kind), "status": str(span.status.status_code),
                      "attributes": dict(sorted(attributes.items()))})
    return sorted(spans, key=json.dumps)


def _ledger(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        rows = [{k: row[k] for k in row.keys() if k not in VOLATILE_COLUMNS}  # noqa: SIM118
                for row in conn.execute("SELECT * FROM llm_usage ORDER BY id")]
    finally:
        conn.close()
    for row in rows:
        row["price_source"] = _unversioned(row["price_source"])
        if row["cost_usd"] is not None:
            row["cost_usd"] = round(row["cost_usd"], 15)
    return rows


def snapshot(calls: int = 32) -> dict[str, Any]:
    """Run the demo's scenarios ``calls`` times in order through the real SDKs and describe what was recorded."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import CollectorRegistry

    import tokentrace
    from tokentrace import pricing
    from tokentrace._support import errors as _errors
    from tokentrace.cli.demo import DEMO_BUDGETS, run_workload
    from tokentrace.simulator import Simulator

    tokentrace.uninstrument()
    # DeepSeek's price depends on the time of day (off-peak hours): price every call at 18:00 UTC today (off-peak)
    pinned = (int(time.time()) // 86400) * 86400 + 18 * 3600
    real_clock, pricing.clock = pricing.clock, lambda: pinned
    _errors.reset()  # internal error counts are process-wide: start from none, as a fresh process would
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "usage.db"
        tokentrace.instrument(ledger=ledger, budgets=str(DEMO_BUDGETS), registry=registry,
                              tracer_provider=tracer_provider)
        try:
            with Simulator(latency_ms=0, chunk_delay_ms=0) as sim:
                run_workload(sim.port, calls, simulator=sim)
            tokentrace.flush()
        finally:
            tokentrace.uninstrument()
            pricing.clock = real_clock
        return {"ledger": _ledger(ledger), "metrics": _metrics(registry), "spans": _spans(exporter)}


if __name__ == "__main__":
    json.dump(snapshot(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
