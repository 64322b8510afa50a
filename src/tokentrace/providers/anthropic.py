"""Anthropic SDK: PATCHES and pure functions SDK object -> Usage (Messages API, streams, the .stream() helper).

Usage partition: ``input_tokens`` already excludes cache reads and writes; cache writes are split by TTL
(``cache_creation.ephemeral_1h_input_tokens`` priced at the 1-hour rate); thinking is part of
``output_tokens`` and billed as output, so ``reasoning`` is 0. In streams, ``message_start`` carries the input
side and a placeholder ``output_tokens``; each ``message_delta`` carries cumulative counts that replace it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._support import errors as _errors
from .._usage import RequestInfo, ResponseInfo, Usage, at_endpoint, tier_label
from ._capture import capture_messages, capture_output
from ._contract import Endpoint, Options, Patch, Prepared, RequestWrapper, ResultKind, StreamAccumulator
from ._fields import count, field, int_or_none, number_or_none, server_of, text_or_none, usage_reader
from ._prompt import text_length
from ._stainless import classify_result, streaming_response_requested

PROVIDER = "anthropic"


def prepare(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    address, port = server_of(getattr(getattr(instance, "_client", None), "base_url", None))
    messages = kwargs.get("messages")
    messages = messages if isinstance(messages, (list, tuple)) and options.measure_prompt else ()
    model = kwargs.get("model")
    request = RequestInfo(
        provider=PROVIDER,
        operation="chat",
        request_model=model if isinstance(model, str) else "",
        stream=kwargs.get("stream") is True,
        server_address=address,
        server_port=port,
        max_tokens=int_or_none(kwargs.get("max_tokens")),
        temperature=number_or_none(kwargs.get("temperature")),
        top_p=number_or_none(kwargs.get("top_p")),
        input_chars=text_length(messages) + text_length(kwargs.get("system")),
        input_messages=len(messages),
        captured_input=capture_messages(kwargs.get("messages"), kwargs.get("system"))
        if options.capture_content else None,
        max_searches=web_searches_allowed(kwargs.get("tools")),
        requested_tier=tier_label(None, speed=kwargs.get("speed"), inference_geo=kwargs.get("inference_geo"))
        if "speed" in kwargs or "inference_geo" in kwargs else None,
    )
    if vertex_regional(instance):  # billed apart from the global endpoint
        request = at_endpoint(request, "endpoint=regional")
    return Prepared(request, kwargs, body_left_to_caller=streaming_response_requested(kwargs),
                    capture_content=options.capture_content)


def vertex_regional(instance: Any) -> bool:
    """A client of Claude on Vertex AI (``AnthropicVertex``) bound to a region or multi-region, not to the global
    endpoint: billed apart (``pricing.tiers``)."""
    client = getattr(instance, "_client", None)
    if type(client).__name__ not in ("AnthropicVertex", "AsyncAnthropicVertex"):
        return False
    region = getattr(client, "region", None)
    return isinstance(region, str) and bool(region) and region != "global"


DEFAULT_SEARCHES = 10
"""Searches a web-search tool without ``max_uses`` is assumed to run at most (a budget's estimate; Anthropic
sets no limit of its own, so a call could run more, which is the estimate's one documented gap)."""


def web_searches_allowed(tools: Any) -> int:
    """The most server-side web searches a request's tools allow (``max_uses``, else DEFAULT_SEARCHES each)."""
    if not isinstance(tools, (list, tuple)):
        return 0
    total = 0
    for tool in tools:
        kind = field(tool, "type")
        if isinstance(kind, str) and kind.startswith("web_search"):
            total += int_or_none(field(tool, "max_uses")) or DEFAULT_SEARCHES
    return total


def prepare_stream_helper(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    prepared = prepare(instance, kwargs, options)
    return prepared._replace(request=prepared.request._replace(stream=True))


def _count(obj: Any, name: str) -> int:
    return count(obj, name, "usage.anthropic")


@usage_reader
def usage_from(usage: Any) -> Usage | None:
    """Partition an Anthropic ``usage`` object (Message.usage, or merged stream usage).

    With ``iterations`` (server-side compaction, tool loops, advisor and fallback passes) every entry is one
    billed model pass and the top-level counts describe only the last one: the call's usage is their sum.
    ``output_tokens_details.thinking_tokens``, where sent, splits thinking out of ``output_tokens`` as
    ``reasoning``; without it thinking stays in ``output`` (the total is the same either way).
    """
    if usage is None:
        return None
    iterations = field(usage, "iterations")
    passes = iterations if isinstance(iterations, (list, tuple)) and iterations else (usage,)
    inputs = cache_reads = cache_writes = write_1h = outputs = 0
    for one in passes:
        inputs += _count(one, "input_tokens")
        cache_reads += _count(one, "cache_read_input_tokens")
        written = _count(one, "cache_creation_input_tokens")
        cache_writes += written
        split = field(one, "cache_creation")
        write_1h += min(_count(split, "ephemeral_1h_input_tokens"), written) if split is not None else 0
        outputs += _count(one, "output_tokens")
    details = field(usage, "output_tokens_details")
    thinking = min(_count(details, "thinking_tokens"), outputs) if details is not None else 0
    searches = field(usage, "server_tool_use")
    return Usage(
        input=inputs,
        cache_read=cache_reads,
        cache_write=cache_writes,
        output=outputs - thinking,
        reasoning=thinking,
        cache_write_1h=write_1h,
        web_search_requests=_count(searches, "web_search_requests") if searches is not None else 0,
    )


_str = text_or_none


def _text_of(content: Any) -> str | None:
    if not isinstance(content, (list, tuple)):
        return None
    texts = [t for block in content if field(block, "type") == "text" and isinstance(t := field(block, "text"), str)]
    return "".join(texts)


def served_tier(usage: Any) -> str | None:
    """The tier label of a usage object: ``service_tier`` (standard, priority, batch), fast mode (``speed``) and
    US-only inference (``inference_geo``)."""
    if usage is None:
        return None
    return tier_label(field(usage, "service_tier"), speed=field(usage, "speed"),
                      inference_geo=field(usage, "inference_geo"))


def extract(result: Any, prepared: Prepared) -> ResponseInfo:
    reason = _str(field(result, "stop_reason"))
    reasons = (reason,) if reason else ()
    usage = field(result, "usage")
    return ResponseInfo(
        usage=usage_from(usage),
        service_tier=served_tier(usage),
        response_model=_str(field(result, "model")),
        response_id=_str(field(result, "id")),
        finish_reasons=reasons,
        output_text=capture_output(_text_of(field(result, "content")), reasons) if prepared.capture_content else None,
    )


_DELTA_FIELDS = ("output_tokens", "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                 "cache_creation", "output_tokens_details", "server_tool_use", "iterations", "service_tier", "speed",
                 "inference_geo")
"""Usage fields of ``message_start`` that the cumulative ``message_delta`` replaces when it sends them."""


class MessageAccumulator(StreamAccumulator):
    """Raw stream events: message_start gives id, model and input usage; message_delta's cumulative counts replace."""

    __slots__ = ("model", "response_id", "seen_start", "stop_reason", "text", "usage")

    def __init__(self, prepared: Prepared) -> None:
        self.usage: dict[str, Any] = {}
        self.response_id: str | None = None
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.seen_start = False
        self.text: list[str] | None = [] if prepared.capture_content else None

    def chunk(self, item: Any) -> bool:
        kind = field(item, "type")
        if kind == "message_start":
            message = field(item, "message")
            self.seen_start = True
            self.response_id = _str(field(message, "id"))
            self.model = _str(field(message, "model"))
            usage = field(message, "usage")
            if usage is not None:
                for name in _DELTA_FIELDS:
                    self.usage[name] = field(usage, name)
        elif kind == "message_delta":
            usage = field(item, "usage")
            for name in _DELTA_FIELDS:
                value = field(usage, name)
                if value is not None:
                    self.usage[name] = value  # cumulative: replaces, never adds
            self.stop_reason = _str(field(field(item, "delta"), "stop_reason")) or self.stop_reason
        elif kind == "content_block_delta" and self.text is not None:
            piece = field(field(item, "delta"), "text")
            if isinstance(piece, str):
                self.text.append(piece)
        return False

    def result(self) -> ResponseInfo:
        reasons = (self.stop_reason,) if self.stop_reason else ()
        return ResponseInfo(
            usage=usage_from(self.usage) if self.seen_start else None,
            service_tier=served_tier(self.usage) if self.seen_start else None,
            response_model=self.model,
            response_id=self.response_id,
            finish_reasons=reasons,
            output_text=capture_output("".join(self.text), reasons) if self.text is not None else None,
        )


_types: dict[str, Any] = {}


def _sdk_types() -> dict[str, Any]:
    if not _types:
        import anthropic
        from anthropic._response import BaseAPIResponse
        from anthropic.lib.streaming import AsyncMessageStreamManager, MessageStreamManager

        managers: list[Any] = [MessageStreamManager, AsyncMessageStreamManager]
        try:
            from anthropic.lib.streaming import BetaAsyncMessageStreamManager, BetaMessageStreamManager

            managers += [BetaMessageStreamManager, BetaAsyncMessageStreamManager]
        except ImportError:  # pragma: no cover - older SDKs
            pass
        _types["streams"] = (anthropic.Stream, anthropic.AsyncStream)
        _types["raw"] = BaseAPIResponse
        _types["model"] = anthropic.BaseModel
        _types["managers"] = tuple(managers)
    return _types


def classify(result: Any) -> ResultKind:
    types = _sdk_types()
    return classify_result(result, types["model"], types["streams"], types["raw"], "_is_sse_stream",
                           types["managers"])


def bind_deferred(manager: Any, wrap: RequestWrapper) -> bool:
    """Point a MessageStreamManager's pending request at ``wrap(request)`` (the SDK keeps it name-mangled)."""
    for cls in type(manager).__mro__:
        attribute = f"_{cls.__name__.lstrip('_')}__api_request"
        if attribute in vars(manager):
            setattr(manager, attribute, wrap(vars(manager)[attribute]))
            return True
    _errors.report("anthropic.stream_manager", None, "this anthropic SDK's stream manager is not recognised")
    return False


MESSAGES = Endpoint(prepare, extract, MessageAccumulator, classify, bind_deferred)
STREAM_HELPER = Endpoint(prepare_stream_helper, extract, MessageAccumulator, classify, bind_deferred)

_MODULE = "anthropic.resources.messages.messages"
_BETA = "anthropic.resources.beta.messages.messages"

PATCHES: tuple[Patch, ...] = (
    Patch(_MODULE, "Messages.create", MESSAGES),
    Patch(_MODULE, "Messages.parse", MESSAGES, optional=True),
    Patch(_MODULE, "Messages.stream", STREAM_HELPER),
    Patch(_MODULE, "AsyncMessages.create", MESSAGES, is_async=True),
    Patch(_MODULE, "AsyncMessages.parse", MESSAGES, is_async=True, optional=True),
    Patch(_MODULE, "AsyncMessages.stream", STREAM_HELPER),  # returns a manager synchronously
    Patch(_BETA, "Messages.create", MESSAGES, optional=True),
    Patch(_BETA, "Messages.parse", MESSAGES, optional=True),
    Patch(_BETA, "Messages.stream", STREAM_HELPER, optional=True),
    Patch(_BETA, "AsyncMessages.create", MESSAGES, is_async=True, optional=True),
    Patch(_BETA, "AsyncMessages.parse", MESSAGES, is_async=True, optional=True),
    Patch(_BETA, "AsyncMessages.stream", STREAM_HELPER, optional=True),
)
