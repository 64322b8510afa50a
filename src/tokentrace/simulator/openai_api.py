"""The OpenAI wire format: chat completions, Responses, legacy completions and embeddings, as JSON and SSE."""

from __future__ import annotations

import base64
import itertools
import json
import struct
import time
from typing import Any, Mapping, NamedTuple

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import billing, rules, wire

_ids = itertools.count(1)


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 500: "server_error"}.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _with_provider_cost(request: Request, usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenRouter adds what it billed, in USD, to usage; the simulator bills 1 micro-dollar per token."""
    if usage is not None and request.headers.get("host", "").split(":")[0] == "openrouter.ai":
        return {**usage, "cost": usage["total_tokens"] / 1_000_000}
    return usage


def _host(request: Request) -> str:
    return request.headers.get("host", "").split(":")[0]


def _standard_tier(request: Request) -> str:
    """What a host calls the tier it serves by default (Groq: ``on_demand``)."""
    return "on_demand" if _host(request) == "api.groq.com" else "default"


def _reasoning_on_top(request: Request) -> bool:
    """xAI bills reasoning on top of completion_tokens; OpenAI counts it inside."""
    return _host(request) == "api.x.ai"


def _final_chunk_usage(request: Request, ident: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    """What a host adds to a stream's finish chunk unasked: Groq its ``x_groq.usage``, Mistral ``usage``."""
    if usage is None:
        return {}
    host = _host(request)
    if host == "api.groq.com":
        return {"x_groq": {"id": f"req_{ident}", "usage": usage}}
    if host == "api.mistral.ai":
        return {"usage": usage}
    return {}


def _bill(request: Request, kind: str, model: str, u: rules.SimUsage, output: int) -> None:
    """A call to OpenAI itself is counted in its organisation's usage and cost reports (``billing``)."""
    if _host(request) == "api.openai.com":
        billing.bill(request, "openai", kind, model, u.prompt, u.cached, u.cache_write, output)


def chat_usage(u: rules.SimUsage, on_top: bool, audio: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    completion = u.visible_output if on_top else u.visible_output + u.reasoning
    total = u.prompt + completion + (u.reasoning if on_top else 0)
    return {
        "prompt_tokens": u.prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": u.cached, "cache_write_tokens": u.cache_write,
                                  "audio_tokens": audio[0]},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning, "audio_tokens": audio[1],
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def response_usage(u: rules.SimUsage) -> dict[str, Any]:
    output = u.visible_output + u.reasoning
    return {
        "input_tokens": u.prompt,
        "input_tokens_details": {"cached_tokens": u.cached, "cache_write_tokens": u.cache_write},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.prompt + output,
    }


def _text(body: Mapping[str, Any], visible: int) -> str:
    fmt = body.get("response_format") or (body.get("text") or {}).get("format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema", fmt).get("schema", {})
        return json.dumps(rules.sample_json(schema))
    return " ".join(f"tok{i}" for i in range(visible))


class _Call(NamedTuple):
    """One request the simulator serves: what was asked, how to behave, the usage and the names it answers with."""

    body: dict[str, Any]
    behave: wire.Behaviour
    usage: rules.SimUsage
    model: str
    ident: str
    created: int
    text: str


async def _begin(request: Request, id_prefix: str, *, embeddings: bool = False) -> Response | _Call:
    """Read the request, apply the injected behaviour, count the usage and bill it; or the injected failure."""
    body, behave, failure = await wire.prologue(request, _error_body)
    if failure is not None:
        return failure
    if "stream_options" in body and _stream_usage_mode(request) == "reject":
        return JSONResponse(_error_body(400, "Unrecognized request argument supplied: stream_options"), 400)
    usage = rules.usage_for(body, request.headers, embeddings=embeddings)
    model = rules.response_model(str(body.get("model", "")))
    output = 0 if embeddings else usage.visible_output + usage.reasoning
    _bill(request, "embeddings" if embeddings else "completions", model, usage, output)
    text = "" if embeddings else _text(body, usage.visible_output)
    return _Call(body, behave, usage, model, f"{id_prefix}{next(_ids)}", int(time.time()), text)


def _stream_usage_mode(request: Request) -> str:
    """How a host treats ``stream_options`` (``x-sim-stream-usage``): honoured (default), ``unasked`` (usage sent
    whether asked or not, as Hugging Face's router), ``ignore`` (never any usage), ``reject`` (HTTP 400)."""
    if _host(request) == "router.huggingface.co":
        return "unasked"
    return request.headers.get("x-sim-stream-usage", "")


def _includes_usage(request: Request, body: Mapping[str, Any]) -> bool:
    mode = _stream_usage_mode(request)
    options = body.get("stream_options")
    asked = isinstance(options, Mapping) and options.get("include_usage") is True
    return mode == "unasked" or (asked and mode != "ignore")


async def chat_completions(request: Request) -> Response:
    call = await _begin(request, "chatcmpl-sim")
    if isinstance(call, Response):
        return call
    body, behave, usage, model, ident, created, text = call
    has_max = any(k in body for k in ("max_tokens", "max_completion_tokens"))
    finish = "length" if has_max and not text.startswith("{") else "stop"
    audio = rules.modality_tokens(request.headers, usage.prompt - usage.cached - usage.cache_write,
                                  usage.visible_output)
    usage_body = None if behave.error == "no-usage" else chat_usage(usage, _reasoning_on_top(request), audio)
    usage_body = _with_provider_cost(request, usage_body)
    tier = rules.served_tier(body.get("service_tier"), request.headers, _standard_tier(request))
    if not body.get("stream"):
        return JSONResponse({
            "id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": text, "refusal": None}}],
            "usage": usage_body, "system_fingerprint": "fp_sim", "service_tier": tier,
        })
    include_usage = _includes_usage(request, body) and usage_body is not None

    def chunk(choices: list[Any], **extra: Any) -> tuple[None, dict[str, Any]]:
        data = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_sim", "service_tier": tier, "choices": choices, **extra}
        if include_usage and "usage" not in data:
            data["usage"] = None
        return None, data

    events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    for piece in rules.output_pieces(text, usage.visible_output):
        events.append(chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}]))
    events.append(chunk([{"index": 0, "delta": {}, "finish_reason": finish}],
                        **_final_chunk_usage(request, ident, usage_body)))
    if include_usage:
        events.append(chunk([], usage=usage_body))
    return wire.sse(events, behave, done_marker=True)


async def completions(request: Request) -> Response:
    call = await _begin(request, "cmpl-sim")
    if isinstance(call, Response):
        return call
    body, behave, usage, model, ident, created, text = call
    finish = "length" if "max_tokens" in body else "stop"
    usage_body = None if behave.error == "no-usage" else chat_usage(usage, _reasoning_on_top(request))
    base = {"id": ident, "object": "text_completion", "created": created, "model": model}
    if not body.get("stream"):
        return JSONResponse({**base, "choices": [{"index": 0, "text": text, "logprobs": None,
                                                   "finish_reason": finish}], "usage": usage_body})
    include_usage = _includes_usage(request, body) and usage_body is not None
    pieces = rules.output_pieces(text, usage.visible_output)
    events: list[tuple[str | None, Any]] = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        data = {**base, "choices": [{"index": 0, "text": piece, "logprobs": None,
                                     "finish_reason": finish if last else None}]}
        if include_usage:
            data["usage"] = None
        events.append((None, data))
    if include_usage:
        events.append((None, {**base, "choices": [], "usage": usage_body}))
    return wire.sse(events, behave, done_marker=True)


async def embeddings(request: Request) -> Response:
    call = await _begin(request, "emb-sim", embeddings=True)
    if isinstance(call, Response):
        return call
    body, behave, usage = call.body, call.behave, call.usage
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
    dims = int(body.get("dimensions") or 8)
    vector = [round(0.01 * (i + 1), 4) for i in range(dims)]
    as_base64 = body.get("encoding_format") == "base64"
    encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
    data = [{"object": "embedding", "index": i, "embedding": encoded} for i in range(count)]
    usage_body = None if behave.error == "no-usage" else {"prompt_tokens": usage.prompt, "total_tokens": usage.prompt}
    answer = {"object": "list", "data": data, "model": rules.response_model(str(body.get("model"))),
              "usage": usage_body}
    if _host(request) == "api.mistral.ai":  # Mistral's embeddings carry an id
        answer["id"] = call.ident
    return JSONResponse(answer)


def _response_object(ident: str, model: str, text: str, status: str, usage: Any, created: int,
                     tier: str = "default", headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    output: list[dict[str, Any]] = [] if status == "in_progress" else [{
        "type": "message", "id": f"msg_{ident}", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }]
    if status != "in_progress" and headers is not None:
        searches = [{"type": "web_search_call", "id": f"ws_{ident}_{i}", "status": "completed",
                     "action": {"type": "search", "query": "q"}}
                    for i in range(int(headers.get("x-sim-web-search-calls") or 0))]
        files = [{"type": "file_search_call", "id": f"fs_{ident}_{i}", "status": "completed", "queries": ["q"],
                  "results": None} for i in range(int(headers.get("x-sim-file-search-calls") or 0))]
        output = [*searches, *files, *output]
        tool = headers.get("x-sim-tool-call")
        if tool:  # the model calls this function (an agent handing off, a tool) instead of answering in text
            output = [*searches, *files, {"type": "function_call", "id": f"fc_{ident}", "call_id": f"call_{ident}",
                                          "name": tool, "arguments": "{}", "status": "completed"}]
    return {
        "service_tier": tier,
        "id": ident, "object": "response", "created_at": created, "status": status, "model": model,
        "output": output, "usage": usage, "error": None, "incomplete_details": None, "instructions": None,
        "metadata": {}, "parallel_tool_calls": True, "temperature": 1.0, "tool_choice": "auto", "tools": [],
        "top_p": 1.0, "text": {"format": {"type": "text"}}, "truncation": "disabled",
    }


async def responses(request: Request) -> Response:
    call = await _begin(request, "resp_sim")
    if isinstance(call, Response):
        return call
    body, behave, usage, model, ident, created, text = call
    usage_body = None if behave.error == "no-usage" else response_usage(usage)
    tier = rules.served_tier(body.get("service_tier"), request.headers, "default")
    final = _response_object(ident, model, text, "completed", usage_body, created, tier, request.headers)
    if not body.get("stream"):
        return JSONResponse(final)
    start = _response_object(ident, model, text, "in_progress", None, created, tier)
    item_id = f"msg_{ident}"
    seq = itertools.count()
    events: list[tuple[str | None, Any]] = []

    def event(kind: str, **data: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": next(seq), **data}))

    event("response.created", response=start)
    event("response.in_progress", response=start)
    event("response.output_item.added", output_index=0,
          item={"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []})
    event("response.content_part.added", item_id=item_id, output_index=0, content_index=0,
          part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
    for piece in rules.output_pieces(text, usage.visible_output):
        event("response.output_text.delta", item_id=item_id, output_index=0, content_index=0, delta=piece,
              logprobs=[])
    event("response.output_text.done", item_id=item_id, output_index=0, content_index=0, text=text, logprobs=[])
    event("response.content_part.done", item_id=item_id, output_index=0, content_index=0,
          part={"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    event("response.output_item.done", output_index=0, item=final["output"][-1])
    event("response.completed", response=final)
    return wire.sse(events, behave, done_marker=False)


# path suffix -> handler; any prefix is accepted (/v1, /openai/v1 for Groq, Azure's /openai/deployments/{name})
HANDLERS = {
    "/chat/completions": chat_completions,
    "/completions": completions,
    "/embeddings": embeddings,
    "/responses": responses,
}
