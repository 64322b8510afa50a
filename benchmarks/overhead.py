"""Overhead of one instrumented call vs an uninstrumented one: the real openai client, a mock HTTP transport.

Everything on: spans to an in-memory exporter (batch span processor, as in production), OTel metrics to an
in-memory reader, Prometheus counters, the SQLite ledger.
Runs alternate (off, on, off, on, ...) so drift affects both; reports medians of per-call times.

    python benchmarks/overhead.py [--calls 2000] [--rounds 7] [--stream-chunks 1000]
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
from prometheus_client import CollectorRegistry

import tokentrace

sys.path.insert(0, str(Path(__file__).parent))
from payloads import COMPLETION, MESSAGES


def _stream_body(chunks: int) -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench"}
    lines = []
    for i in range(chunks):
        delta = {"content": f"tok{i} "} if i else {"role": "assistant", "content": ""}
        lines.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}], "usage": None})
    lines.append({**base, "choices": [], "usage": {"prompt_tokens": 42, "completion_tokens": chunks,
                                                  "total_tokens": 42 + chunks}})
    return b"".join(b"data: " + json.dumps(x).encode() + b"\n\n" for x in lines) + b"data: [DONE]\n\n"


def make_client(stream_chunks: int) -> openai.OpenAI:
    stream_body = _stream_body(stream_chunks)

    def handler(request: httpx2.Request) -> httpx2.Response:
        if b'"stream":true' in request.content.replace(b" ", b""):
            return httpx2.Response(200, content=stream_body, headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, content=COMPLETION, headers={"content-type": "application/json"})

    return openai.OpenAI(api_key="sk-bench", base_url="https://api.openai.com/v1", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


class Everything:
    """tokentrace with every sink on: spans (batch processor, in-memory exporter), OTel metrics, Prometheus, ledger."""

    def __init__(self, ledger: Path) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.exporter, max_queue_size=100_000,
                                                                   max_export_batch_size=4096))
        self.reader = InMemoryMetricReader()
        tokentrace.instrument(ledger=ledger, registry=CollectorRegistry(), tracer_provider=self.tracer_provider,
                              meter_provider=MeterProvider(metric_readers=[self.reader]))

    def finish(self) -> int:
        """Uninstrument; return the number of spans really exported."""
        tokentrace.flush()
        self.tracer_provider.force_flush()
        tokentrace.uninstrument()
        count = len(self.exporter.get_finished_spans())
        self.tracer_provider.shutdown()
        return count


def measure(label: str, fn: Callable[[], Any], calls: int, rounds: int, divide_by: int = 1) -> dict[str, float]:
    off: list[float] = []
    on: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):  # warm-up both ways (imports, price lookup, label children)
            fn()
        warm = Everything(Path(tmp) / "warm.db")
        for _ in range(3):
            fn()
        warm.finish()
        for index in range(rounds):
            off.append(per_call_us(fn, calls) / divide_by)
            everything = Everything(Path(tmp) / f"round{index}.db")
            on.append(per_call_us(fn, calls) / divide_by)
            assert everything.finish() == calls, "instrumented runs must really emit spans"
    overheads = [b - a for a, b in zip(off, on, strict=True)]
    return {
        "label": label,  # type: ignore[dict-item]
        "uninstrumented_us": statistics.median(off),
        "instrumented_us": statistics.median(on),
        "overhead_us": statistics.median(overheads),
        "overhead_min_us": min(overheads),
        "overhead_max_us": max(overheads),
    }


def sink_costs(calls: int = 20_000) -> list[tuple[str, float]]:
    """Per-call cost of the recorder alone and with each sink, without the SDK (so the split is visible)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from tokentrace._usage import RequestInfo, ResponseInfo, Usage
    from tokentrace.pricing import PriceTable
    from tokentrace.recorder import Recorder
    from tokentrace.sinks.ledger import LedgerSink
    from tokentrace.sinks.otel import OTelSink
    from tokentrace.sinks.prometheus import PrometheusSink

    request = RequestInfo("openai", "chat", "gpt-4o-mini", server_address="api.openai.com", server_port=443)
    response = ResponseInfo(Usage(input=42, output=11), "gpt-4o-mini-2024-07-18", "chatcmpl-1", ("stop",))
    prices = PriceTable()
    prices.warm()

    def tracer() -> TracerProvider:
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=200_000))
        return provider

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, sinks in (
            ("recorder, pricing, record (no sink)", []),
            ("+ Prometheus", [PrometheusSink(CollectorRegistry(), "", ("feature",))]),
            ("+ ledger (calling thread only)", [LedgerSink(Path(tmp) / "l.db")]),
            ("+ OTel span (SDK, batch processor)", [OTelSink(tracer(), MeterProvider())]),
            ("+ OTel gen_ai.* histograms (SDK)",
             [OTelSink(None, MeterProvider(metric_readers=[InMemoryMetricReader()]))]),
        ):
            recorder = Recorder(prices, sinks)

            def one(recorder: Recorder = recorder) -> None:
                call = recorder.start(request)
                call.detach()
                call.stop(response)

            for _ in range(500):
                one()
            results.append((label, per_call_us(one, calls)))
    base = results[0][1]
    return [(label, cost if i == 0 else cost - base) for i, (label, cost) in enumerate(results)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--stream-chunks", type=int, default=1000)
    args = parser.parse_args()

    client = make_client(args.stream_chunks)
    chat = lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # noqa: E731
    stream = lambda: list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,  # noqa: E731
                                                         stream=True))
    results = [
        measure("openai chat, non-streaming (per call)", chat, args.calls, args.rounds),
        measure(f"openai chat stream, {args.stream_chunks} chunks (per chunk)", stream,
                max(args.calls // 200, 5), args.rounds, divide_by=args.stream_chunks),
    ]
    print(f"{'measurement':<46} {'uninstrumented':>15} {'instrumented':>13} {'overhead (median, min..max)':>30}")
    for r in results:
        spread = f"{r['overhead_us']:.2f} ({r['overhead_min_us']:.2f}..{r['overhead_max_us']:.2f}) us"
        print(f"{r['label']:<46} {r['uninstrumented_us']:>12.2f} us {r['instrumented_us']:>10.2f} us {spread:>30}")
    print("targets: <= 20 us per non-streaming call, <= 1 us per chunk (see benchmarks/chunks_and_startup.py for a"
          " precise per-chunk number), <= half the best peer (benchmarks/compare.py)")
    print()
    print("where the time goes, per call, without the SDK (recorder alone, then what each sink adds):")
    for label, cost in sink_costs():
        print(f"  {label:<40} {cost:7.2f} us")


if __name__ == "__main__":
    main()
