"""Shared HTTP behaviour of the simulator's wire formats: injected latency and errors, JSON and SSE responses."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from . import rules


@dataclass(frozen=True)
class Behaviour:
    """What one request asks of the simulator (``x-sim-*`` headers, else the server's defaults)."""

    error: str | None
    latency_s: float
    chunk_delay_s: float


class CutStreamError(Exception):
    """Raised inside a streaming body to drop the connection mid-stream."""


def behaviour(request: Request, defaults: Mapping[str, Any]) -> Behaviour:
    headers = request.headers

    def ms(name: str, default: float) -> float:
        try:
            return float(headers.get(name, default)) / 1000.0
        except ValueError:
            return default / 1000.0

    return Behaviour(
        error=headers.get("x-sim-error") or defaults.get("error"),
        latency_s=ms("x-sim-latency-ms", defaults.get("latency_ms", 0.0)),
        chunk_delay_s=ms("x-sim-chunk-delay-ms", defaults.get("chunk_delay_ms", 0.0)),
    )


def error_response(kind: str, error_body: Callable[[int, str], Any]) -> Response | None:
    """The HTTP error an ``x-sim-error`` value asks for, or None when the request proceeds."""
    if kind == "429":
        return JSONResponse(error_body(429, "Rate limit reached (simulated)"), status_code=429,
                            headers={"retry-after": "0"})
    if kind == "500":
        return JSONResponse(error_body(500, "The server had an error (simulated)"), status_code=500)
    if kind == "400":
        return JSONResponse(error_body(400, "Invalid request (simulated)"), status_code=400)
    if kind == "malformed":
        return Response("{\"id\": \"broken", media_type="application/json")
    return None


async def delay(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def sse(events: Iterable[tuple[str | None, Any]], behave: Behaviour, done_marker: bool) -> StreamingResponse:
    """Stream ``(event name or None, data)`` pairs as SSE; ``cut`` drops the connection half-way."""
    frames = []
    for name, data in events:
        prefix = f"event: {name}\n" if name else ""
        frames.append(f"{prefix}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode())
    return streamed(frames, behave, "text/event-stream", b"data: [DONE]\n\n" if done_marker else b"")


def streamed(frames: list[bytes], behave: Behaviour, media_type: str, trailer: bytes = b"",
             headers: Mapping[str, str] | None = None) -> StreamingResponse:
    """Stream encoded frames (SSE events, NDJSON lines, AWS event-stream messages) with the injected chunk delay;
    ``cut`` drops the connection half-way."""
    cut_at = len(frames) // 2 if behave.error == "cut" else None

    async def body() -> AsyncIterator[bytes]:
        for index, frame in enumerate(frames):
            if cut_at is not None and index == cut_at:
                raise CutStreamError("simulated connection drop")
            if index and behave.chunk_delay_s:
                await asyncio.sleep(behave.chunk_delay_s)
            yield frame
        if trailer:
            yield trailer

    return StreamingResponse(body(), media_type=media_type, headers={"cache-control": "no-cache", **(headers or {})})


async def prologue(request: Request, error_body: Callable[[int, str], Any], stream: bool | None = None
                   ) -> tuple[dict[str, Any], Behaviour, Response | None]:
    """Read the JSON body, wait the injected latency, and decide the injected failure (None: proceed).

    ``cut`` only makes sense for a stream; for anything else it sends a malformed body.
    """
    body = await request.json()
    behave = behaviour(request, request.app.state.defaults)
    await delay(behave.latency_s)
    failure = error_response(behave.error or "", error_body)
    is_stream = bool(body.get("stream")) if stream is None else stream
    if failure is None and behave.error == "cut" and not is_stream:
        failure = error_response("malformed", error_body)
    return body, behave, failure



#: what an embeddings endpoint answers: from the request body, the input tokens (None: the answer carries no usage)
#: and the vector every input is given
EmbeddingAnswer = Callable[[dict[str, Any], "int | None", list[float]], dict[str, Any]]


def embeddings_endpoint(error_body: Callable[[int, str], Any], answer: EmbeddingAnswer
                        ) -> Callable[[Request], Awaitable[Response]]:
    """The handler of an embeddings endpoint: ``prologue``, the usage counted, then ``answer`` as JSON."""

    async def handle(request: Request) -> Response:
        body, behave, failure = await prologue(request, error_body, stream=False)
        if failure is not None:
            return failure
        tokens = rules.usage_for(body, request.headers, embeddings=True).prompt
        vector = [0.01 * (i + 1) for i in range(8)]
        return JSONResponse(answer(body, None if behave.error == "no-usage" else tokens, vector))

    return handle
