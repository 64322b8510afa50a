"""RSS growth over many calls with every sink on (OTel spans to a dropping exporter, OTel metrics, Prometheus,
the ledger), at the recorder level so a million calls take a minute, not an hour.

    python benchmarks/memory.py [--calls 1000000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

import tokentrace
from tokentrace._usage import RequestInfo, ResponseInfo, Usage


class CountingExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    args = parser.parse_args()
    exporter = CountingExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=20_000))
    with tempfile.TemporaryDirectory() as tmp:
        handle = tokentrace.instrument(ledger=Path(tmp) / "usage.db", registry=CollectorRegistry(),
                                       prices={f"model-{i}": {"input": 1.0, "output": 2.0} for i in range(50)},
                                       tracer_provider=tracer_provider,
                                       meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))
        recorder = handle.recorder
        models = [f"model-{i}" for i in range(50)]  # realistic: a few dozen models and features
        features = [f"feature-{i}" for i in range(20)]

        def calls(count: int, offset: int = 0) -> None:
            for i in range(offset, offset + count):
                with tokentrace.attributes(feature=features[i % 20], session_id=f"s-{i}"):
                    call = recorder.start(RequestInfo("openai", "chat", models[i % 50]))
                    call.detach()
                    call.stop(ResponseInfo(Usage(input=40, cache_read=8, output=12), models[i % 50], f"id-{i}"))
                if i % 20_000 == 0:
                    tokentrace.flush()

        calls(20_000)  # warm-up: label children, price lookups, caches
        tokentrace.flush()
        before = rss_mb()
        start = time.perf_counter()
        calls(args.calls, offset=20_000)
        tokentrace.flush()
        elapsed = time.perf_counter() - start
        after = rss_mb()
        tokentrace.uninstrument()
    print(f"{args.calls:,} calls in {elapsed:.0f} s; RSS {before:.1f} MB -> {after:.1f} MB "
          f"(growth {after - before:.1f} MB; target under 20 MB); spans exported: {exporter.count:,}")


if __name__ == "__main__":
    main()
