"""The Anthropic Messages wire format: JSON, and the full SSE event sequence (ping and error events included)."""

from __future__ import annotations

import itertools
import json
from typing import Any, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import billing, rules, wire

_ids = itertools.count(1)


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}.get(status, "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def usage_body(u: rules.SimUsage, output_tokens: int, headers: Any = None,
               request_body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The usage object; headers add what newer API versions send: ``x-sim-thinking-details: 1``
    (``output_tokens_details.thinking_tokens``), ``x-sim-web-searches: N`` (``server_tool_use``) and
    ``x-sim-compaction: INPUT,CACHE_WRITE,OUTPUT`` (a compaction pass before this one, in ``iterations``; the
    top-level counts stay those of the last pass, as the API's do)."""
    body: dict[str, Any] = {
        "input_tokens": u.prompt - u.cached - u.cache_write,
        "cache_read_input_tokens": u.cached,
        "cache_creation_input_tokens": u.cache_write,
        "cache_creation": {"ephemeral_5m_input_tokens": u.cache_write - u.cache_write_1h,
                           "ephemeral_1h_input_tokens": u.cache_write_1h},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    headers = headers or {}
    if request_body is not None:
        body["service_tier"] = rules.served_tier(request_body.get("service_tier"), headers, "standard")
        if request_body.get("speed"):
            body["speed"] = str(request_body["speed"])
        if request_body.get("inference_geo"):
            body["inference_geo"] = str(request_body["inference_geo"])
    if headers.get("x-sim-thinking-details"):
        body["output_tokens_details"] = {"thinking_tokens": u.reasoning}
    if headers.get("x-sim-web-searches"):
        body["server_tool_use"] = {"web_search_requests": int(headers["x-sim-web-searches"]), "web_fetch_requests": 0}
    if headers.get("x-sim-compaction"):
        inputs, written, outputs = (int(n) for n in headers["x-sim-compaction"].split(","))
        last = {k: body[k] for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                                     "output_tokens")}
        body["iterations"] = [
            {"type": "compaction", "input_tokens": inputs, "cache_read_input_tokens": 0,
             "cache_creation_input_tokens": written, "output_tokens": outputs},
            {"type": "message", **last},
        ]
    return body


async def messages(request: Request) -> Response:
    body, behave, failure = await wire.prologue(request, _error_body)
    if failure is not None:
        return failure
    usage = rules.usage_for(body, request.headers)
    model = str(body.get("model") or request.url.path.rsplit("/", 1)[-1].partition(":")[0])  # Vertex: in the path
    if request.url.path.endswith("/v1/messages"):  # Anthropic's own API (not Vertex): in its usage reports
        billing.bill(request, "anthropic", "messages", model, usage.prompt, usage.cached, usage.cache_write,
                     usage.visible_output + usage.reasoning)
    ident = f"msg_sim{next(_ids)}"
    fmt = (body.get("output_config") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":  # structured output (messages.parse)
        text = json.dumps(rules.sample_json(fmt.get("schema", {})))
    else:
        text = " ".join(f"tok{i}" for i in range(usage.visible_output))
    thinking = " ".join(f"think{i}" for i in range(usage.reasoning))
    output_tokens = usage.visible_output + usage.reasoning  # Anthropic counts thinking inside output_tokens
    stop = "max_tokens" if body.get("max_tokens") == usage.visible_output + usage.reasoning else "end_turn"
    content: list[dict[str, Any]] = []
    if usage.reasoning:
        content.append({"type": "thinking", "thinking": thinking, "signature": "c2ln"})
    content.append({"type": "text", "text": text})
    final_usage = None if behave.error == "no-usage" else usage_body(usage, output_tokens, request.headers, body)
    message = {"id": ident, "type": "message", "role": "assistant", "model": model, "content": content,
               "stop_reason": stop, "stop_sequence": None, "usage": final_usage}
    if not body.get("stream"):
        return JSONResponse(message)

    start_usage = None if final_usage is None else {  # a placeholder output count, and no iterations yet, as the API
        k: v for k, v in {**final_usage, "output_tokens": 1}.items() if k not in ("iterations", "server_tool_use",
                                                                                  "output_tokens_details")}
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                                 "usage": start_usage}}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(content):
        if block["type"] == "thinking":
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "thinking", "thinking": "",
                                                                     "signature": ""}}))
            for piece in rules.output_pieces(thinking, usage.reasoning):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "thinking_delta", "thinking": piece}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": "signature_delta", "signature": "c2ln"}}))
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}}))
            for piece in rules.output_pieces(text, usage.visible_output):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "text_delta", "text": piece}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    if behave.error == "stream-error":  # an error event mid-stream, as the API sends when overloaded
        events.append(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    delta_usage = {"output_tokens": output_tokens}
    if final_usage is not None:
        delta_usage.update({k: final_usage[k] for k in ("input_tokens", "cache_read_input_tokens",
                                                         "cache_creation_input_tokens", "output_tokens_details",
                                                         "server_tool_use", "iterations") if k in final_usage})
    events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": delta_usage if final_usage is not None else {"output_tokens": 0}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return wire.sse(events, behave, done_marker=False)


HANDLERS = {"/v1/messages": messages, ":rawPredict": messages, ":streamRawPredict": messages}
"""The Messages API, and Claude on Vertex AI (``.../publishers/anthropic/models/MODEL:rawPredict``)."""

__all__ = ["HANDLERS"]
