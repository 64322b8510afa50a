"""Overhead of one instrumentation (tokentrace or a peer) on the real openai client over a mock transport.

Run inside a venv that has the instrumentation installed; prints one JSON line. `benchmarks/compare.py` builds
the venvs and runs every instrumentation in the same session. Every instrumentation gets the same backends:
spans to an in-memory exporter through a batch span processor, metrics to an in-memory reader; tokentrace
additionally feeds Prometheus and its SQLite ledger.

    python benchmarks/peer_overhead.py --instrumentation openai-v2 [--calls 1000] [--rounds 7]

``--instrumentation`` is a peer's name, ``tokentrace`` (everything on), ``tokentrace:prometheus`` or
``tokentrace:prometheus+ledger`` (no OpenTelemetry SDK providers: the API's no-op ones).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).parent))
from payloads import COMPLETION, MESSAGES


def client() -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=COMPLETION, headers={"content-type": "application/json"})

    return openai.OpenAI(api_key="sk-bench", base_url="https://api.openai.com/v1", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


class Instrumentation:
    def __init__(self, name: str, ledger_dir: str) -> None:
        self.name = name
        self.ledger_dir = ledger_dir
        self.rounds = 0

    def on(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.exporter, max_queue_size=100_000,
                                                                   max_export_batch_size=4096))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        kwargs: dict[str, Any] = {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}
        if self.name.startswith("tokentrace"):
            from prometheus_client import CollectorRegistry

            import tokentrace

            self.rounds += 1
            ledger: Path | bool = Path(self.ledger_dir) / f"{self.rounds}.db"
            if self.name != "tokentrace":  # a configuration without the OpenTelemetry SDK: the API's no-op providers
                kwargs = {}
                ledger = ledger if self.name == "tokentrace:prometheus+ledger" else False
            tokentrace.instrument(ledger=ledger, registry=CollectorRegistry(), **kwargs)
        elif self.name == "openai-v2":
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

            self.instrumentor = OpenAIInstrumentor()
            self.instrumentor.instrument(**kwargs)
        elif self.name == "openllmetry":
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor as LLMetry

            self.instrumentor = LLMetry()
            self.instrumentor.instrument(**kwargs)
        else:  # openlit is left out: it installs its own global providers and cannot be uninstrumented
            raise SystemExit(f"unknown instrumentation {self.name!r}")

    def off(self) -> int:
        """Uninstrument; return how many spans were really exported."""
        if self.name.startswith("tokentrace"):
            import tokentrace

            tokentrace.flush()
            tokentrace.uninstrument()
        else:
            self.instrumentor.uninstrument()
        self.tracer_provider.force_flush()
        spans = len(self.exporter.get_finished_spans())
        self.tracer_provider.shutdown()
        return spans


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instrumentation", required=True)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    c = client()
    chat = lambda: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        inst = Instrumentation(args.instrumentation, tmp)
        for _ in range(20):
            chat()
        inst.on()
        for _ in range(20):
            chat()
        inst.off()
        off: list[float] = []
        on: list[float] = []
        spans: list[int] = []
        for _ in range(args.rounds):
            off.append(per_call_us(chat, args.calls))
            inst.on()
            on.append(per_call_us(chat, args.calls))
            spans.append(inst.off())
    overheads = [b - a for a, b in zip(off, on, strict=True)]
    print(json.dumps({
        "instrumentation": args.instrumentation, "openai": openai.__version__,
        "uninstrumented_us": statistics.median(off), "instrumented_us": statistics.median(on),
        "overhead_us": statistics.median(overheads), "overhead_min_us": min(overheads),
        "overhead_max_us": max(overheads), "spans_per_round": spans, "calls_per_round": args.calls,
    }))


if __name__ == "__main__":
    main()
