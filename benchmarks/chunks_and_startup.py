"""Per-chunk cost of the stream proxy, and the time of `import tokentrace` + `instrument()`.

    python benchmarks/chunks_and_startup.py [--chunks 200000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def per_chunk_ns(chunks: int) -> tuple[float, float]:
    """Median ns per chunk: plain iteration over SDK chunk objects vs the same through tokentrace's proxy."""
    from openai.types.chat import ChatCompletionChunk

    from tokentrace._usage import RequestInfo
    from tokentrace.instrumentation.wrappers import SyncStreamProxy, _StreamState
    from tokentrace.pricing import PriceTable
    from tokentrace.providers import Prepared
    from tokentrace.providers.openai import ChatAccumulator
    from tokentrace.recorder import Recorder

    chunk = ChatCompletionChunk.model_validate({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}]})
    items = [chunk] * chunks
    recorder = Recorder(PriceTable({}), [])
    prepared = Prepared(RequestInfo("openai", "chat", "gpt-4o-mini", stream=True), {}, True)
    plain, proxied = [], []
    for _ in range(7):
        start = time.perf_counter()
        for _item in iter(items):
            pass
        plain.append((time.perf_counter() - start) / chunks * 1e9)
        proxy = SyncStreamProxy(iter(items), _StreamState(recorder.start(prepared.request), ChatAccumulator(prepared)))
        start = time.perf_counter()
        for _item in proxy:
            pass
        proxied.append((time.perf_counter() - start) / chunks * 1e9)
    return statistics.median(plain), statistics.median(proxied)


def startup_ms() -> tuple[float, float]:
    code = ("import time; t0 = time.perf_counter(); import tokentrace; t1 = time.perf_counter(); "
            "tokentrace.instrument(ledger=False); t2 = time.perf_counter(); "
            "print((t1 - t0) * 1000, (t2 - t1) * 1000)")
    runs = [tuple(map(float, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                            check=True).stdout.split())) for _ in range(5)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200_000)
    args = parser.parse_args()
    plain, proxied = per_chunk_ns(args.chunks)
    import_ms, instrument_ms = startup_ms()
    print(json.dumps({"chunk_plain_ns": round(plain, 1), "chunk_proxied_ns": round(proxied, 1),
                      "chunk_overhead_ns": round(proxied - plain, 1), "import_ms": round(import_ms, 1),
                      "instrument_ms": round(instrument_ms, 1)}))
    print(f"per chunk: {proxied - plain:.0f} ns added ({plain:.0f} ns plain iteration, {proxied:.0f} ns through "
          f"the proxy with usage accounting; target 1,000 ns)")
    print(f"import tokentrace: {import_ms:.1f} ms; instrument() with openai installed: {instrument_ms:.1f} ms")


if __name__ == "__main__":
    main()
