"""Anthropic specifics: prompt caching per TTL, stream usage rules, thinking, error events, stream managers."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import anthropic
import pytest

from tokentrace import Usage
from tokentrace.testing import capture_usage

from .anthropic_cases import CLAUDE
from .cases import MESSAGES, async_client, sync_client
from .conftest import TEST_PRICES, Telemetry

A_KW: dict[str, Any] = {"model": CLAUDE, "max_tokens": 6, "messages": MESSAGES}
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
    # what caching saved: 2 reads at the input price minus what they cost; what 4 writes cost beyond it
    saved, premium = (2 * (p["input"] - p["cache_read"]) / 1e6,
                      (3 * (p["cache_write"] - p["input"]) + 1 * (p["cache_write_1h"] - p["input"])) / 1e6)
    assert record.cache_effect_usd == (pytest.approx(saved, rel=1e-12), pytest.approx(premium, rel=1e-12))
    labels = {"provider": "anthropic", "model": record.model, "operation": "chat", "feature": ""}
    assert telemetry.sample("llm_cache_savings_usd_total", **labels) == pytest.approx(saved, rel=1e-12)
    assert telemetry.sample("llm_cache_write_premium_usd_total", **labels) == pytest.approx(premium, rel=1e-12)


def test_what_caching_saved_is_in_the_ledger_and_its_reports(simulator: Any, tmp_path: Any) -> None:
    import tokentrace

    from .conftest import make_telemetry

    tokentrace.uninstrument()
    make_telemetry(ledger=tmp_path / "usage.db")
    try:
        with sync_client("anthropic", simulator) as client, capture_usage() as records:
            client.messages.create(**A_KW, extra_headers={"x-sim-cached-tokens": "2", "x-sim-cache-write-tokens": "4"})
            client.messages.create(**A_KW)  # no cache: saves nothing
        tokentrace.flush()
        net = sum(r.cache_effect_usd[0] - r.cache_effect_usd[1] for r in records)
        assert net == pytest.approx(2 * (CLAUDE_PRICE["input"] - CLAUDE_PRICE["cache_read"]) / 1e6
                                    - 4 * (CLAUDE_PRICE["cache_write"] - CLAUDE_PRICE["input"]) / 1e6, rel=1e-12)
        (row,) = tokentrace.report(since="1d", by="provider", ledger=tmp_path / "usage.db")["rows"]
        assert row["cache_savings_usd"] == pytest.approx(net, rel=1e-9)
    finally:
        tokentrace.uninstrument()


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


def test_async_anthropic_stream_helper_closed_early_is_recorded_once(simulator: Any, telemetry: Telemetry) -> None:

    async def go() -> None:
        async with async_client("anthropic", simulator) as client, client.messages.stream(**A_KW) as stream:
            async for _ in stream:
                break

    with capture_usage() as records:
        asyncio.run(go())
    assert [r.status for r in records] == ["ok"]
    assert len(telemetry.finished_spans()) == 1


def test_a_stream_manager_never_entered_still_ends_its_call(simulator: Any, telemetry: Telemetry) -> None:

    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        manager = client.messages.stream(**A_KW)
        del manager
        gc.collect()
    assert [(r.status, r.usage_reported) for r in records] == [("ok", False)]


def test_a_dropped_stream_manager_does_not_end_a_stream_still_being_read(simulator: Any, telemetry: Telemetry) -> None:

    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        stream = client.messages.stream(**A_KW).__enter__()  # the manager itself is not kept
        gc.collect()
        events = list(stream)
    assert events
    assert [(r.status, r.usage) for r in records] == [("ok", Usage(input=7, output=6))]

