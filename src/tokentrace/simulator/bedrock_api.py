"""AWS Bedrock runtime's wire format: Converse (JSON), ConverseStream and InvokeModelWithResponseStream (AWS
event-stream binary framing: prelude, CRC32s, typed headers) and InvokeModel (the model family's own body, with
the ``x-amzn-bedrock-*-token-count`` headers).

Converse usage follows Bedrock with Anthropic models: ``inputTokens`` excludes cache reads and writes and
``totalTokens`` counts everything. Invoke bodies: Anthropic models (``anthropic.*`` ids, any region prefix) answer
in the Messages format, Amazon Nova in its own, every other family in Meta Llama's (token counts in the headers).
"""

from __future__ import annotations

import base64
import itertools
import json
import struct
import zlib
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import anthropic_api, rules, wire

_ids = itertools.count(1)
_ERRORS = {429: "ThrottlingException", 500: "InternalServerException", 400: "ValidationException"}
EVENT_STREAM = "application/vnd.amazon.eventstream"


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"__type": _ERRORS.get(status, "ValidationException"), "message": message}


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value


def event_message(event_type: str, payload: Any) -> bytes:
    """One AWS event-stream message: total and header lengths, prelude CRC32, headers, JSON payload, CRC32."""
    headers = b"".join(_header(k, v) for k, v in ((":event-type", event_type),
                                                   (":content-type", "application/json"),
                                                   (":message-type", "event")))
    body = json.dumps(payload, separators=(",", ":")).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def _model_id(request: Request) -> str:
    parts = request.url.path.split("/model/", 1)[-1].rsplit("/", 1)
    return unquote(parts[0])


def _family(model_id: str) -> str:
    for family in ("anthropic", "amazon.nova", "meta"):
        if f"{family}." in model_id or model_id.startswith(family):
            return family
    return "other"


def _text(visible: int) -> str:
    return " ".join(f"tok{i}" for i in range(visible))


def converse_usage(u: rules.SimUsage) -> dict[str, Any]:
    uncached = u.prompt - u.cached - u.cache_write
    usage: dict[str, Any] = {"inputTokens": uncached, "outputTokens": u.visible_output,
                             "totalTokens": u.prompt + u.visible_output}
    if u.cached or u.cache_write:
        usage.update(cacheReadInputTokens=u.cached, cacheWriteInputTokens=u.cache_write)
    if u.cache_write:
        usage["cacheDetails"] = [d for d in ({"ttl": "1h", "inputTokens": u.cache_write_1h},
                                             {"ttl": "5m", "inputTokens": u.cache_write - u.cache_write_1h})
                                 if d["inputTokens"]]
    return usage


async def _converse(request: Request, stream: bool) -> Response:
    body, behave, failure = await wire.prologue(request, _error_body, stream)
    if failure is not None:
        return failure
    limit = (body.get("inferenceConfig") or {}).get("maxTokens")
    usage = rules.usage_for({**body, "max_tokens": limit} if isinstance(limit, int) else body, request.headers)
    text = _text(usage.visible_output)
    stop = "max_tokens" if limit == usage.visible_output else "end_turn"
    usage_body = None if behave.error == "no-usage" else converse_usage(usage)
    requested = (body.get("serviceTier") or {}).get("type")
    tier = {"serviceTier": {"type": rules.served_tier(requested, request.headers, "default")}} \
        if requested or request.headers.get("x-sim-served-tier") else {}
    if not stream:
        answer: dict[str, Any] = {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                                  "stopReason": stop, "metrics": {"latencyMs": 12}, **tier}
        if usage_body is not None:
            answer["usage"] = usage_body
        return JSONResponse(answer, headers=_request_id())
    frames = [event_message("messageStart", {"role": "assistant"})]
    frames += [event_message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
               for piece in rules.output_pieces(text, usage.visible_output)]
    frames.append(event_message("contentBlockStop", {"contentBlockIndex": 0}))
    frames.append(event_message("messageStop", {"stopReason": stop}))
    if usage_body is not None:
        frames.append(event_message("metadata", {"usage": usage_body, "metrics": {"latencyMs": 12}, **tier}))
    return wire.streamed(frames, behave, EVENT_STREAM, headers=_request_id())


def _request_id() -> dict[str, str]:
    return {"x-amzn-requestid": f"sim-req-{next(_ids):08d}"}


async def converse(request: Request) -> Response:
    return await _converse(request, stream=False)


async def converse_stream(request: Request) -> Response:
    return await _converse(request, stream=True)


def _invoke_answer(family: str, model_id: str, u: rules.SimUsage, stop: str, with_usage: bool) -> dict[str, Any]:
    text = _text(u.visible_output)
    if family == "anthropic":
        return {"id": f"msg_bdrk_{next(_ids)}", "type": "message", "role": "assistant", "model": model_id,
                "content": [{"type": "text", "text": text}], "stop_reason": stop, "stop_sequence": None,
                **({"usage": anthropic_api.usage_body(u, u.visible_output)} if with_usage else {})}
    if family == "amazon.nova":
        usage = {"inputTokens": u.prompt - u.cached - u.cache_write, "outputTokens": u.visible_output,
                 "totalTokens": u.prompt + u.visible_output, "cacheReadInputTokenCount": u.cached,
                 "cacheWriteInputTokenCount": u.cache_write}
        return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": stop, **({"usage": usage} if with_usage else {})}
    return {"generation": text, "stop_reason": "length" if stop == "max_tokens" else "stop",
            **({"prompt_token_count": u.prompt, "generation_token_count": u.visible_output} if with_usage else {})}


async def _begin_invoke(request: Request, stream: bool
                        ) -> Response | tuple[wire.Behaviour, str, rules.SimUsage, str]:
    """An InvokeModel request read in any model family's body: the behaviour, the model id, the usage and the stop
    reason; or the injected failure."""
    body, behave, failure = await wire.prologue(request, _error_body, stream=stream)
    if failure is not None:
        return failure
    limit = body.get("max_tokens", body.get("max_gen_len", (body.get("inferenceConfig") or {}).get("max_new_tokens")))
    prompt = body.get("messages", body.get("prompt"))
    shaped: dict[str, Any] = {"messages": prompt} if isinstance(prompt, list) else {"prompt": prompt or ""}
    if isinstance(limit, int):
        shaped["max_tokens"] = limit
    usage = rules.usage_for(shaped, request.headers)
    return behave, _model_id(request), usage, "max_tokens" if limit == usage.visible_output else "end_turn"


async def invoke(request: Request) -> Response:
    begun = await _begin_invoke(request, stream=False)
    if isinstance(begun, Response):
        return begun
    behave, model_id, usage, stop = begun
    with_usage = behave.error != "no-usage"
    headers = {"x-amzn-bedrock-invocation-latency": "12", **_request_id()}
    if with_usage:
        headers.update({"x-amzn-bedrock-input-token-count": str(usage.prompt - usage.cached - usage.cache_write),
                        "x-amzn-bedrock-output-token-count": str(usage.visible_output)})
    return JSONResponse(_invoke_answer(_family(model_id), model_id, usage, stop, with_usage), headers=headers)


def _chunk(event: dict[str, Any]) -> bytes:
    return event_message("chunk", {"bytes": base64.b64encode(json.dumps(event).encode()).decode()})


async def invoke_stream(request: Request) -> Response:
    begun = await _begin_invoke(request, stream=True)
    if isinstance(begun, Response):
        return begun
    behave, model_id, usage, stop = begun
    text = _text(usage.visible_output)
    ident = f"msg_bdrk_{next(_ids)}"
    frames = [_chunk({"type": "message_start", "message": {
        "id": ident, "type": "message", "role": "assistant", "model": model_id, "content": [], "stop_reason": None,
        "usage": {"input_tokens": usage.prompt - usage.cached - usage.cache_write, "output_tokens": 1}}})]
    frames += [_chunk({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
               for piece in rules.output_pieces(text, usage.visible_output)]
    frames.append(_chunk({"type": "message_delta", "delta": {"stop_reason": stop},
                          "usage": {"output_tokens": usage.visible_output}}))
    last: dict[str, Any] = {"type": "message_stop"}
    if behave.error != "no-usage":
        last["amazon-bedrock-invocationMetrics"] = {
            "inputTokenCount": usage.prompt - usage.cached - usage.cache_write,
            "outputTokenCount": usage.visible_output, "invocationLatency": 12, "firstByteLatency": 3,
            "cacheReadInputTokenCount": usage.cached, "cacheWriteInputTokenCount": usage.cache_write}
    frames.append(_chunk(last))
    return wire.streamed(frames, behave, EVENT_STREAM, headers=_request_id())


HANDLERS = {"/converse": converse, "/converse-stream": converse_stream, "/invoke": invoke,
            "/invoke-with-response-stream": invoke_stream}
