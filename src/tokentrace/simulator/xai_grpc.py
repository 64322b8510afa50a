"""xAI's gRPC chat service (the protobuf service xai-sdk talks to), served with grpcio: ``GetCompletion`` and the
streamed ``GetCompletionChunk``. Usage follows xAI: ``prompt_tokens`` includes ``cached_prompt_text_tokens``,
``reasoning_tokens`` are on top of ``completion_tokens`` and in ``total_tokens``; in a stream only the last chunk
carries usage. ``x-sim-*`` request metadata works as the HTTP headers do; ``x-sim-report-cost: 1`` adds
``cost_in_usd_ticks`` (1 micro-dollar per token)."""

from __future__ import annotations

import itertools
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import grpc
from xai_sdk.proto import chat_pb2, chat_pb2_grpc, sample_pb2, usage_pb2

from . import rules

_ids = itertools.count(1)
_ABORTS = {"429": grpc.StatusCode.RESOURCE_EXHAUSTED, "500": grpc.StatusCode.INTERNAL,
           "400": grpc.StatusCode.INVALID_ARGUMENT, "malformed": grpc.StatusCode.DATA_LOSS}
TICKS_PER_TOKEN = 10_000  # 1e-6 USD per token, at 1e-10 USD per tick


def _as_body(request: Any) -> dict[str, Any]:
    """The request in the shape the usage rules read (messages with text, model, max tokens, reasoning)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"content": " ".join(part.text for part in m.content)} for m in request.messages],
    }
    if request.HasField("max_tokens"):
        body["max_tokens"] = request.max_tokens
    if request.HasField("reasoning_effort"):
        body["reasoning_effort"] = request.reasoning_effort
    return body


def _usage(u: rules.SimUsage, report_cost: bool) -> Any:
    total = u.prompt + u.visible_output + u.reasoning
    usage = usage_pb2.SamplingUsage(prompt_tokens=u.prompt, prompt_text_tokens=u.prompt,
                                    cached_prompt_text_tokens=u.cached, completion_tokens=u.visible_output,
                                    reasoning_tokens=u.reasoning, total_tokens=total)
    if report_cost and "cost_in_usd_ticks" in usage.DESCRIPTOR.fields_by_name:  # older SDKs' protos lack it
        usage.cost_in_usd_ticks = total * TICKS_PER_TOKEN
    return usage


@dataclass
class _Call:
    body: dict[str, Any]
    metadata: dict[str, str]
    error: str

    @property
    def usage(self) -> rules.SimUsage:
        return rules.usage_for(self.body, self.metadata)


class ChatService(chat_pb2_grpc.ChatServicer):  # type: ignore[misc]
    def __init__(self, defaults: Mapping[str, Any]) -> None:
        self.defaults = defaults

    def _start(self, request: Any, context: Any) -> _Call:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        latency = float(metadata.get("x-sim-latency-ms", self.defaults.get("latency_ms", 0.0))) / 1000
        if latency > 0:
            time.sleep(latency)
        error = metadata.get("x-sim-error") or self.defaults.get("error") or ""
        if error in _ABORTS:
            context.abort(_ABORTS[error], f"simulated {error}")
        return _Call(_as_body(request), metadata, error)

    def _finish(self, call: _Call, usage: rules.SimUsage) -> tuple[int, Any]:
        limit = call.body.get("max_tokens")
        reason = sample_pb2.REASON_MAX_LEN if limit == usage.visible_output + usage.reasoning else \
            sample_pb2.REASON_STOP
        with_usage = None if call.error == "no-usage" else _usage(usage, call.metadata.get("x-sim-report-cost") == "1")
        return reason, with_usage

    def GetCompletion(self, request: Any, context: Any) -> Any:  # noqa: N802 - the service's method name
        call = self._start(request, context)
        usage = call.usage
        reason, usage_pb = self._finish(call, usage)
        message = chat_pb2.CompletionMessage(content=" ".join(f"tok{i}" for i in range(usage.visible_output)),
                                             role=chat_pb2.ROLE_ASSISTANT)
        response = chat_pb2.GetChatCompletionResponse(
            id=f"xai-sim-{next(_ids)}", model=request.model, system_fingerprint="fp_sim",
            outputs=[chat_pb2.CompletionOutput(index=0, finish_reason=reason, message=message)])
        if usage_pb is not None:
            response.usage.CopyFrom(usage_pb)
        return response

    def GetCompletionChunk(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        call = self._start(request, context)
        usage = call.usage
        reason, usage_pb = self._finish(call, usage)
        ident = f"xai-sim-{next(_ids)}"
        pieces = rules.output_pieces(" ".join(f"tok{i}" for i in range(usage.visible_output)), usage.visible_output)
        delay = float(call.metadata.get("x-sim-chunk-delay-ms", self.defaults.get("chunk_delay_ms", 0.0))) / 1000
        for index, piece in enumerate(pieces):
            if call.error == "cut" and index == len(pieces) // 2:
                context.abort(grpc.StatusCode.UNAVAILABLE, "simulated connection drop")
            if index and delay:
                time.sleep(delay)
            last = index == len(pieces) - 1
            output = chat_pb2.CompletionOutputChunk(
                index=0, delta=chat_pb2.Delta(content=piece, role=chat_pb2.ROLE_ASSISTANT),
                finish_reason=reason if last else sample_pb2.REASON_INVALID)
            chunk = chat_pb2.GetChatCompletionChunk(id=ident, model=request.model, system_fingerprint="fp_sim",
                                                    outputs=[output])
            if last and usage_pb is not None:
                chunk.usage.CopyFrom(usage_pb)
            yield chunk


class GrpcServer:
    def __init__(self, server: Any, port: int) -> None:
        self._server = server
        self.port = port

    def stop(self) -> None:
        self._server.stop(grace=0.5)


def serve(defaults: Mapping[str, Any]) -> GrpcServer:
    """Start the chat service on a free loopback port (insecure: clients use ``use_insecure_channel=True``)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="tokentrace-sim-grpc"),
                         options=[("grpc.keepalive_permit_without_calls", 1),  # xai-sdk's clients ping every 30 s
                                  ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
                                  ("grpc.http2.max_ping_strikes", 0)])
    chat_pb2_grpc.add_ChatServicer_to_server(ChatService(defaults), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return GrpcServer(server, port)
