"""Gemini specifics: caching, thinking, tool-use prompt tokens, last-usage-wins streams, long-prompt tiers."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from tokentrace import Usage
from tokentrace.testing import capture_usage

from .cases import sync_client
from .conftest import TEST_PRICES, Telemetry, make_telemetry
from .google_cases import GEMINI


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

