"""Helpers for the Stainless-generated SDKs (openai, anthropic): raw and streaming responses, result kinds."""

from __future__ import annotations

from typing import Any, Mapping

from ._contract import ResultKind

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
