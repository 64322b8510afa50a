"""The Gemini API wire format: generateContent, streamGenerateContent?alt=sse and batchEmbedContents."""

from __future__ import annotations

import itertools
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import rules, wire

_ids = itertools.count(1)
_STATUS = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 400: "INVALID_ARGUMENT"}


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}


def _model(request: Request) -> str:
    last = request.url.path.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def usage_metadata(u: rules.SimUsage, audio: tuple[int, int] = (0, 0), image: tuple[int, int] = (0, 0)
                   ) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "promptTokenCount": u.prompt,
        "candidatesTokenCount": u.visible_output,
        "totalTokenCount": u.prompt + u.visible_output + u.reasoning + u.tool_use_prompt,
    }
    if u.cached:
        meta["cachedContentTokenCount"] = u.cached
    if u.reasoning:
        meta["thoughtsTokenCount"] = u.reasoning
    if u.tool_use_prompt:
        meta["toolUsePromptTokenCount"] = u.tool_use_prompt
    if audio != (0, 0) or image != (0, 0):  # the per-modality breakdowns
        sides = (("promptTokensDetails", u.prompt, 0), ("candidatesTokensDetails", u.visible_output, 1))
        for key, total, side in sides:
            audio_n, image_n = audio[side], min(image[side], total - audio[side])
            meta[key] = [{"modality": "TEXT", "tokenCount": total - audio_n - image_n}] + \
                [{"modality": name, "tokenCount": n} for name, n in (("AUDIO", audio_n), ("IMAGE", image_n)) if n]
    return meta


def _candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return candidate


async def generate_content(request: Request) -> Response:
    return await _generate(request, stream=False)


async def stream_generate_content(request: Request) -> Response:
    return await _generate(request, stream=True)


async def _generate(request: Request, stream: bool) -> Response:
    body, behave, failure = await wire.prologue(request, _error_body, stream)
    if failure is not None:
        return failure
    usage = rules.usage_for(body, request.headers)
    model = _model(request)
    ident = f"sim-{next(_ids)}"
    text = " ".join(f"tok{i}" for i in range(usage.visible_output))
    thoughts = " ".join(f"think{i}" for i in range(usage.reasoning))
    max_out = (body.get("generationConfig") or {}).get("maxOutputTokens")
    finish = "MAX_TOKENS" if max_out == usage.visible_output + usage.reasoning else "STOP"
    audio = rules.modality_tokens(request.headers, usage.prompt - usage.cached, usage.visible_output)
    image = rules.modality_tokens(request.headers, usage.prompt - usage.cached, usage.visible_output, "image")
    meta = None if behave.error == "no-usage" else usage_metadata(usage, audio, image)
    if meta is not None and (body.get("serviceTier") or request.headers.get("x-sim-served-tier")):
        meta["serviceTier"] = rules.served_tier(str(body.get("serviceTier") or "").lower(), request.headers,
                                                "standard")
    base = {"modelVersion": model, "responseId": ident}
    include_thoughts = ((body.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts")
    if not stream:
        parts = ([{"text": thoughts, "thought": True}] if usage.reasoning and include_thoughts else []) + \
            [{"text": text}]
        return JSONResponse({"candidates": [_candidate(parts, finish)], **({"usageMetadata": meta} if meta else {}),
                             **base})
    pieces = rules.output_pieces(text, usage.visible_output)
    events: list[tuple[str | None, Any]] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        chunk: dict[str, Any] = {"candidates": [_candidate([{"text": piece}], finish if last else None)], **base}
        if meta is not None:  # running counts on every chunk; the last one is final
            chunk["usageMetadata"] = meta if last else {"promptTokenCount": usage.prompt,
                                                        "totalTokenCount": usage.prompt}
        events.append((None, chunk))
    return wire.sse(events, behave, done_marker=False)


def _batch_embed_answer(body: dict[str, Any], tokens: int | None, vector: list[float]) -> dict[str, Any]:
    count = len(body.get("requests") or [1])
    payload: dict[str, Any] = {"embeddings": [{"values": vector} for _ in range(count)]}
    if tokens is not None:
        payload["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    return payload


batch_embed_contents = wire.embeddings_endpoint(_error_body, _batch_embed_answer)


HANDLERS = {
    ":streamGenerateContent": stream_generate_content,
    ":generateContent": generate_content,
    ":batchEmbedContents": batch_embed_contents,
}
