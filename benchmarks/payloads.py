"""Realistic response bodies shared by the benchmarks (stdlib only, so any venv can import it)."""

from __future__ import annotations

import json

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "A short, realistic answer of a few words.",
                             "refusal": None}}],
    "usage": {"prompt_tokens": 42, "completion_tokens": 11, "total_tokens": 53,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "system_fingerprint": "fp_bench",
}).encode()

MESSAGES = [{"role": "user", "content": "Summarize the quarterly report in three bullet points."}]
