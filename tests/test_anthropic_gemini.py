"""Anthropic and Gemini specifics: prompt caching, thinking, stream usage rules, errors, cut streams, tiers."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
from google.genai import types

from tokentrace import Usage
from tokentrace.testing import capture_usage

from .conftest import TEST_PRICES, Telemetry, make_telemetry
from .provider_cases import CLAUDE, GEMINI, sync_client

A_KW: dict[str, Any] = {"model": CLAUDE, "max_tokens": 6, "messages": [{"role": "user", "content": "one two three"}]}
CLAUDE_PRICE = TEST_PRICES[CLAUDE]


def test_anthropic_prompt_caching_is_split_and_priced_per_ttl(simulator: Any, telemetry: Telemetry) -> None:
    headers = {"x-sim-cached-tokens": "2", "x-sim-cache-write-tokens": "4", "x-sim-cache-write-1h-tokens": "1"}
    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        message = client.messages.create(**A_KW, extra_headers=headers)
    (record,) = records
    assert record.usage == Usage(input=1, cache_read=2, cache_write=4, output=6, cache_write_1h=1)
    u = message.usage
    assert record.usage.total == u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens + \
        u.output_tokens  # the partition sums to what Anthropic bills
    p = CLAUDE_PRICE
    assert record.cost_usd == pytest.approx(
        (1 * p["input"] + 2 * p["cache_read"] + 3 * p["cache_write"] + 1 * p["cache_write_1h"] + 6 * p["output"])
        / 1e6, rel=1e-12)
    span = telemetry.finished_spans()[0]
    assert span.attributes["gen_ai.usage.input_tokens"] == 7
    assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] == 4


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_streamed_usage_replaces_the_placeholder_never_adds(simulator: Any, telemetry: Telemetry,
                                                                     stream: bool) -> None:
    headers = {"x-sim-cached-tokens": "3"}
    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        if stream:
            events = list(client.messages.create(**A_KW, stream=True, extra_headers=headers))
            start = next(e for e in events if e.type == "message_start")
            assert start.message.usage.output_tokens == 1  # the placeholder the API sends
        else:
            client.messages.create(**A_KW, extra_headers=headers)
    assert records[0].usage == Usage(input=4, cache_read=3, output=6)
    assert records[0].finish_reasons == ("max_tokens",)


def test_anthropic_thinking_is_output_not_reasoning(simulator: Any, telemetry: Telemetry) -> None:
    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        with client.messages.stream(**{**A_KW, "max_tokens": 9}, thinking={"type": "adaptive"}) \
                as stream:
            final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    (record,) = records
    # 9 output tokens: 6 of thinking and 3 of text, all billed as output (the contract: reasoning 0 for Anthropic)
    assert record.usage == Usage(input=7, output=9, reasoning=0)
    assert record.usage.output == final.usage.output_tokens


def test_anthropic_error_event_mid_stream(simulator: Any, telemetry: Telemetry) -> None:
    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            list(client.messages.create(**A_KW, stream=True, extra_headers={"x-sim-error": "stream-error"}))
    (record,) = records
    assert record.status == "error" and record.error_type == "APIStatusError"
    assert record.response_id is not None


@pytest.mark.parametrize(("provider", "error"), [("anthropic", "429"), ("anthropic", "500"), ("google", "429"),
                                                 ("google", "500")])
def test_http_errors_reach_the_caller_unchanged(simulator: Any, provider: str, error: str) -> None:
    def call() -> Exception:
        with sync_client(provider, simulator) as client:
            try:
                if provider == "anthropic":
                    client.messages.create(**A_KW, extra_headers={"x-sim-error": error})
                else:
                    client.models.generate_content(model=GEMINI, contents="x", config=types.GenerateContentConfig(
                        http_options=types.HttpOptions(headers={"x-sim-error": error},
                                                       retry_options=types.HttpRetryOptions(attempts=1))))
            except Exception as exc:
                return exc
        raise AssertionError("the simulated error did not happen")

    plain = call()
    make_telemetry()
    with capture_usage() as records:
        measured = call()
    assert type(measured) is type(plain) and str(measured) == str(plain)
    assert [r.status for r in records] == ["error"]


@pytest.mark.parametrize("provider", ["anthropic", "google"])
def test_a_stream_cut_mid_way_is_an_error_with_what_arrived(simulator: Any, telemetry: Telemetry,
                                                           provider: str) -> None:
    received: list[Any] = []
    with sync_client(provider, simulator) as client, capture_usage() as records:
        with pytest.raises(Exception):  # noqa: B017 - the SDK's own connection error, whatever its type
            if provider == "anthropic":
                for event in client.messages.create(**A_KW, stream=True, extra_headers={"x-sim-error": "cut"}):
                    received.append(event)
            else:
                config = types.GenerateContentConfig(max_output_tokens=6, http_options=types.HttpOptions(
                    headers={"x-sim-error": "cut"}))
                for chunk in client.models.generate_content_stream(model=GEMINI, contents="x", config=config):
                    received.append(chunk)
    assert received
    (record,) = records
    assert record.status == "error" and record.ttft_s is not None


def test_gemini_caching_thinking_and_tool_use_prompt(simulator: Any, telemetry: Telemetry) -> None:
    headers = {"x-sim-cached-tokens": "3", "x-sim-tool-use-tokens": "2"}
    config = types.GenerateContentConfig(max_output_tokens=9, thinking_config=types.ThinkingConfig(thinking_budget=64),
                                         http_options=types.HttpOptions(headers=headers))
    with sync_client("google", simulator) as client, capture_usage() as records:
        response = client.models.generate_content(model=GEMINI, contents="one two three", config=config)
    meta = response.usage_metadata
    (record,) = records
    # prompt 7 (3 cached) + 2 tool-use prompt; 9 output cap: 6 thoughts + 3 candidates
    assert record.usage == Usage(input=4 + 2, cache_read=3, output=3, reasoning=6)
    assert record.usage.total == meta.total_token_count
    p = TEST_PRICES[GEMINI]
    assert record.cost_usd == pytest.approx((6 * p["input"] + 3 * p["cache_read"] + 9 * p["output"]) / 1e6)


def test_gemini_stream_takes_the_last_usage_never_a_sum(simulator: Any, telemetry: Telemetry) -> None:
    config = types.GenerateContentConfig(max_output_tokens=6)
    with sync_client("google", simulator) as client, capture_usage() as records:
        chunks = list(client.models.generate_content_stream(model=GEMINI, contents="one two three", config=config))
    assert len(chunks) == 6 and all(c.usage_metadata is not None for c in chunks)
    assert sum(c.usage_metadata.prompt_token_count for c in chunks) == 42  # summing would be wrong
    assert records[0].usage == Usage(input=7, output=6)


def test_gemini_long_prompt_tier_is_priced_from_genai_prices(simulator: Any) -> None:
    make_telemetry(prices=None)  # the bundled genai-prices table
    config = types.GenerateContentConfig(max_output_tokens=4, http_options=types.HttpOptions(
        headers={"x-sim-prompt-tokens": "250000"}))
    from tokentrace.pricing import PriceTable

    price = PriceTable().lookup("google", "gemini-2.5-pro")
    assert price is not None and price.tiers
    with sync_client("google", simulator) as client, capture_usage() as records:
        client.models.generate_content(model="gemini-2.5-pro", contents="x", config=config)
    (record,) = records
    assert record.usage.input == 250_000
    above = price.tiers[-1][1]
    assert record.cost_usd == pytest.approx((250_000 * above.input + 4 * above.output) / 1e6, rel=1e-12)
    assert record.cost_usd > (250_000 * price.base.input + 4 * price.base.output) / 1e6


def test_async_anthropic_stream_helper_closed_early_is_recorded_once(simulator: Any, telemetry: Telemetry) -> None:
    from .provider_cases import async_client

    async def go() -> None:
        async with async_client("anthropic", simulator) as client, client.messages.stream(**A_KW) as stream:
            async for _ in stream:
                break

    with capture_usage() as records:
        asyncio.run(go())
    assert [r.status for r in records] == ["ok"]
    assert len(telemetry.finished_spans()) == 1


def test_a_stream_manager_never_entered_still_ends_its_call(simulator: Any, telemetry: Telemetry) -> None:
    import gc

    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        manager = client.messages.stream(**A_KW)
        del manager
        gc.collect()
    assert [(r.status, r.usage_reported) for r in records] == [("ok", False)]


def test_a_dropped_stream_manager_does_not_end_a_stream_still_being_read(simulator: Any, telemetry: Telemetry) -> None:
    import gc

    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        stream = client.messages.stream(**A_KW).__enter__()  # the manager itself is not kept
        gc.collect()
        events = list(stream)
    assert events
    assert [(r.status, r.usage) for r in records] == [("ok", Usage(input=7, output=6))]
