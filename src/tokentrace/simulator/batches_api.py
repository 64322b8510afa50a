"""Batch APIs: OpenAI ``/v1/batches`` (create, retrieve) and Anthropic ``/v1/messages/batches`` (create, retrieve,
results as JSONL), with the simulator's deterministic usage rules.

Rules (documented in docs/simulator.md): an OpenAI batch is ``validating`` when created and ``completed`` when
retrieved, with ``model`` and ``usage`` from its ``metadata`` (``model``, default gpt-4o-mini; ``input_tokens``
1000, ``cached_tokens`` 200, ``output_tokens`` 500, ``reasoning_tokens`` 0). An Anthropic batch has ended when
retrieved; each request's result carries the usage its ``params`` would get as a message, with
``service_tier: "batch"``; a request whose ``custom_id`` starts with ``fail`` has an ``errored`` result.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import anthropic_api, rules

_ids = itertools.count(1)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def _openai_batch(batch_id: str, body: dict[str, Any], created: int, completed: bool) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    answer: dict[str, Any] = {
        "id": batch_id, "object": "batch", "endpoint": body.get("endpoint", "/v1/chat/completions"),
        "input_file_id": body.get("input_file_id", "file-sim"), "completion_window": "24h",
        "status": "completed" if completed else "validating", "created_at": created, "metadata": metadata,
        "request_counts": {"total": 10, "completed": 10 if completed else 0, "failed": 0},
        "errors": None, "output_file_id": "file-out-sim" if completed else None, "error_file_id": None,
    }
    if completed:
        cached = int(metadata.get("cached_tokens", 200))
        inputs, outputs = int(metadata.get("input_tokens", 1000)), int(metadata.get("output_tokens", 500))
        reasoning = int(metadata.get("reasoning_tokens", 0))
        answer.update(completed_at=created + 60, model=metadata.get("model", "gpt-4o-mini"), usage={
            "input_tokens": inputs, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": outputs, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": inputs + outputs})
    return answer


async def openai_create(request: Request) -> Response:
    body = await request.json()
    batch_id = f"batch_sim{next(_ids)}"
    created = int(time.time())
    request.app.state.batches[batch_id] = (body, created)
    return JSONResponse(_openai_batch(batch_id, body, created, completed=False))


async def openai_retrieve(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    found = request.app.state.batches.get(batch_id)
    if found is None:
        return JSONResponse({"error": {"message": f"no batch {batch_id}", "type": "invalid_request_error"}},
                            status_code=404)
    body, created = found
    return JSONResponse(_openai_batch(batch_id, body, created, completed=True))


def _message_batch(batch_id: str, created: float, count: int, ended: bool, base: str) -> dict[str, Any]:
    return {
        "id": batch_id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
        "request_counts": {"processing": 0 if ended else count, "succeeded": count if ended else 0, "errored": 0,
                           "canceled": 0, "expired": 0},
        "created_at": _iso(created), "expires_at": _iso(created + 86400), "ended_at": _iso(created + 60)
        if ended else None, "archived_at": None, "cancel_initiated_at": None,
        "results_url": f"{base}/v1/messages/batches/{batch_id}/results" if ended else None,
    }


async def anthropic_create(request: Request) -> Response:
    body = await request.json()
    batch_id = f"msgbatch_sim{next(_ids)}"
    request.app.state.batches[batch_id] = (body, time.time())
    return JSONResponse(_message_batch(batch_id, time.time(), len(body.get("requests") or ()), False,
                                       str(request.base_url).rstrip("/")))


async def anthropic_retrieve(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    found = request.app.state.batches.get(batch_id)
    if found is None:
        return JSONResponse({"type": "error", "error": {"type": "not_found_error", "message": batch_id}},
                            status_code=404)
    body, created = found
    return JSONResponse(_message_batch(batch_id, created, len(body.get("requests") or ()), True,
                                       str(request.base_url).rstrip("/")))


def _result(batch_id: str, index: int, entry: dict[str, Any]) -> dict[str, Any]:
    custom_id = str(entry.get("custom_id", f"r{index}"))
    if custom_id.startswith("fail"):
        return {"custom_id": custom_id, "result": {"type": "errored", "error": {
            "type": "error", "error": {"type": "invalid_request_error", "message": "simulated failure"}}}}
    params = entry.get("params") or {}
    usage = rules.usage_for(params, {})
    output = usage.visible_output + usage.reasoning
    body = anthropic_api.usage_body(usage, output)
    body["service_tier"] = "batch"
    message = {"id": f"msg_{batch_id}_{index}", "type": "message", "role": "assistant",
               "model": str(params.get("model", "")), "stop_reason": "end_turn", "stop_sequence": None,
               "content": [{"type": "text", "text": " ".join(f"tok{i}" for i in range(usage.visible_output))}],
               "usage": body}
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}


async def anthropic_results(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    body, _ = request.app.state.batches[batch_id]
    lines = [json.dumps(_result(batch_id, i, e)) for i, e in enumerate(body.get("requests") or ())]
    return Response("\n".join(lines) + "\n", media_type="application/binary")


def routes() -> list[Route]:
    """The batch endpoints, ahead of the simulator's catch-all POST route."""
    return [
        Route("/v1/batches", openai_create, methods=["POST"]),
        Route("/v1/batches/{batch_id}", openai_retrieve, methods=["GET"]),
        Route("/v1/messages/batches", anthropic_create, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}", anthropic_retrieve, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}/results", anthropic_results, methods=["GET"]),
    ]

