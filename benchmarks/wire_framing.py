"""The wire layer's stream readers on hostile shapes (issue 38, finding 5): time and peak memory of feeding, as a
caller reads it, a long SSE line in small pieces, a long run of ``data:`` lines with no blank line, and a Bedrock
event-stream body of many small frames read whole. Linear in the bytes is the target.

    python benchmarks/wire_framing.py [--line-mb 3] [--event-mb 50] [--frames 40000]

Prints one markdown table.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable


def measure(work: Callable[[], None]) -> tuple[float, float]:
    """(seconds, untraced; peak MiB, in a second run under tracemalloc)."""
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        work()
        return seconds, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    from tokentrace.wire import framing

    parser = argparse.ArgumentParser()
    parser.add_argument("--line-mb", type=int, default=3)
    parser.add_argument("--event-mb", type=int, default=50)
    parser.add_argument("--frames", type=int, default=40_000)
    args = parser.parse_args()

    def long_line() -> None:
        reader = framing.SSE()
        piece = b"x" * 64
        reader.feed(b"data: ")
        for _ in range(args.line_mb * 1024 * 1024 // 64):
            reader.feed(piece)
        reader.feed(b"\n\n")

    def endless_event() -> None:
        reader = framing.SSE()
        piece = b"data: " + b"x" * 4090 + b"\n"
        for _ in range(args.event_mb * 1024 * 1024 // 4096):
            reader.feed(piece)

    from tokentrace.simulator.bedrock_api import event_message

    body = b"".join(event_message("contentBlockDelta", {"delta": {"text": f"t{i}"}}) for i in range(args.frames))

    def event_stream() -> None:
        framing.EventStream().feed(body)

    print("| shape | seconds | peak MiB |\n|---|---:|---:|")
    for name, work in ((f"one {args.line_mb} MB SSE line in 64-byte pieces", long_line),
                       (f"{args.event_mb} MB of data: lines, no blank line", endless_event),
                       (f"Bedrock body of {args.frames:,} frames read whole", event_stream)):
        seconds, peak = measure(work)
        print(f"| {name} | {seconds:.2f} | {peak:.1f} |")


if __name__ == "__main__":
    main()
