"""Ollama's API wire format: ``/api/chat``, ``/api/generate`` (JSON, or NDJSON lines when streaming) and
``/api/embed``. Counts (``prompt_eval_count``, ``eval_count``) are on the final (``done``) message only."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import rules, wire


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": message}


def _counts(prompt: int, output: int) -> dict[str, Any]:
    return {"total_duration": 5_000_000, "load_duration": 1_000_000, "prompt_eval_count": prompt,
            "prompt_eval_duration": 1_000_000, "eval_count": output, "eval_duration": 3_000_000}


async def _generate(request: Request, chat: bool) -> Response:
    body, behave, failure = await wire.prologue(request, _error_body)
    if failure is not None:
        return failure
    limit = (body.get("options") or {}).get("num_predict")
    usage = rules.usage_for({**body, "max_tokens": limit} if isinstance(limit, int) else body, request.headers)
    text = " ".join(f"tok{i}" for i in range(usage.visible_output))
    reason = "length" if limit == usage.visible_output else "stop"
    counts = {} if behave.error == "no-usage" else _counts(usage.prompt, usage.visible_output)
    base = {"model": body.get("model", ""), "created_at": datetime.now(UTC).isoformat()}

    def piece(content: str) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": content}} if chat else {"response": content}

    final = {**base, **piece("" if body.get("stream") else text), "done": True, "done_reason": reason, **counts}
    if not body.get("stream"):
        return JSONResponse(final)
    lines = [json.dumps({**base, **piece(p), "done": False}).encode() + b"\n"
             for p in rules.output_pieces(text, usage.visible_output)]
    lines.append(json.dumps(final).encode() + b"\n")
    return wire.streamed(lines, behave, "application/x-ndjson")


async def chat(request: Request) -> Response:
    return await _generate(request, chat=True)


async def generate(request: Request) -> Response:
    return await _generate(request, chat=False)


def _embed_answer(body: dict[str, Any], tokens: int | None, vector: list[float]) -> dict[str, Any]:
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) else 1
    payload: dict[str, Any] = {"model": body.get("model", ""),
                               "embeddings": [vector for _ in range(count)],
                               "total_duration": 2_000_000, "load_duration": 1_000_000}
    if tokens is not None:
        payload["prompt_eval_count"] = tokens
    return payload


embed = wire.embeddings_endpoint(_error_body, _embed_answer)


HANDLERS = {"/api/chat": chat, "/api/generate": generate, "/api/embed": embed}
