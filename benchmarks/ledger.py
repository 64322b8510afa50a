"""Ledger throughput (rows/s written by the background writer) and its cost on the calling thread (per call).

    python benchmarks/ledger.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from types import MappingProxyType

from tokentrace._usage import Usage, UsageRecord
from tokentrace.sinks.ledger import LedgerSink


def make_record(i: int) -> UsageRecord:
    return UsageRecord(
        ts_utc=time.time(), provider="openai", model="gpt-4o-mini-2024-07-18", request_model="gpt-4o-mini",
        operation="chat", usage=Usage(input=420, cache_read=128, output=96), cost_usd=0.00012, price_source="bench",
        latency_s=0.61, status="ok", response_id=f"chatcmpl-{i}",
        attributes=MappingProxyType({"feature": "summarize", "session_id": f"s-{i % 100}", "user_id": "u-1"}),
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    records = [make_record(i) for i in range(args.rows)]
    with tempfile.TemporaryDirectory() as tmp:
        sink = LedgerSink(Path(tmp) / "usage.db", queue_size=args.rows + 1, interval_s=0.05)
        per_call = []
        chunk = 10_000
        start = time.perf_counter()
        for offset in range(0, args.rows, chunk):
            t0 = time.perf_counter()
            for record in records[offset:offset + chunk]:
                sink.end(record, None)
            per_call.append((time.perf_counter() - t0) / chunk * 1e9)
        enqueued = time.perf_counter()
        assert sink.flush(300)
        done = time.perf_counter()
        sink.close()
        assert sink.written == args.rows
    print(f"rows: {args.rows:,}")
    print(f"calling thread, per call: median {statistics.median(per_call):.0f} ns "
          f"(min {min(per_call):.0f}, max {max(per_call):.0f}) over {len(per_call)} chunks of {chunk:,}")
    print(f"writer throughput: {args.rows / (done - start):,.0f} rows/s end to end "
          f"({done - enqueued:.2f} s to drain after the last enqueue)")


if __name__ == "__main__":
    main()
