"""AWS Bedrock through boto3 (``bedrock-runtime``): ``converse``, ``converse_stream``, ``invoke_model`` and
``invoke_model_with_response_stream``.

boto3 builds its client classes at run time, so the one method every client call goes through,
``botocore.client.BaseClient._make_api_call``, is patched; calls to any other AWS service or operation pass
straight through (``prepare`` returns None).

Usage partition:
- Converse (``usage``; streams: the ``metadata`` event): ``inputTokens`` excludes ``cacheReadInputTokens`` and
  ``cacheWriteInputTokens`` when ``totalTokens`` counts them on top (as Bedrock sends), else they are taken out
  of it; ``cacheDetails`` splits writes by TTL (1h priced at its own rate); output = ``outputTokens``.
- invoke_model: the body in the model family's own format: Anthropic (``usage`` as the Messages API), Amazon
  Nova (``usage`` with ``cacheReadInputTokenCount``/``cacheWriteInputTokenCount``); any other family from the
  ``x-amzn-bedrock-input-token-count``/``-output-token-count`` response headers. The body is read once and put
  back as an identical ``StreamingBody``.
- invoke_model_with_response_stream: the ``amazon-bedrock-invocationMetrics`` Bedrock adds to the last chunk of
  every family (``inputTokenCount``, ``outputTokenCount``, cache read and write counts).
"""

from __future__ import annotations

import io
import json
from typing import Any, Mapping

from .._usage import RequestInfo, ResponseInfo, Usage, tier_label
from ._capture import capture_messages, capture_output
from ._contract import Endpoint, Options, Patch, Prepared, ResultKind, StreamAccumulator
from ._fields import count, field, fields_of, int_or_none, number_or_none, server_of, text_or_none, usage_reader
from ._prompt import text_length
from .anthropic import usage_from as anthropic_usage

PROVIDER = "bedrock"
_STAGE = "usage.bedrock"
MEASURED = frozenset({"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"})
STREAMING = frozenset({"ConverseStream", "InvokeModelWithResponseStream"})

_is_bedrock: dict[type, bool] = {}


def _service_is_bedrock(instance: Any) -> bool:
    cls = type(instance)
    known = _is_bedrock.get(cls)
    if known is None:
        known = getattr(getattr(getattr(instance, "meta", None), "service_model", None), "service_name",
                        None) == "bedrock-runtime"
        _is_bedrock[cls] = known
    return known


def _invoke_body(params: Mapping[str, Any]) -> Mapping[str, Any]:
    body = params.get("body")
    if isinstance(body, Mapping):  # already parsed (the wire layer read the request's JSON)
        return body
    if isinstance(body, (bytes, bytearray, str)):
        try:
            parsed = json.loads(body)
            return parsed if isinstance(parsed, dict) else {}
        except ValueError:
            return {}
    return {}


def prepare(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared | None:
    operation = kwargs.get("operation_name")
    if operation not in MEASURED or not _service_is_bedrock(instance):
        return None
    params = kwargs.get("api_params")
    address, port = server_of(getattr(getattr(instance, "meta", None), "endpoint_url", None))
    return prepare_operation(operation, params if isinstance(params, Mapping) else {}, address, port, options,
                             kwargs)


def prepare_operation(operation: str, params: Mapping[str, Any], address: str | None, port: int | None,
                      options: Options, kwargs: Mapping[str, Any]) -> Prepared:
    """A runtime operation (``Converse``, ``InvokeModel``, ...) with botocore's parameters (``modelId``, and the
    Converse fields or the invoke ``body``); also what the wire layer reads from a request it sees."""
    model = params.get("modelId")
    if operation.startswith("Converse"):
        config = fields_of(params.get("inferenceConfig"))
        max_tokens, temperature, top_p = config.get("maxTokens"), config.get("temperature"), config.get("topP")
        messages, system = params.get("messages"), params.get("system")
    else:
        body = _invoke_body(params)
        max_tokens = body.get("max_tokens", body.get("max_gen_len", field(body.get("inferenceConfig"),
                                                                           "max_new_tokens")))
        temperature, top_p = body.get("temperature"), body.get("top_p")
        messages, system = body.get("messages", body.get("prompt")), body.get("system")
    request = RequestInfo(
        provider=PROVIDER,
        operation="chat",
        request_model=model if isinstance(model, str) else "",
        stream=operation in STREAMING,
        server_address=address,
        server_port=port,
        max_tokens=int_or_none(max_tokens),
        temperature=number_or_none(temperature),
        top_p=number_or_none(top_p),
        input_chars=text_length(messages) + text_length(system) if options.measure_prompt else 0,
        input_messages=len(messages) if isinstance(messages, (list, tuple)) else int(messages is not None),
        captured_input=capture_messages(messages, system) if options.capture_content else None,
    )
    return Prepared(request, kwargs, capture_content=options.capture_content)


def _count(obj: Any, name: str) -> int:
    return count(obj, name, _STAGE)


@usage_reader
def converse_usage(usage: Any) -> Usage | None:
    """Partition Converse ``usage`` (see the module docstring)."""
    if usage is None:
        return None
    values = fields_of(usage)
    reported_input = _count(values, "inputTokens")
    output = _count(values, "outputTokens")
    reads = _count(values, "cacheReadInputTokens")
    writes = _count(values, "cacheWriteInputTokens")
    total = int_or_none(values.get("totalTokens"))
    uncached = reported_input
    if total is not None and total == reported_input + output and reads + writes <= reported_input:
        uncached = reported_input - reads - writes  # the total says the cached tokens are inside inputTokens
    write_1h = sum(_count(detail, "inputTokens") for detail in values.get("cacheDetails") or ()
                   if field(detail, "ttl") == "1h")
    return Usage(input=uncached, cache_read=reads, cache_write=writes, output=output,
                 cache_write_1h=min(write_1h, writes))


@usage_reader
def metrics_usage(metrics: Any) -> Usage | None:
    """Partition ``amazon-bedrock-invocationMetrics`` (or Nova's ``usage``): input excludes the cache counts."""
    if metrics is None:
        return None
    values = fields_of(metrics)
    return Usage(input=_count(values, "inputTokenCount") or _count(values, "inputTokens"),
                 cache_read=_count(values, "cacheReadInputTokenCount"),
                 cache_write=_count(values, "cacheWriteInputTokenCount"),
                 output=_count(values, "outputTokenCount") or _count(values, "outputTokens"))


def _header_usage(result: Mapping[str, Any]) -> Usage | None:
    headers = fields_of(field(result.get("ResponseMetadata"), "HTTPHeaders"))
    inputs, outputs = headers.get("x-amzn-bedrock-input-token-count"), headers.get("x-amzn-bedrock-output-token-count")
    if inputs is None and outputs is None:
        return None
    try:
        return Usage(input=max(int(inputs or 0), 0), output=max(int(outputs or 0), 0))
    except ValueError:
        return None


def _converse_text(output: Any) -> str | None:
    content = field(field(output, "message"), "content")
    if not isinstance(content, (list, tuple)):
        return None
    return "".join(t for block in content if isinstance(t := field(block, "text"), str))


def _extract_converse(result: Mapping[str, Any], prepared: Prepared) -> ResponseInfo:
    reason = text_or_none(result.get("stopReason"))
    reasons = (reason,) if reason else ()
    return ResponseInfo(
        usage=converse_usage(result.get("usage")),
        service_tier=served_tier(result.get("serviceTier")),
        response_id=text_or_none(field(result.get("ResponseMetadata"), "RequestId")),
        finish_reasons=reasons,
        output_text=capture_output(_converse_text(result.get("output")), reasons)
        if prepared.capture_content else None,
    )


def served_tier(tier: Any) -> str | None:
    """The tier label of Converse's ``serviceTier`` ({"type": "default" | "priority" | "flex" | "reserved"})."""
    kind = field(tier, "type") if tier is not None else None
    return tier_label(kind) if kind is not None else None


def _reread_body(result: dict[str, Any]) -> bytes:
    """Read an invoke_model body and give the caller an identical, unread one in its place."""
    from botocore.response import StreamingBody

    data = result["body"].read()
    result["body"] = StreamingBody(io.BytesIO(data), len(data))
    return bytes(data)


def _extract_invoke(result: dict[str, Any], prepared: Prepared) -> ResponseInfo:
    try:
        body = json.loads(_reread_body(result))
    except ValueError:
        body = None
    return invoke_response(body if isinstance(body, dict) else {}, result)


def invoke_response(body: Mapping[str, Any], result: Mapping[str, Any]) -> ResponseInfo:
    """An InvokeModel answer: its JSON ``body`` (the model family's own shape) and, for the token-count headers,
    ``result["ResponseMetadata"]["HTTPHeaders"]``."""
    family_usage = body.get("usage")
    usage: Usage | None
    if family_usage is not None and "input_tokens" in fields_of(family_usage):  # Anthropic Messages
        usage = anthropic_usage(family_usage)
    elif family_usage is not None:  # Amazon Nova
        usage = metrics_usage(family_usage)
    else:
        usage = _header_usage(result)
    reason = text_or_none(body.get("stop_reason", body.get("stopReason")))
    reasons = (reason,) if reason else ()
    return ResponseInfo(
        usage=usage,
        response_model=text_or_none(body.get("model")),
        response_id=text_or_none(body.get("id")) or text_or_none(field(result.get("ResponseMetadata"),
                                                                       "RequestId")),
        finish_reasons=reasons,
        service_tier=tier_label(tier) if isinstance(tier := result.get("serviceTier"), str) else None,
    )


def extract(result: Any, prepared: Prepared) -> ResponseInfo:
    if "usage" in result or "output" in result:
        return _extract_converse(result, prepared)
    return _extract_invoke(result, prepared)


class EventAccumulator(StreamAccumulator):
    """Converse stream events (``metadata`` has usage, ``messageStop`` the reason) and invoke stream ``chunk``
    events (JSON bytes; the last one has ``amazon-bedrock-invocationMetrics``)."""

    __slots__ = ("response_id", "stop", "text", "tier", "usage")

    def __init__(self, prepared: Prepared) -> None:
        self.usage: Usage | None = None
        self.tier: str | None = None
        self.stop: str | None = None
        self.response_id: str | None = None
        self.text: list[str] | None = [] if prepared.capture_content else None

    def chunk(self, item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        if "chunk" in item:
            self._invoke_chunk(field(item["chunk"], "bytes"))
        elif "metadata" in item:
            self.usage = converse_usage(field(item["metadata"], "usage"))
            self.tier = served_tier(field(item["metadata"], "serviceTier"))
        elif "messageStop" in item:
            self.stop = text_or_none(field(item["messageStop"], "stopReason"))
        elif "ResponseMetadata" in item:  # the response envelope, before the first event
            self.response_id = text_or_none(field(item["ResponseMetadata"], "RequestId"))
        elif "contentBlockDelta" in item and self.text is not None:
            piece = field(field(item["contentBlockDelta"], "delta"), "text")
            if isinstance(piece, str):
                self.text.append(piece)
        return False

    def _invoke_chunk(self, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray)) or (b"invocationMetrics" not in data and b"message" not in data):
            return  # a content delta: nothing to read (and no JSON parse per chunk)
        event = json.loads(data)
        if not isinstance(event, dict):
            return
        metrics = event.get("amazon-bedrock-invocationMetrics")
        if metrics is not None:
            self.usage = metrics_usage(metrics)
        message = event.get("message")
        if isinstance(message, dict):
            self.response_id = text_or_none(message.get("id")) or self.response_id
        reason = field(event.get("delta"), "stop_reason")
        if reason:
            self.stop = text_or_none(reason)

    def result(self) -> ResponseInfo:
        reasons = (self.stop,) if self.stop else ()
        return ResponseInfo(usage=self.usage, response_id=self.response_id, finish_reasons=reasons,
                            service_tier=self.tier,
                            output_text=capture_output("".join(self.text), reasons) if self.text is not None
                            else None)


def classify(result: Any) -> ResultKind:
    if not isinstance(result, dict):
        return "opaque"
    if "stream" in result:
        return "stream_in_mapping"
    body = result.get("body")
    if body is not None and type(body).__name__ == "EventStream":
        return "stream_in_mapping"
    return "value"


RUNTIME = Endpoint(prepare, extract, EventAccumulator, classify, positional=("operation_name", "api_params"),
                   stream_key=("stream", "body"))

PATCHES: tuple[Patch, ...] = (
    Patch("botocore.client", "BaseClient._make_api_call", RUNTIME),
)
