"""Google Gen AI SDK (Gemini API, and Vertex AI with ``vertexai=True``: provider ``vertex_ai``): PATCHES and pure
functions SDK object -> Usage.

One span per HTTP request: the SDK's private per-request methods are patched when present (automatic
function calling and continuation make several requests inside one public call), else the public ones.
Usage partition from ``usage_metadata``: input = prompt - cached + tool-use prompt, cache_read = cached,
output = candidates, reasoning = thoughts (billed as output). In streams the last chunk carrying
``usage_metadata`` wins; chunks are never summed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._support import errors as _errors
from .._usage import RequestInfo, ResponseInfo, Usage, asked_tier, tier_label
from ._capture import capture_messages, capture_output
from ._contract import Endpoint, Options, Patch, Prepared, StreamAccumulator
from ._fields import count, field, int_or_none, number_or_none, server_of, text_or_none, usage_reader
from ._kinds import classifier
from ._prompt import text_length

PROVIDER = "google"
VERTEX_PROVIDER = "vertex_ai"


def _model_name(model: Any) -> str:
    if not isinstance(model, str):
        return ""
    return model.rsplit("/", 1)[-1] if model.startswith(("models/", "publishers/", "projects/")) else model


def prepare(instance: Any, kwargs: Mapping[str, Any], options: Options, *, operation: str = "generate_content",
            stream: bool = False) -> Prepared:
    api_client = getattr(instance, "_api_client", None)
    http_options = getattr(api_client, "_http_options", None)
    address, port = server_of(getattr(http_options, "base_url", None))
    config = kwargs.get("config")
    contents = kwargs.get("contents")
    request = RequestInfo(
        provider=VERTEX_PROVIDER if getattr(api_client, "vertexai", False) is True else PROVIDER,
        operation=operation,
        request_model=_model_name(kwargs.get("model")),
        stream=stream,
        server_address=address,
        server_port=port,
        max_tokens=int_or_none(field(config, "max_output_tokens")),
        temperature=number_or_none(field(config, "temperature")),
        top_p=number_or_none(field(config, "top_p")),
        input_chars=text_length(contents) + text_length(field(config, "system_instruction"))
        if options.measure_prompt else 0,
        input_messages=len(contents) if isinstance(contents, (list, tuple)) else 1,
        captured_input=capture_messages(contents, field(config, "system_instruction"))
        if options.capture_content else None,
    )
    tier = field(config, "service_tier") if config is not None else None
    return Prepared(request, kwargs, capture_content=options.capture_content,
                    asked_tier=asked_tier(tier) if tier is not None else None)


def prepare_generate(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare(instance, kwargs, options)


def prepare_stream(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare(instance, kwargs, options, stream=True)


def prepare_embed(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare(instance, kwargs, options, operation="embeddings")


def _count(obj: Any, name: str) -> int:
    return count(obj, name, "usage.google")


@usage_reader
def usage_from(meta: Any) -> Usage | None:
    """Partition Gemini ``usage_metadata``."""
    if meta is None:
        return None
    prompt = _count(meta, "prompt_token_count")
    cached = _count(meta, "cached_content_token_count")
    if cached > prompt:
        _errors.report("usage.google", None, "cached_content_token_count exceeds prompt_token_count")
        cached = prompt
    inputs = prompt - cached + _count(meta, "tool_use_prompt_token_count")
    output = _count(meta, "candidates_token_count")
    prompt_details, candidates_details = field(meta, "prompt_tokens_details"), field(meta, "candidates_tokens_details")
    cache_details = field(meta, "cache_tokens_details")  # the cached share of each prompt modality
    cached_audio = min(_modality(cache_details, "AUDIO"), cached)
    return Usage(
        input=inputs,
        cache_read=cached,
        output=output,
        reasoning=_count(meta, "thoughts_token_count"),
        input_audio=min(max(_modality(prompt_details, "AUDIO") - cached_audio, 0), inputs),
        output_audio=min(_modality(candidates_details, "AUDIO"), output),
        input_image=min(max(_modality(prompt_details, "IMAGE") - _modality(cache_details, "IMAGE"), 0), inputs),
        output_image=min(_modality(candidates_details, "IMAGE"), output),
        cache_read_audio=cached_audio,
    )


def _modality(details: Any, modality: str) -> int:
    """One modality's tokens (``AUDIO``, ``IMAGE``) in a per-modality breakdown (``[{modality, token_count}]``)."""
    if not isinstance(details, (list, tuple)):
        return 0
    return sum(_count(d, "token_count") for d in details
               if str(getattr(field(d, "modality"), "value", field(d, "modality"))).upper() == modality)


_str = text_or_none


def _finish_reasons(candidates: Any) -> tuple[str, ...]:
    if not isinstance(candidates, (list, tuple)):
        return ()
    reasons = []
    for candidate in candidates:
        reason = field(candidate, "finish_reason")
        reason = getattr(reason, "value", reason)
        if isinstance(reason, str) and reason:
            reasons.append(reason)
    return tuple(reasons)


def _candidate_text(candidates: Any) -> str | None:
    if not isinstance(candidates, (list, tuple)) or not candidates:
        return None
    parts = field(field(candidates[0], "content"), "parts") or ()
    return "".join(t for p in parts if not field(p, "thought") and isinstance(t := field(p, "text"), str))


TRAFFIC_TIERS = {"ON_DEMAND": "standard", "ON_DEMAND_FLEX": "flex", "ON_DEMAND_PRIORITY": "priority",
                 "PROVISIONED_THROUGHPUT": "provisioned_throughput", "ON_DEMAND_OFFPEAK": "offpeak"}
"""Vertex AI's ``usageMetadata.trafficType`` as the tier it bills (Vertex AI sends no ``serviceTier``): Flex PayGo is
billed 50% under Standard PayGo; provisioned throughput by its commitment."""


def served_tier(meta: Any) -> str | None:
    """The tier label of ``usage_metadata``: the Gemini API's ``service_tier`` (standard, flex, priority), else
    Vertex AI's ``traffic_type`` (``ON_DEMAND_FLEX`` -> flex)."""
    if meta is None:
        return None
    tier = field(meta, "service_tier")
    if tier is None:
        traffic = field(meta, "traffic_type")
        traffic = getattr(traffic, "value", traffic)
        tier = TRAFFIC_TIERS.get(traffic.upper()) if isinstance(traffic, str) else None
    return tier_label(tier) if tier is not None else None


def extract(result: Any, prepared: Prepared) -> ResponseInfo:
    candidates = field(result, "candidates")
    reasons = _finish_reasons(candidates)
    meta = field(result, "usage_metadata")
    return ResponseInfo(
        usage=usage_from(meta),
        service_tier=served_tier(meta) or prepared.asked_tier,
        response_model=_str(field(result, "model_version")),
        response_id=_str(field(result, "response_id")),
        finish_reasons=reasons,
        output_text=capture_output(_candidate_text(candidates), reasons) if prepared.capture_content else None,
    )


@usage_reader
def _embedding_usage(result: Any) -> Usage | None:
    meta = field(result, "usage_metadata")
    if meta is not None:
        return Usage(input=_count(meta, "prompt_token_count"))
    # Vertex AI reports per-embedding statistics instead
    counts = [_count(field(e, "statistics"), "token_count") for e in field(result, "embeddings") or ()]
    return Usage(input=sum(counts)) if counts else None


def extract_embeddings(result: Any, prepared: Prepared) -> ResponseInfo:
    return ResponseInfo(usage=_embedding_usage(result))


class ChunkAccumulator(StreamAccumulator):
    """The last chunk carrying usage_metadata wins; finish reasons and model come from the chunks seen."""

    __slots__ = ("asked_tier", "finish", "meta", "model", "response_id", "text")

    def __init__(self, prepared: Prepared) -> None:
        self.asked_tier = prepared.asked_tier
        self.meta: Any = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.finish: tuple[str, ...] = ()
        self.text: list[str] | None = [] if prepared.capture_content else None

    def chunk(self, item: Any) -> bool:
        meta = field(item, "usage_metadata")
        if meta is not None:
            self.meta = meta
        if self.model is None:
            self.model = _str(field(item, "model_version"))
            self.response_id = _str(field(item, "response_id"))
        candidates = field(item, "candidates")
        reasons = _finish_reasons(candidates)
        if reasons:
            self.finish = reasons
        if self.text is not None:
            self.text.append(_candidate_text(candidates) or "")
        return False

    def result(self) -> ResponseInfo:
        return ResponseInfo(usage=usage_from(self.meta), response_model=self.model, response_id=self.response_id,
                            service_tier=served_tier(self.meta) or self.asked_tier,
                            finish_reasons=self.finish,
                            output_text=capture_output("".join(self.text), self.finish) if self.text is not None
                            else None)


classify = classifier("google.genai._common", "BaseModel")


GENERATE = Endpoint(prepare_generate, extract, ChunkAccumulator, classify)
GENERATE_STREAM = Endpoint(prepare_stream, extract, ChunkAccumulator, classify)
EMBED = Endpoint(prepare_embed, extract_embeddings, ChunkAccumulator, classify)

_MODULE = "google.genai.models"

PATCHES: tuple[Patch, ...] = (
    Patch(_MODULE, "Models._generate_content", GENERATE, fallback="Models.generate_content"),
    Patch(_MODULE, "Models._generate_content_stream", GENERATE_STREAM, fallback="Models.generate_content_stream"),
    Patch(_MODULE, "Models._embed_content", EMBED, fallback="Models.embed_content"),
    Patch(_MODULE, "AsyncModels._generate_content", GENERATE, is_async=True, fallback="AsyncModels.generate_content"),
    Patch(_MODULE, "AsyncModels._generate_content_stream", GENERATE_STREAM, is_async=True,
          fallback="AsyncModels.generate_content_stream"),
    Patch(_MODULE, "AsyncModels._embed_content", EMBED, is_async=True, fallback="AsyncModels.embed_content"),
)
