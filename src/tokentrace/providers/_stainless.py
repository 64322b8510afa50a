"""Helpers for the Stainless-generated SDKs (openai, anthropic): raw and streaming responses, result kinds, and
where a client sends its calls (its base URL, read once per URL)."""

from __future__ import annotations

from typing import Any, Mapping

from .._registry import AZURE_OPENAI, OPENAI_COMPATIBLE, provider_for_host
from ._contract import ResultKind
from ._fields import server_of

RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"


def streaming_response_requested(kwargs: Mapping[str, Any]) -> bool:
    """True for the Stainless SDKs' ``with_streaming_response`` calls (openai, anthropic)."""
    headers = kwargs.get("extra_headers")
    return headers is not None and isinstance(headers, Mapping) and headers.get(RAW_RESPONSE_HEADER) == "stream"


def classify_result(result: Any, model: type, streams: tuple[type, ...], raw: type, raw_is_stream: str,
                    managers: tuple[type, ...] = ()) -> ResultKind:
    """How to treat what a Stainless-generated SDK (openai, anthropic) returned."""
    if isinstance(result, model):
        return "value"
    if isinstance(result, streams):
        return "stream"
    if managers and isinstance(result, managers):
        return "deferred_stream"
    if isinstance(result, raw):
        return "raw_stream" if getattr(result, raw_is_stream, False) else "raw"
    return "opaque"


def provider_for_url(url: str) -> tuple[str, str | None, int | None]:
    """(provider id, server address, server port) for a client's base URL."""
    address, port = server_of(url)
    host = (address or "").lower()
    return provider_for_host(host), host or None, port


_client_cache: dict[int, tuple[Any, tuple[str, str | None, int | None]]] = {}


def _base_url_of(client: Any) -> Any:
    """A client's base URL: the value it stores (openai 3 reads it through two properties and an import on every
    access, which a call should not pay), else what its properties say."""
    values = getattr(client, "__dict__", None)
    if values is not None:
        stored = values.get("_configured_base_url") or values.get("_base_url")
        if stored is not None:
            return stored
    return getattr(client, "_base_url", None) or getattr(client, "base_url", None)


def client_path(instance: Any) -> str:
    """The path of the client's base URL (``/novita/v3/openai``), or empty."""
    base_url = _base_url_of(getattr(instance, "_client", None))
    return str(getattr(base_url, "path", "") or "")


def client_target(instance: Any) -> tuple[str, str | None, int | None]:
    client = getattr(instance, "_client", None)
    base_url = _base_url_of(client)
    cached = _client_cache.get(id(base_url))
    if cached is not None and cached[0] is base_url:
        return cached[1]
    target = provider_for_url(str(base_url)) if base_url is not None else (OPENAI_COMPATIBLE, None, None)
    if target[0] == OPENAI_COMPATIBLE and "azure" in type(client).__name__.lower():
        target = (AZURE_OPENAI, target[1], target[2])
    if len(_client_cache) > 1024:
        _client_cache.clear()
    _client_cache[id(base_url)] = (base_url, target)
    return target
