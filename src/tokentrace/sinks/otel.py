"""OpenTelemetry sink: one CLIENT span per call with GenAI attributes and cost, and the gen_ai.client.* metrics.

With no providers given and none set globally (the API's proxies), there is nothing to record into: the sink
skips building spans and metric records until the application sets a global provider (checked per call, a
module attribute read), so ``instrument()`` without an OpenTelemetry SDK pays nothing for it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.trace import ProxyTracerProvider, SpanKind, Status, StatusCode, set_span_in_context

from .._registry import AZURE_OPENAI, semconv_name
from .._usage import RequestInfo, UsageRecord
from .._version import __version__
from . import Sink
from . import semconv as sc
from .cardinality import LabelGuard
from .semconv import (
    CONTENT_EVENT,
    COST_FEES_USD,
    COST_TOKENS_USD,
    COST_USD,
    ERROR_TYPE,
    INPUT_MESSAGES,
    OPENAI_RESPONSE_SERVICE_TIER,
    OUTPUT_MESSAGES,
    PRICE_SOURCE,
    REASONING_TOKENS,
    RESPONSE_FINISH_REASONS,
    RESPONSE_ID,
    RESPONSE_MODEL,
    RESPONSE_TIME_TO_FIRST_CHUNK,
    SERVICE_TIER,
    TIME_TO_FIRST_TOKEN,
    USAGE_CACHE_CREATION_INPUT_TOKENS,
    USAGE_CACHE_READ_INPUT_TOKENS,
    USAGE_CACHE_WRITE_INPUT_TOKENS,
    USAGE_COST,
    USAGE_INPUT_TOKENS,
    USAGE_OUTPUT_TOKENS,
    USAGE_REASONING_OUTPUT_TOKENS,
    USAGE_REPORTED,
)

_ALIASES = sc.ATTRIBUTION_ALIASES
_OPENAI_PROVIDERS = frozenset({"openai", AZURE_OPENAI})
"""Providers whose served tier is ``openai.response.service_tier`` (the semantic conventions' name)."""
_CLIENT = SpanKind.CLIENT
"""Bound once: an enum member read through its class costs ~90 ns per call on Python 3.11."""


class OTelSink(Sink):
    name = "otel"
    end_needs_start = True  # start() returns None only when neither a tracer nor a meter provider exists

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None,
                 guard: LabelGuard | None = None) -> None:
        mode = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip().lower()
        self._content_on_span = mode != "event_only"
        """Captured messages as span attributes (the default; not with EVENT_ONLY)."""
        self._content_as_event = mode in ("event_only", "span_and_event")
        """Captured messages on a ``gen_ai.client.inference.operation.details`` event of the span."""
        opted_in = os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "")
        self._cost_trio = sc.COST_TRIO_OPT_IN in (part.strip() for part in opted_in.split(","))
        """The proposed ``gen_ai.usage.cost.*`` trio as well (not yet in a semconv release)."""
        self._providers = tuple(p for p in (tracer_provider, meter_provider) if p is not None)
        self._tracing = _global_provider(trace, "_TRACER_PROVIDER", "OTEL_PYTHON_TRACER_PROVIDER",
                                         trace.get_tracer_provider, ProxyTracerProvider) \
            if tracer_provider is None else _always
        """None while there is no tracer provider to record into."""
        self._metering = _global_provider(_metrics_internal(), "_METER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER",
                                          otel_metrics.get_meter_provider, _proxy_meter_provider_type()) \
            if meter_provider is None else _always
        self.guard = guard or LabelGuard()
        self._shapes: dict[tuple[Any, ...], _Shape] = {}
        self.tracer = trace.get_tracer("tokentrace", __version__, tracer_provider=tracer_provider,
                                       schema_url=f"https://opentelemetry.io/schemas/{sc.SEMCONV_VERSION}")
        meter = otel_metrics.get_meter("tokentrace", __version__, meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(sc.TOKEN_BUCKETS),
        )
        self.duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION, unit="s", description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        self.time_to_first_chunk = meter.create_histogram(
            sc.METRIC_TIME_TO_FIRST_CHUNK, unit="s", description="Time to the first chunk of a streamed response",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )

    def flush(self, timeout: float) -> bool:
        """Push out spans and metrics of the providers tokentrace was given (the global ones are the app's)."""
        done = True
        for provider in self._providers:
            force_flush = getattr(provider, "force_flush", None)
            if force_flush is not None:
                done = bool(force_flush(int(timeout * 1000))) and done
        return done

    def _shape_of(self, request: RequestInfo) -> _Shape:
        """What every call of this request shape shares, built once per shape."""
        key = request[:6]  # provider, operation, request_model, stream, server_address, server_port
        shape = self._shapes.get(key)
        if shape is None:
            if len(self._shapes) > 10_000:
                self._shapes.clear()
            shape = self._shapes[key] = _Shape(request)
        return shape

    def start(self, request: RequestInfo, attribution: Mapping[str, str], started_wall: float) -> Any:
        if self._tracing() is None:
            # no span; the metric attributes still want the request's server (None: nothing to record at all)
            return [None, None, self._shape_of(request)] if self._metering() is not None else None
        shape = self._shape_of(request)
        attributes = shape.span_attributes.copy()  # the SDK copies them too; a dict it was given is never shared
        if request.max_tokens is not None:
            attributes[sc.REQUEST_MAX_TOKENS] = request.max_tokens
        if request.temperature is not None:
            attributes[sc.REQUEST_TEMPERATURE] = request.temperature
        if request.top_p is not None:
            attributes[sc.REQUEST_TOP_P] = request.top_p
        if attribution:
            for key, value in attribution.items():
                attributes[sc.ATTRIBUTE_PREFIX + key] = value
                aliases = _ALIASES.get(key)
                if aliases is not None:
                    for alias in aliases:
                        attributes[alias] = value
        if request.captured_input is not None and self._content_on_span:
            attributes[sc.INPUT_MESSAGES] = request.captured_input
        span = self.tracer.start_span(shape.span_name, kind=_CLIENT, attributes=attributes)
        state = [span, otel_context.attach(set_span_in_context(span)), shape]
        if request.captured_input is not None and self._content_as_event:
            state.append(request.captured_input)
        return state

    def trace_id(self, state: Any) -> str | None:
        if state[0] is None:
            return None
        trace_id = state[0].get_span_context().trace_id
        # 32 lowercase hex digits, as f"{trace_id:032x}" gives, at a third of its cost; 0: the API's invalid span
        return trace_id.to_bytes(16, "big").hex() if trace_id else None

    def detach(self, state: Any) -> None:
        token = state[1]
        if token is not None:
            state[1] = None
            otel_context.detach(token)

    def _metric_attribute_sets(self, shape: _Shape, model: str, error_type: str | None, record: UsageRecord
                               ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(common, input tokens, output tokens) metric attributes of a call, built once per response model and
        error type (the caller's locals, unpacked from ``record``) within its request shape and reused; the rest
        comes from ``record`` when a set is first built."""
        key = (model, error_type)
        sets = shape.metric_sets.get(key)
        if sets is not None:
            return sets
        common: dict[str, Any] = {
            sc.OPERATION_NAME: record.operation,
            sc.PROVIDER_NAME: semconv_name(record.provider),
            sc.REQUEST_MODEL: self.guard.value("model", record.request_model),
            RESPONSE_MODEL: self.guard.value("model", model),
        }
        if shape.server_address:
            common[sc.SERVER_ADDRESS] = shape.server_address
        if shape.server_port:
            common[sc.SERVER_PORT] = shape.server_port
        if error_type:
            common[ERROR_TYPE] = error_type
        sets = (common, {**common, sc.TOKEN_TYPE: "input"}, {**common, sc.TOKEN_TYPE: "output"})
        if len(shape.metric_sets) > 1_000:
            shape.metric_sets.clear()
        shape.metric_sets[key] = sets
        return sets

    def end(self, record: UsageRecord, state: Any) -> None:
        (_, provider, model, _, _, usage, cost, source, latency, _, _, ttft, error_type, response_id, reasons,
         reported, _, _, output_text, _, _, tier, fees, _, _) = record  # one unpacking: each field read is a local
        if reported:
            inp, read, write, out, reasoning = usage[:5]
            all_input, all_output = inp + read + write, out + reasoning
        if self._metering() is not None:
            common, input_attributes, output_attributes = self._metric_attribute_sets(state[2], model, error_type,
                                                                                      record)
            self.duration.record(latency, common)
            if reported:
                self.token_usage.record(all_input, input_attributes)
                self.token_usage.record(all_output, output_attributes)
            if ttft is not None:
                self.time_to_first_chunk.record(ttft, common)
        span = state[0]
        if span is None or not span.is_recording():
            return
        if reported:  # one dict display: the common case costs no per-key stores
            attributes: dict[str, Any] = {
                RESPONSE_MODEL: model, USAGE_INPUT_TOKENS: all_input, USAGE_OUTPUT_TOKENS: all_output,
                USAGE_CACHE_READ_INPUT_TOKENS: read, USAGE_CACHE_CREATION_INPUT_TOKENS: write,
                USAGE_CACHE_WRITE_INPUT_TOKENS: write,
                REASONING_TOKENS: reasoning, USAGE_REASONING_OUTPUT_TOKENS: reasoning,
            }
            if usage[8] or usage[9]:  # audio, of the input and output tokens (priced at its own rates)
                attributes[sc.INPUT_AUDIO_TOKENS] = usage[8]
                attributes[sc.OUTPUT_AUDIO_TOKENS] = usage[9]
            if usage[10] or usage[11]:  # images, likewise
                attributes[sc.INPUT_IMAGE_TOKENS] = usage[10]
                attributes[sc.OUTPUT_IMAGE_TOKENS] = usage[11]
        else:
            attributes = {RESPONSE_MODEL: model, USAGE_REPORTED: False}
        if response_id:
            attributes[RESPONSE_ID] = response_id
        if reasons:
            attributes[RESPONSE_FINISH_REASONS] = reasons  # a tuple: what the SDK keeps
        if cost is not None:
            attributes[COST_USD] = cost
            attributes[USAGE_COST] = cost
            if self._cost_trio:
                attributes[sc.COST_AMOUNT] = cost
                attributes[sc.COST_CURRENCY] = "USD"
                attributes[sc.COST_SOURCE] = source or "tokentrace"
            if fees:  # billed per-request fees (searches) too: the split (else it is all tokens)
                attributes[COST_TOKENS_USD] = cost - fees
                attributes[COST_FEES_USD] = fees
        if source:
            attributes[PRICE_SOURCE] = source
        if tier is not None:
            attributes[OPENAI_RESPONSE_SERVICE_TIER if provider in _OPENAI_PROVIDERS else SERVICE_TIER] = tier
        if ttft is not None:
            attributes[TIME_TO_FIRST_TOKEN] = ttft
            attributes[RESPONSE_TIME_TO_FIRST_CHUNK] = ttft
        if output_text is not None and self._content_on_span:
            attributes[OUTPUT_MESSAGES] = output_text
        if self._content_as_event and (output_text is not None or len(state) > 3):
            messages = {INPUT_MESSAGES: state[3]} if len(state) > 3 else {}
            if output_text is not None:
                messages[OUTPUT_MESSAGES] = output_text
            span.add_event(CONTENT_EVENT, messages)
        if error_type:
            attributes[ERROR_TYPE] = error_type
            span.set_status(Status(StatusCode.ERROR))
        span.set_attributes(attributes)
        span.end()


def _always() -> bool:
    return True


class _Shape:
    """What every call of one request shape (provider, operation, request model, stream, server) shares: the span
    name and start attributes, and the metric attribute sets per response model and error type."""

    __slots__ = ("metric_sets", "server_address", "server_port", "span_attributes", "span_name")

    def __init__(self, request: RequestInfo) -> None:
        provider = semconv_name(request.provider)
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: request.operation,
            sc.PROVIDER_NAME: provider,
            sc.SYSTEM: provider,
            sc.REQUEST_MODEL: request.request_model,
            sc.REQUEST_STREAM: request.stream,
        }
        if request.server_address:
            attributes[sc.SERVER_ADDRESS] = request.server_address
        if request.server_port:
            attributes[sc.SERVER_PORT] = request.server_port
        self.span_name = f"{request.operation} {request.request_model}"
        self.span_attributes = attributes
        self.server_address, self.server_port = request.server_address, request.server_port
        self.metric_sets: dict[tuple[str, str | None], tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}


def _global_provider(module: Any, attribute: str, environment_variable: str, getter: Callable[[], Any],
                     proxy_type: type | None) -> Callable[[], Any]:
    """A check of whether the application has set a global provider yet: it returns None until one is set.

    ``get_tracer_provider()`` (and the meter twin) looks up an environment variable on every call while no provider
    is set; the module global it guards answers the same question for the price of an attribute read, done in C (a
    ``partial`` of ``getattr``: no Python frame per call). When the environment names a provider (loaded lazily by
    the getter) or the API's layout changed, ask the getter.
    """
    if module is not None and environment_variable not in os.environ and hasattr(module, attribute):
        return functools.partial(getattr, module, attribute)

    def ask_the_getter() -> Any:
        provider = getter()
        return None if type(provider) is proxy_type else provider

    return ask_the_getter


def _metrics_internal() -> Any:
    """opentelemetry-api's private metrics module (holds the global meter provider); None if it moved."""
    try:
        from opentelemetry.metrics import _internal
    except ImportError:  # pragma: no cover - a future API layout
        return None
    return _internal


def _proxy_meter_provider_type() -> type | None:
    """The class of the API's stand-in meter provider (private in opentelemetry-api; None if it moved: then every
    call records, as before)."""
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover - a future API layout
        return None
    return _ProxyMeterProvider
