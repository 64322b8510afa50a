"""What the realtime hook adds per WebSocket frame that is not a usage event, beside the unhooked client, in one run.

    python benchmarks/realtime_frames.py [--frames 200000] [--rounds 15]

A connection stand-in whose ``recv`` returns recorded-shape frames at once (an audio delta of 1,360 bytes, a text
delta, a transcript delta) is timed with its own ``recv`` and with the one ``websockets_hook`` installs on a
realtime connection, in alternating rounds; the figure is the median difference per frame. ``response.done`` frames
(one per response: parsed, priced, recorded) are left out: they are calls, not frames.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

FRAMES = [
    json.dumps({"type": "response.output_audio.delta", "event_id": "event_123", "response_id": "resp_1",
                "item_id": "item_1", "output_index": 0, "content_index": 0,
                "delta": base64.b64encode(b"\1" * 960).decode()}),
    json.dumps({"type": "response.output_text.delta", "event_id": "event_124", "response_id": "resp_1",
                "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": "Hello"}),
    json.dumps({"type": "response.output_audio_transcript.delta", "event_id": "event_125", "response_id": "resp_1",
                "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": " there"}),
]


class Connection:
    def __init__(self) -> None:
        self.i = 0

    def recv(self) -> str:
        self.i += 1
        return FRAMES[self.i % 3]

    def send(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


def per_frame_ns(recv: object, frames: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(frames):
        recv()  # type: ignore[operator]
    return (time.perf_counter_ns() - start) / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    from tokentrace.wire import realtime, websockets_hook

    plain, hooked = Connection(), Connection()
    websockets_hook._watch_sync(hooked, realtime.Session("openai", "gpt-realtime", "api.openai.com", 443))
    added = []
    for _ in range(args.rounds):
        base = per_frame_ns(plain.recv, args.frames)
        added.append(per_frame_ns(hooked.recv, args.frames) - base)
    print(f"{time.strftime('%Y-%m-%d')}: per frame that is not a usage event, hooked minus unhooked recv: median "
          f"{statistics.median(added) / 1000:.3f} us (q1..q3 {statistics.quantiles(added, n=4)[0] / 1000:.3f}.."
          f"{statistics.quantiles(added, n=4)[2] / 1000:.3f} us), {args.rounds} rounds of {args.frames:,} frames "
          f"(audio, text and transcript deltas); target <= 1 us")


if __name__ == "__main__":
    main()
