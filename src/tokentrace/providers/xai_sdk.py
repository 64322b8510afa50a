"""xAI's own SDK (xai-sdk, gRPC): PATCHES for ``Chat.sample`` and ``Chat.stream`` of the sync and async clients.

A chat is built with ``client.chat.create(model=...)``; each ``sample()``/``stream()`` sends one request. Usage is
the response's ``SamplingUsage`` protobuf: ``prompt_tokens`` includes ``cached_prompt_text_tokens``, and
``reasoning_tokens`` are billed on top of ``completion_tokens`` (checked against ``total_tokens``, as for xAI
through openai). In a stream the last chunk that carries ``usage`` wins. When xAI reports the call's cost
(``cost_in_usd_ticks``, 1 tick = 1e-10 USD) that cost wins over the price table.
"""

from __future__ import annotations

from typing import Any, Mapping

from .._usage import RequestInfo, ResponseInfo, Usage
from ._capture import capture_output
from ._contract import Endpoint, Options, Patch, Prepared, StreamAccumulator
from ._fields import USD_PER_TICK, count, int_or_none, number_or_none, text_or_none, usage_reader
from ._kinds import classifier
from .openai import partition

PROVIDER = "xai"


def _has(message: Any, name: str) -> bool:
    try:
        return bool(message.HasField(name))
    except Exception:  # not a protobuf message, or no such field
        return False


def prepare(instance: Any, kwargs: Mapping[str, Any], options: Options, *, stream: bool = False) -> Prepared:
    proto: Any = getattr(instance, "_proto", None)
    model = getattr(proto, "model", None)
    messages = getattr(proto, "messages", ())
    request = RequestInfo(
        provider=PROVIDER,
        operation="chat",
        request_model=model if isinstance(model, str) else "",
        stream=stream,
        max_tokens=int_or_none(proto.max_tokens) if _has(proto, "max_tokens") else None,
        temperature=number_or_none(proto.temperature) if _has(proto, "temperature") else None,
        top_p=number_or_none(proto.top_p) if _has(proto, "top_p") else None,
        input_chars=sum(len(part.text) for m in messages for part in m.content) if options.measure_prompt else 0,
        input_messages=len(messages),
    )
    return Prepared(request, kwargs, capture_content=options.capture_content)


def prepare_stream(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare(instance, kwargs, options, stream=True)


def _count(usage: Any, name: str) -> int:
    return count(usage, name, "usage.xai")


@usage_reader
def usage_from(usage: Any) -> Usage | None:
    """Partition a ``SamplingUsage`` (reasoning on top of completion when ``total_tokens`` says so)."""
    if usage is None:
        return None
    total = int_or_none(getattr(usage, "total_tokens", None))
    return partition(prompt=_count(usage, "prompt_tokens"), cached=_count(usage, "cached_prompt_text_tokens"),
                     cache_write=0, completion=_count(usage, "completion_tokens"),
                     reasoning=_count(usage, "reasoning_tokens"), total=total or None, provider=PROVIDER)


def _reported_cost(usage: Any) -> float | None:
    if not _has(usage, "cost_in_usd_ticks"):
        return None
    ticks = int_or_none(usage.cost_in_usd_ticks)
    return ticks * USD_PER_TICK if ticks is not None else None


def _response_info(response: Any, proto: Any, usage: Any, capture: bool) -> ResponseInfo:
    try:
        reason = text_or_none(response.finish_reason)
    except Exception:  # no output to read it from
        reason = None
    reasons = (reason,) if reason else ()
    text = getattr(response, "content", None) if capture else None
    return ResponseInfo(
        usage=usage_from(usage),
        response_model=text_or_none(getattr(proto, "model", None)),
        response_id=text_or_none(getattr(proto, "id", None)),
        finish_reasons=reasons,
        output_text=capture_output(text if isinstance(text, str) else None, reasons) if capture else None,
        reported_cost_usd=_reported_cost(usage),
    )


def extract(result: Any, prepared: Prepared) -> ResponseInfo:
    proto: Any = getattr(result, "proto", None)
    usage = proto.usage if _has(proto, "usage") else None
    return _response_info(result, proto, usage, prepared.capture_content)


class ChunkAccumulator(StreamAccumulator):
    """``(response, chunk)`` pairs: the SDK's response object accumulates; usage from the last chunk sending it."""

    __slots__ = ("capture", "last_chunk", "response", "usage")

    def __init__(self, prepared: Prepared) -> None:
        self.capture = prepared.capture_content
        self.response: Any = None
        self.last_chunk: Any = None
        self.usage: Any = None

    def chunk(self, item: Any) -> bool:
        if isinstance(item, tuple) and len(item) == 2:
            self.response = item[0]
            proto: Any = getattr(item[1], "proto", None)
            self.last_chunk = proto
            if _has(proto, "usage"):
                self.usage = proto.usage
        return False

    def result(self) -> ResponseInfo:
        if self.response is None:
            return ResponseInfo()
        return _response_info(self.response, self.last_chunk, self.usage, self.capture)


classify = classifier("xai_sdk.chat", "Response")


SAMPLE = Endpoint(prepare, extract, ChunkAccumulator, classify)
STREAM = Endpoint(prepare_stream, extract, ChunkAccumulator, classify)

PATCHES: tuple[Patch, ...] = (
    Patch("xai_sdk.sync.chat", "Chat.sample", SAMPLE),
    Patch("xai_sdk.sync.chat", "Chat.stream", STREAM),
    Patch("xai_sdk.aio.chat", "Chat.sample", SAMPLE, is_async=True),
    Patch("xai_sdk.aio.chat", "Chat.stream", STREAM),  # an async generator: returned synchronously
)
