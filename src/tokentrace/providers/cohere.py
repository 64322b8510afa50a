"""Cohere's SDK, API v2 (``ClientV2``/``AsyncClientV2``): PATCHES for ``chat``, ``chat_stream`` and ``embed``.

Usage partition: ``usage.billed_units`` is what Cohere bills (input = ``billed_units.input_tokens``, output =
``billed_units.output_tokens``); ``usage.tokens`` counts the tokens the model processed, prompt template
included, which are not the bill, so it is never used. Cohere bills no separate cache rate, so cache and
reasoning are 0. Streams: ``message-start`` gives the id, ``message-end`` the finish reason and usage.
Embeddings: ``meta.billed_units.input_tokens``.
"""

from __future__ import annotations

from typing import Any, Mapping

from .._usage import RequestInfo, ResponseInfo, Usage
from ._capture import capture_messages, capture_output
from ._contract import Endpoint, Options, Patch, Prepared, StreamAccumulator, client_pair
from ._fields import count, field, int_or_none, number_or_none, server_of, text_or_none, usage_reader
from ._kinds import classifier
from ._prompt import text_length

PROVIDER = "cohere"


def _prepare(instance: Any, kwargs: Mapping[str, Any], options: Options, operation: str, stream: bool) -> Prepared:
    address, port = server_of(_base_url(instance))
    messages = kwargs.get("messages", kwargs.get("texts"))
    model = kwargs.get("model")
    request = RequestInfo(
        provider=PROVIDER,
        operation=operation,
        request_model=model if isinstance(model, str) else "",
        stream=stream,
        server_address=address,
        server_port=port,
        max_tokens=int_or_none(kwargs.get("max_tokens")),
        temperature=number_or_none(kwargs.get("temperature")),
        top_p=number_or_none(kwargs.get("p")),
        input_chars=text_length(messages) if options.measure_prompt else 0,
        input_messages=len(messages) if isinstance(messages, (list, tuple)) else 0,
        captured_input=capture_messages(messages) if options.capture_content and operation == "chat" else None,
    )
    return Prepared(request, kwargs, capture_content=options.capture_content)


def _base_url(instance: Any) -> Any:
    """The client's base URL (kept by its client wrapper: on the raw client in newer SDKs, on the client before)."""
    for owner in (getattr(instance, "_raw_client", None), instance):
        wrapper = getattr(owner, "_client_wrapper", None)
        if wrapper is not None:
            get = getattr(wrapper, "get_base_url", None)
            return get() if callable(get) else getattr(wrapper, "_base_url", None)
    return None


def prepare_chat(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return _prepare(instance, kwargs, options, "chat", False)


def prepare_stream(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return _prepare(instance, kwargs, options, "chat", True)


def prepare_embed(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return _prepare(instance, kwargs, options, "embeddings", False)


@usage_reader
def usage_from(billed_units: Any) -> Usage | None:
    """Partition Cohere's ``billed_units`` (chat ``usage.billed_units``, embed ``meta.billed_units``)."""
    if billed_units is None:
        return None
    return Usage(input=count(billed_units, "input_tokens", "usage.cohere"),
                 output=count(billed_units, "output_tokens", "usage.cohere"))


def _message_text(message: Any) -> str | None:
    content = field(message, "content")
    if not isinstance(content, (list, tuple)):
        return None
    return "".join(t for part in content if isinstance(t := field(part, "text"), str))


def extract_chat(result: Any, prepared: Prepared) -> ResponseInfo:
    reason = text_or_none(getattr(field(result, "finish_reason"), "value", field(result, "finish_reason")))
    reasons = (reason,) if reason else ()
    return ResponseInfo(
        usage=usage_from(field(field(result, "usage"), "billed_units")),
        response_id=text_or_none(field(result, "id")),
        finish_reasons=reasons,
        output_text=capture_output(_message_text(field(result, "message")), reasons)
        if prepared.capture_content else None,
    )


def extract_embed(result: Any, prepared: Prepared) -> ResponseInfo:
    return ResponseInfo(usage=usage_from(field(field(result, "meta"), "billed_units")),
                        response_id=text_or_none(field(result, "id")))


class EventAccumulator(StreamAccumulator):
    """v2 stream events: ``message-start`` (id), ``content-delta`` (text), ``message-end`` (finish, usage)."""

    __slots__ = ("billed", "finish", "response_id", "text")

    def __init__(self, prepared: Prepared) -> None:
        self.response_id: str | None = None
        self.finish: str | None = None
        self.billed: Any = None
        self.text: list[str] | None = [] if prepared.capture_content else None

    def chunk(self, item: Any) -> bool:
        kind = field(item, "type")
        if kind == "message-start":
            self.response_id = text_or_none(field(item, "id"))
        elif kind == "message-end":
            delta = field(item, "delta")
            self.finish = text_or_none(field(delta, "finish_reason"))
            self.billed = field(field(delta, "usage"), "billed_units")
        elif kind == "content-delta" and self.text is not None:
            piece = field(field(field(field(item, "delta"), "message"), "content"), "text")
            if isinstance(piece, str):
                self.text.append(piece)
        return False

    def result(self) -> ResponseInfo:
        reasons = (self.finish,) if self.finish else ()
        return ResponseInfo(usage=usage_from(self.billed), response_id=self.response_id, finish_reasons=reasons,
                            output_text=capture_output("".join(self.text), reasons) if self.text is not None
                            else None)


classify = classifier("pydantic", "BaseModel")


CHAT = Endpoint(prepare_chat, extract_chat, EventAccumulator, classify)
CHAT_STREAM = Endpoint(prepare_stream, extract_chat, EventAccumulator, classify)
EMBED = Endpoint(prepare_embed, extract_embed, EventAccumulator, classify)

PATCHES: tuple[Patch, ...] = client_pair(
    "cohere.v2.client", "V2Client", "AsyncV2Client", {"chat": CHAT, "chat_stream": CHAT_STREAM, "embed": EMBED},
    async_returns_at_once=("chat_stream",))  # the async chat_stream is an async generator
