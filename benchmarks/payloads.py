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


def _sse(events: list[tuple[str | None, dict[str, object]]]) -> bytes:
    out = []
    for name, data in events:
        out.append((f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n")
    return "".join(out).encode()


def openai_stream(chunks: int) -> bytes:
    """A chat completion stream: a role chunk, ``chunks`` content chunks, a finish chunk, then the usage chunk."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench"}
    deltas = [({"role": "assistant", "content": ""}, None)] + [({"content": f"tok{i} "}, None) for i in range(chunks)]
    deltas.append(({}, "stop"))
    lines = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": f}], "usage": None} for d, f in deltas]
    lines.append({**base, "choices": [], "usage": {"prompt_tokens": 42, "completion_tokens": chunks,
                                                  "total_tokens": 42 + chunks}})
    return _sse([(None, x) for x in lines]) + b"data: [DONE]\n\n"


def anthropic_message() -> bytes:
    return json.dumps({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "A short, realistic answer of a few words."}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 42, "output_tokens": 11, "cache_read_input_tokens": 0,
                  "cache_creation_input_tokens": 0},
    }).encode()


def anthropic_stream(chunks: int) -> bytes:
    """A Messages stream: message_start, one text block of ``chunks`` deltas, message_delta (usage), message_stop."""
    start = {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 42, "output_tokens": 1, "cache_read_input_tokens": 0,
                  "cache_creation_input_tokens": 0}}}
    events: list[tuple[str | None, dict[str, object]]] = [("message_start", start), (
        "content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text",
                                                                                             "text": ""}})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": f"tok{i} "}}) for i in range(chunks)]
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                      "stop_sequence": None},
                                  "usage": {"output_tokens": chunks}}),
               ("message_stop", {"type": "message_stop"})]
    return _sse(events)
