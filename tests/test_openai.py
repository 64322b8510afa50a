"""OpenAI specifics: errors in every mode, abandoned streams, hosts by base URL, usage rules, stream usage."""

from __future__ import annotations

import asyncio
import gc
from typing import Any, Callable

import openai
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import StatusCode

from tokentrace import Usage
from tokentrace.testing import capture_usage

from .cases import MESSAGES
from .conftest import Telemetry, make_telemetry, openai_async_client, openai_client, sdk_httpx


def _call(client: Any, mode: str, headers: dict[str, str], **kwargs: Any) -> Any:
    stream = mode in ("stream", "async_stream")
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=4, stream=stream,
                                          extra_headers=headers, **kwargs)


def run_mode(sim: Any, mode: str, headers: dict[str, str]) -> Any:
    """Make one chat call in ``mode``; return the outcome (chunks or value) or the exception raised."""
    if mode.startswith("async"):

        async def go() -> Any:
            async with openai_async_client(sim) as client:
                try:
                    result = await _call(client, mode, headers)
                    return [c async for c in result] if mode == "async_stream" else result
                except Exception as exc:
                    return exc

        return asyncio.run(go())
    with openai_client(sim) as client:
        try:
            result = _call(client, mode, headers)
            return list(result) if mode == "stream" else result
        except Exception as exc:
            return exc


ERROR_CASES = [
    ("429", "sync"), ("429", "async"), ("429", "stream"), ("429", "async_stream"),
    ("500", "sync"), ("500", "async"), ("500", "stream"), ("500", "async_stream"),
    ("malformed", "sync"), ("malformed", "async"),
    ("cut", "stream"), ("cut", "async_stream"),
]


@pytest.mark.parametrize(("error", "mode"), ERROR_CASES)
def test_sdk_errors_reach_the_caller_unchanged_and_are_recorded(error: str, mode: str, simulator: Any) -> None:
    plain = run_mode(simulator, mode, {"x-sim-error": error})
    telemetry = make_telemetry()
    with capture_usage() as records:
        measured = run_mode(simulator, mode, {"x-sim-error": error})
    assert isinstance(plain, Exception)
    assert type(measured) is type(plain)
    assert str(measured) == str(plain)
    (record,) = records
    assert record.status == "error"
    assert record.error_type == type(plain).__qualname__
    (span,) = telemetry.finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(plain).__qualname__
    assert telemetry.sample("llm_requests_total", provider="openai", model=record.model, operation="chat",
                            status="error", feature="") == 1


def test_a_stream_cut_mid_way_records_the_chunks_that_arrived(simulator: Any, telemetry: Telemetry) -> None:
    with openai_client(simulator) as client, capture_usage() as records:
        stream = _call(client, "stream", {"x-sim-error": "cut"})
        received = []
        # openai >= 3.x wraps the drop in APIConnectionError; early 3.x and 2.x let httpx2's (httpx's) error through
        with pytest.raises((openai.APIConnectionError, sdk_httpx().RemoteProtocolError)):
            for chunk in stream:
                received.append(chunk)
    assert received, "the server sent half the chunks before the cut"
    (record,) = records
    assert record.status == "error" and record.ttft_s is not None
    assert record.response_id == received[0].id
    assert not record.usage_reported


@pytest.mark.parametrize("how", ["break_and_close", "context_exit", "garbage"])
def test_an_abandoned_stream_is_recorded_exactly_once(how: str, simulator: Any, telemetry: Telemetry) -> None:
    with openai_client(simulator) as client, capture_usage() as records:
        if how == "break_and_close":
            stream = _call(client, "stream", {})
            next(iter(stream))
            stream.close()
            stream.close()
        elif how == "context_exit":
            with _call(client, "stream", {}) as stream:
                next(iter(stream))
        else:
            stream = _call(client, "stream", {})
            next(iter(stream))
            del stream
            gc.collect()
    (record,) = records
    assert record.status == "ok"
    assert record.stream and record.ttft_s is not None
    assert not record.usage_reported and record.cost_usd is None
    assert len(telemetry.finished_spans()) == 1


def test_async_stream_closed_early_is_recorded_once(simulator: Any, telemetry: Telemetry) -> None:
    async def go() -> None:
        async with openai_async_client(simulator) as client:
            stream = await _call(client, "async_stream", {})
            async for _ in stream:
                break
            await stream.close()
            await stream.close()

    with capture_usage() as records:
        asyncio.run(go())
    assert [r.status for r in records] == ["ok"]


# --------------------------------------------------------------------------- usage rules per host


@pytest.mark.parametrize(
    ("base_url", "provider", "model", "expected"),
    [
        # OpenAI: completion_tokens (8+16) include reasoning; total = prompt + completion
        ("https://api.openai.com/v1", "openai", "o3-mini", Usage(input=7, output=8, reasoning=16)),
        # xAI: reasoning billed on top of completion_tokens (8); total = prompt + completion + reasoning
        ("https://api.x.ai/v1", "xai", "grok-3-mini", Usage(input=7, output=8, reasoning=16)),
    ],
)
def test_reasoning_is_split_by_the_providers_own_total(
    base_url: str, provider: str, model: str, expected: Usage, simulator: Any, telemetry: Telemetry
) -> None:
    with openai_client(simulator, base_url) as client, capture_usage() as records:
        response = client.chat.completions.create(model=model, messages=MESSAGES)
    (record,) = records
    assert record.provider == provider
    assert record.usage == expected
    assert record.usage.total == response.usage.total_tokens  # the partition sums to the provider's own total


def test_cached_and_cache_write_tokens_are_split_from_input(simulator: Any, telemetry: Telemetry) -> None:
    headers = {"x-sim-cached-tokens": "4", "x-sim-cache-write-tokens": "2"}
    with openai_client(simulator) as client, capture_usage() as records:
        response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=2,
                                                  extra_headers=headers)
    (record,) = records
    assert record.usage == Usage(input=1, cache_read=4, cache_write=2, output=2)
    assert record.usage.total == response.usage.total_tokens
    # gpt-4o-mini test prices: input 0.15, cache read 0.075; cache writes at the input price
    assert record.cost_usd == pytest.approx((1 * 0.15 + 4 * 0.075 + 2 * 0.15 + 2 * 0.6) / 1e6, rel=1e-12)


@pytest.mark.parametrize(
    ("base_url", "provider", "semconv"),
    [
        ("https://api.openai.com/v1", "openai", "openai"),
        ("https://api.x.ai/v1", "xai", "x_ai"),
        ("https://acme.openai.azure.com/openai/deployments/gpt-4o-mini", "azure_openai", "azure.ai.openai"),
        ("https://api.groq.com/openai/v1", "groq", "groq"),
        ("https://api.deepseek.com/v1", "deepseek", "deepseek"),
        ("https://openrouter.ai/api/v1", "openrouter", "openrouter"),
        ("https://api.mistral.ai/v1", "mistral", "mistral_ai"),
        ("https://api.together.xyz/v1", "together", "together_ai"),
        ("http://localhost:8000/v1", "openai_compatible", "openai_compatible"),
    ],
)
def test_provider_is_attributed_by_base_url(
    base_url: str, provider: str, semconv: str, simulator: Any, telemetry: Telemetry
) -> None:
    with openai_client(simulator, base_url) as client, capture_usage() as records:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=2)
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=2,
                                                     stream=True))
    assert [r.provider for r in records] == [provider, provider]
    assert all(c.choices for c in chunks)
    span = telemetry.finished_spans()[0]
    assert span.attributes["gen_ai.provider.name"] == semconv
    # hosts that may reject stream_options are not sent it; Mistral sends usage on its final chunk unasked; a host
    # the registry does not know gets its first stream as written (it tells whether usage comes unasked)
    reported = provider not in ("together", "openrouter", "openai_compatible")
    assert records[1].usage_reported is reported


def test_stream_usage_injection_can_be_switched_off(simulator: Any) -> None:
    make_telemetry(stream_usage=False)
    with openai_client(simulator) as client, capture_usage() as records:
        list(_call(client, "stream", {}))
    assert not records[0].usage_reported
    assert records[0].cost_usd is None


def test_missing_usage_is_recorded_as_unreported_not_zero_cost(simulator: Any, telemetry: Telemetry) -> None:
    with openai_client(simulator) as client, capture_usage() as records:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-error":
                                                                                               "no-usage"})
    (record,) = records
    assert not record.usage_reported and record.cost_usd is None and record.status == "ok"


def test_calls_of_one_shape_carry_only_their_own_span_attributes(simulator: Any, telemetry: Telemetry) -> None:
    """Spans of the same provider, model and server share their start attributes; per-call ones must not leak."""
    import tokentrace

    with openai_client(simulator) as client:
        with tokentrace.attributes(feature="first"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=3, temperature=0.5)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    first, second = (dict(span.attributes or {}) for span in telemetry.finished_spans())
    assert (first["tokentrace.feature"], first["gen_ai.request.max_tokens"], first["gen_ai.request.temperature"]) \
        == ("first", 3, 0.5)
    assert not {"tokentrace.feature", "gen_ai.request.max_tokens", "gen_ai.request.temperature"} & second.keys()
    shared = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "server.address", "server.port")
    assert [first[k] for k in shared] == [second[k] for k in shared] == ["chat", "openai", "gpt-4o-mini",
                                                                          "api.openai.com", 443]


def test_the_proposed_cost_trio_is_on_spans_only_when_opted_in(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import tokentrace

    from .conftest import make_telemetry

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    tokentrace.uninstrument()
    telemetry = make_telemetry()
    try:
        with openai_client(simulator) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        (span,) = telemetry.finished_spans()
        attrs = dict(span.attributes or {})
        assert attrs["gen_ai.usage.cost.amount"] == attrs["gen_ai.usage.cost"] == attrs["tokentrace.cost_usd"] > 0
        assert (attrs["gen_ai.usage.cost.currency"], attrs["gen_ai.usage.cost.source"]) == \
            ("USD", attrs["tokentrace.price_source"])
    finally:
        tokentrace.uninstrument()


# --------------------------------------------------------------------------- lifecycle


def test_caller_who_asked_for_stream_usage_still_gets_the_usage_chunk(simulator: Any, telemetry: Telemetry) -> None:
    with openai_client(simulator) as client, capture_usage() as records:
        chunks = list(client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a b"}], stream=True, max_tokens=3,
            stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    assert records[0].usage == Usage(input=6, output=3)


def test_returned_objects_are_the_sdks_own(simulator: Any, telemetry: Telemetry) -> None:
    from openai.types.chat import ChatCompletion

    with openai_client(simulator) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                                stream=True)
        assert type(completion) is ChatCompletion
        assert isinstance(stream, openai.Stream)
        assert stream.response.status_code == 200  # attributes of the SDK stream pass through
        stream.close()


def test_a_cost_the_provider_reports_wins_over_the_price_table(simulator: Any, telemetry: Telemetry) -> None:
    with openai_client(simulator, "https://openrouter.ai/api/v1") as client, capture_usage() as records:
        response = client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, max_tokens=3)
    (record,) = records
    assert record.provider == "openrouter"
    assert record.cost_usd == response.usage.cost == 10 / 1_000_000  # what OpenRouter says it billed
    assert record.price_source == "reported by openrouter"
    assert telemetry.finished_spans()[0].attributes["tokentrace.cost_usd"] == record.cost_usd



_ODD = st.sampled_from([-1, None, 0.0, 7.0, 2.5, "", "3", True, False, 2**60])
_DETAILS = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "cached_tokens": st.integers(0, 80), "reasoning_tokens": st.integers(0, 80), "audio_tokens": st.just(0),
    "accepted_prediction_tokens": st.integers(0, 5)}), st.fixed_dictionaries({}, optional={
        "cached_tokens": _ODD, "reasoning_tokens": _ODD, "audio_tokens": st.one_of(_ODD, st.integers(0, 3)),
        "cache_write_tokens": st.one_of(_ODD, st.integers(0, 3))}))
_DEVIATIONS: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "an odd prompt count": lambda body, odd: body["usage"].update(prompt_tokens=odd),
    "an odd completion count": lambda body, odd: body["usage"].update(completion_tokens=odd),
    "an odd total": lambda body, odd: body["usage"].update(total_tokens=odd),
    "a total one more": lambda body, odd: body["usage"].update(total_tokens=body["usage"]["total_tokens"] + 1),
    "no total": lambda body, odd: body["usage"].pop("total_tokens"),
    "a total with reasoning on top": lambda body, odd: body["usage"].update(
        total_tokens=body["usage"]["total_tokens"] + ((body["usage"].get("completion_tokens_details") or {}).get(
            "reasoning_tokens") or 0)),
    "an extra field": lambda body, odd: body.update(surprise=1),
    "an extra usage field": lambda body, odd: body["usage"].update(surprise=1),
    "an extra choice field": lambda body, odd: body["choices"][0].update(surprise=1),
    "an extra details field": lambda body, odd: body["usage"].update(prompt_tokens_details={"surprise": 1}),
    "a billed cost": lambda body, odd: body["usage"].update(cost=0.002),
    "a billed cost in ticks": lambda body, odd: body["usage"].update(cost_in_usd_ticks=12345),
    "no usage": lambda body, odd: body.update(usage=None),
    "two choices": lambda body, odd: body["choices"].append(body["choices"][0]),
    "no choice": lambda body, odd: body.update(choices=[]),
}
_EXAMPLE = {"reason": "stop", "odd": None, "model": "gpt-4o-mini", "tier": None, "provider": "openai"}


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(prompt=4, completion=10, details=(None, {"reasoning_tokens": 3}), deviation="a total with reasoning on top",
         **_EXAMPLE)
@example(prompt=4, completion=10, details=(None, {"reasoning_tokens": 11}), deviation=None, **_EXAMPLE)
@example(prompt=4, completion=10, details=({"cached_tokens": 5}, None), deviation=None, **_EXAMPLE)
@example(prompt=4, completion=10, details=({"cached_tokens": 2, "cache_write_tokens": 1}, None), deviation=None,
         **_EXAMPLE)
@example(prompt=4, completion=10, details=({"audio_tokens": 2}, {"audio_tokens": 1}), deviation=None, **_EXAMPLE)
@example(prompt=4, completion=10, details=(None, {"reasoning_tokens": 3}), deviation="no total",
         **{**_EXAMPLE, "provider": "xai"})
@given(prompt=st.integers(0, 60), completion=st.integers(0, 60), details=st.tuples(_DETAILS, _DETAILS),
       reason=st.sampled_from([None, "stop", "", "length"]), odd=_ODD,
       deviation=st.sampled_from([None, None, None, None, None, None, *_DEVIATIONS]),
       model=st.sampled_from(["gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18", "", None]),
       tier=st.sampled_from([None, "default", "Flex"]), provider=st.sampled_from(["openai", "xai"]))
def test_the_one_pass_reading_of_a_chat_completion_agrees_with_the_field_by_field_one(
        prompt: int, completion: int, details: tuple[Any, Any], reason: Any, odd: Any, deviation: str | None,
        model: Any, tier: Any, provider: str) -> None:
    """The usual chat completion is read in one pass (``openai_one_pass``), anything else field by field: the
    two give the same ResponseInfo for every response the one-pass reader takes, built by the SDK from JSON as a
    real answer is (odd counts, totals that do not add up, details, extra fields, billed costs, choices)."""
    from openai.types.chat import ChatCompletion

    from tokentrace.providers import openai as readers

    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    for name, value in zip(("prompt_tokens_details", "completion_tokens_details"), details, strict=True):
        if value is not None:
            usage[name] = value
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model, "usage": usage,
            "choices": [{"index": 0, "finish_reason": reason, "message": {"role": "assistant", "content": "hi"}}],
            "service_tier": tier}
    if deviation is not None:
        _DEVIATIONS[deviation](body, odd)
    response = openai._models.construct_type(type_=ChatCompletion, value=body)
    assert readers.chat_response(response, provider) == readers.chat_response_by_fields(response, provider)


def test_the_usual_chat_completion_is_read_in_one_pass() -> None:
    """The one-pass reader takes the usual answer (else the test above would compare nothing of interest)."""
    from openai.types.chat import ChatCompletion

    from tokentrace.providers import openai as readers
    from tokentrace.providers import openai_one_pass as one_pass

    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 42, "completion_tokens": 11, "total_tokens": 53,
                      "prompt_tokens_details": {"cached_tokens": 10, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 4, "audio_tokens": 0}}}
    response = openai._models.construct_type(type_=ChatCompletion, value=body)
    plain = one_pass.plain_chat_response(response)
    assert plain is not None and plain == readers.chat_response_by_fields(response, "openai")
    assert plain.usage == Usage(input=32, cache_read=10, output=7, reasoning=4)
