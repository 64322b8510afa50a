"""Mistral's own SDK (mistralai): PATCHES for ``chat.complete``/``chat.stream``, their async variants and
``embeddings.create``; the provider is always ``mistral``.

Responses are OpenAI-shaped (``usage.prompt_tokens``/``completion_tokens``/``total_tokens``, cached tokens in
``prompt_tokens_details`` where sent), so the openai module's readers apply. A stream is a sequence of events whose
``data`` is a chunk; the last chunk (the one with a finish reason) carries usage, unasked.
"""

from __future__ import annotations

from typing import Any, Mapping

from ._contract import Endpoint, Options, Patch, Prepared, ResultKind
from ._fields import server_of
from .openai import ChatAccumulator, extract_chat, prepare_request

PROVIDER = "mistral"


def _target(instance: Any) -> tuple[str, str | None, int | None]:
    try:
        url, _variables = instance.sdk_configuration.get_server_details()
    except Exception:
        url = None
    address, port = server_of(url)
    return PROVIDER, address, port


def prepare_chat(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare_request(instance, kwargs, options, "chat", ("max_tokens",), False, _target)


def prepare_stream(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    prepared = prepare_chat(instance, kwargs, options)
    return prepared._replace(request=prepared.request._replace(stream=True))


def prepare_embeddings(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare_request(instance, kwargs, options, "embeddings", (), False, _target)


class EventAccumulator(ChatAccumulator):
    """Mistral stream events: each event's ``data`` is an OpenAI-shaped chunk."""

    __slots__ = ()

    def chunk(self, item: Any) -> bool:
        data = getattr(item, "data", None)
        super().chunk(item if data is None else data)
        return False


_types: dict[str, Any] = {}


def classify(result: Any) -> ResultKind:
    if not _types:
        from mistralai.client.types import BaseModel
        from mistralai.client.utils.eventstreaming import EventStream, EventStreamAsync

        _types["model"] = BaseModel
        _types["streams"] = (EventStream, EventStreamAsync)
    if isinstance(result, _types["model"]):
        return "value"
    if isinstance(result, _types["streams"]):
        return "stream"
    return "opaque"


CHAT = Endpoint(prepare_chat, extract_chat, EventAccumulator, classify)
STREAM = Endpoint(prepare_stream, extract_chat, EventAccumulator, classify)
EMBEDDINGS = Endpoint(prepare_embeddings, extract_chat, EventAccumulator, classify)

# each method and its ``_async`` twin, on the same class
PATCHES: tuple[Patch, ...] = tuple(
    Patch(f"mistralai.client.{module}", f"{method}{suffix}", endpoint, is_async=bool(suffix))
    for module, method, endpoint in (("chat", "Chat.complete", CHAT), ("chat", "Chat.stream", STREAM),
                                     ("embeddings", "Embeddings.create", EMBEDDINGS))
    for suffix in ("", "_async"))
