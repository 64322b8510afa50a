"""Cohere's API v2 wire format: ``/v2/chat`` as JSON and as SSE events, and ``/v2/embed``.

``usage.billed_units`` holds what is billed; ``usage.tokens`` also counts the prompt template the model saw
(the simulator adds ``TEMPLATE_TOKENS``), so a reader that takes ``tokens`` for the bill is caught.
"""

from __future__ import annotations

import itertools
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import rules, wire

TEMPLATE_TOKENS = 21
_ids = itertools.count(1)


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"message": message}


def _usage(prompt: int, output: int) -> dict[str, Any]:
    return {"billed_units": {"input_tokens": prompt, "output_tokens": output},
            "tokens": {"input_tokens": prompt + TEMPLATE_TOKENS, "output_tokens": output}}


async def chat(request: Request) -> Response:
    body, behave, failure = await wire.prologue(request, _error_body)
    if failure is not None:
        return failure
    usage = rules.usage_for(body, request.headers)
    ident = f"cohere-sim-{next(_ids)}"
    text = " ".join(f"tok{i}" for i in range(usage.visible_output))
    finish = "MAX_TOKENS" if body.get("max_tokens") == usage.visible_output else "COMPLETE"
    usage_body = None if behave.error == "no-usage" else _usage(usage.prompt, usage.visible_output)
    if not body.get("stream"):
        return JSONResponse({"id": ident, "finish_reason": finish, "usage": usage_body,
                             "message": {"role": "assistant", "content": [{"type": "text", "text": text}]}})
    events: list[tuple[str | None, Any]] = [
        ("message-start", {"type": "message-start", "id": ident,
                           "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "",
                                                 "tool_calls": [], "citations": []}}}),
        ("content-start", {"type": "content-start", "index": 0,
                           "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
    ]
    for piece in rules.output_pieces(text, usage.visible_output):
        events.append(("content-delta", {"type": "content-delta", "index": 0,
                                         "delta": {"message": {"content": {"text": piece}}}}))
    events.append(("content-end", {"type": "content-end", "index": 0}))
    end: dict[str, Any] = {"finish_reason": finish}
    if usage_body is not None:
        end["usage"] = usage_body
    events.append(("message-end", {"type": "message-end", "delta": end}))
    return wire.sse(events, behave, done_marker=False)


def _embed_answer(body: dict[str, Any], tokens: int | None, vector: list[float]) -> dict[str, Any]:
    texts = body.get("texts") or [""]
    meta: dict[str, Any] = {"api_version": {"version": "2"}}
    if tokens is not None:
        meta["billed_units"] = {"input_tokens": tokens}
    return {"id": f"cohere-emb-{next(_ids)}", "response_type": "embeddings_by_type", "texts": texts,
            "embeddings": {"float": [vector for _ in texts]}, "meta": meta}


embed = wire.embeddings_endpoint(_error_body, _embed_answer)


HANDLERS = {"/v2/chat": chat, "/v2/embed": embed}
