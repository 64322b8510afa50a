"""Groq's own SDK: PATCHES for ``chat.completions.create`` (sync, async, streams); the provider is always ``groq``.

The SDK is Stainless-generated like openai's and its responses are OpenAI-shaped, so requests, responses and
usage are read by the openai module's functions. In streams Groq sends usage unasked, in the final chunk's
``x_groq.usage`` (or, when the caller asks with ``stream_options``, in a usage chunk): nothing is injected.
"""

from __future__ import annotations

from typing import Any, Mapping

from ._contract import Endpoint, Options, Patch, Prepared, ResultKind
from ._fields import server_of
from ._stainless import classify_result
from .openai import ChatAccumulator, extract_chat, prepare_request

PROVIDER = "groq"


def _target(instance: Any) -> tuple[str, str | None, int | None]:
    address, port = server_of(getattr(getattr(instance, "_client", None), "base_url", None))
    return PROVIDER, address, port


def prepare_chat(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare_request(instance, kwargs, options, "chat", ("max_completion_tokens", "max_tokens"), False,
                           _target)


_types: dict[str, Any] = {}


def classify(result: Any) -> ResultKind:
    if not _types:
        import groq
        from groq._response import BaseAPIResponse

        _types["streams"] = (groq.Stream, groq.AsyncStream)
        _types["raw"] = BaseAPIResponse
        _types["model"] = groq.BaseModel
    return classify_result(result, _types["model"], _types["streams"], _types["raw"], "_is_sse_stream")


CHAT = Endpoint(prepare_chat, extract_chat, ChatAccumulator, classify)

_MODULE = "groq.resources.chat.completions"

PATCHES: tuple[Patch, ...] = (
    Patch(_MODULE, "Completions.create", CHAT),
    Patch(_MODULE, "AsyncCompletions.create", CHAT, is_async=True),
)
