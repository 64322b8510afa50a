"""The tier that served a call, and fees on top of tokens, priced exactly (one test per row of the README's modifier
table): the real SDKs call the simulator, which answers with the tier asked for (or ``x-sim-served-tier``); each
expected cost is worked out here from the provider's published rates, by hand, never with tokentrace's functions,
and compared with the span, the ``chat_cost_usd_total`` counter and the ledger row."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

import tokentrace
from tokentrace.ledger import reports
from tokentrace.testing import capture_usage

from .cases import bedrock_client
from .conftest import Telemetry, make_telemetry, openai_client

MTOK = 1_000_000


def by_hand(usage: Any, inp: float, out: float, cached: float | None = None, fees: float = 0.0) -> float:
    """USD of a call at published rates per million tokens (cached input at ``cached``, reasoning at ``out``)."""
    cached = inp if cached is None else cached
    return float((usage.input * inp + usage.cache_read * cached + usage.cache_write * inp
                  + (usage.output + usage.reasoning) * out) / MTOK + fees)


def one_call(telemetry: Telemetry, ledger: Path, call: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(record, span attributes, ledger row) of the one call ``call`` makes."""
    with capture_usage() as records:
        call()
    assert tokentrace.flush()
    (record,) = records
    (span,) = telemetry.finished_spans()
    conn = sqlite3.connect(ledger)
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM llm_usage").fetchone())
    return record, dict(span.attributes or {}), row


def assert_priced(telemetry: Telemetry, record: Any, span: dict[str, Any], row: dict[str, Any], expected: float,
                  tier: str | None, how: str) -> None:
    assert record.service_tier == row["service_tier"] == tier
    assert record.cost_usd == pytest.approx(expected, rel=1e-12)
    assert span["tokentrace.cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert telemetry.sample("chat_cost_usd_total", provider=record.provider, model=record.model,
                            operation=record.operation, feature="") == pytest.approx(expected, rel=1e-12)
    assert how in span["tokentrace.price_source"] and how in row["price_source"]


def assert_unpriced(telemetry: Telemetry, record: Any, span: dict[str, Any], row: dict[str, Any], tier: str,
                    why: str) -> None:
    assert record.service_tier == row["service_tier"] == tier
    assert record.cost_usd is None and row["cost_usd"] is None and "tokentrace.cost_usd" not in span
    assert span["tokentrace.price_source"].startswith("unpriced: ") and why in span["tokentrace.price_source"]
    assert telemetry.sample("llm_unpriced_requests_total", provider=record.provider, model=record.model) == 1
    assert record.charged()[0] > 0  # budgets still count it, at the standard price


def openai_chat(simulator: Any, ledger: Path, model: str, prices: Any = None,
                **kwargs: Any) -> tuple[Telemetry, Any, dict[str, Any], dict[str, Any]]:
    """(telemetry, record, span attributes, ledger row) of one chat completion through the openai SDK."""
    telemetry = _telemetry(ledger, prices)
    client = openai_client(simulator)
    return telemetry, *one_call(telemetry, ledger, lambda: client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "one two"}], **kwargs))


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "usage.db"


def _telemetry(ledger: Path, prices: Any = None) -> Telemetry:
    return make_telemetry(prices=prices, ledger=ledger)


# --------------------------------------------------------------------------- OpenAI


@pytest.mark.parametrize("stream", [False, True], ids=["value", "stream"])
def test_openai_flex_is_priced_at_the_models_flex_rates(simulator: Any, ledger: Path, stream: bool) -> None:
    telemetry = _telemetry(ledger)
    client = openai_client(simulator)

    def call() -> None:
        answer = client.chat.completions.create(model="gpt-5", service_tier="flex", stream=stream,
                                                messages=[{"role": "user", "content": "one two"}],
                                                **({"stream_options": {"include_usage": True}} if stream else {}))
        if stream:
            for _ in answer:
                pass

    record, span, row = one_call(telemetry, ledger, call)
    # gpt-5 flex (developers.openai.com/api/docs/pricing): $0.625 in, $0.0625 cached, $5 out per MTok
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 0.625, 5.0, 0.0625), "flex",
                  "service_tier=flex (genai-prices)")
    assert span["openai.response.service_tier"] == "flex" and record.usage.reasoning > 0


def test_openai_flex_without_flex_rates_is_priced_at_batch_rates(simulator: Any, ledger: Path) -> None:
    telemetry, record, span, row = openai_chat(simulator, ledger, "gpt-4o-mini", service_tier="flex")
    # flex is billed at Batch API rates (developers.openai.com/api/docs/guides/flex-processing): gpt-4o-mini batch
    # $0.075 in, $0.30 out per MTok
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 0.075, 0.30), "flex",
                  "as processing=batch (genai-prices)")


def test_openai_priority_is_priced_at_the_models_priority_rates(simulator: Any, ledger: Path) -> None:
    telemetry, record, span, row = openai_chat(simulator, ledger, "gpt-4.1", service_tier="priority")
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 3.5, 14.0, 0.875), "priority",
                  "service_tier=priority (genai-prices)")
    # no per-request fees: the cost is all tokens, so the span carries no split of it
    assert "tokentrace.cost.tokens_usd" not in span and "tokentrace.cost.fees_usd" not in span
    assert row["fees_usd"] == 0


def test_the_served_tier_is_priced_not_the_requested_one(simulator: Any, ledger: Path) -> None:
    _, record, span, row = openai_chat(simulator, ledger, "gpt-4.1", service_tier="priority",  # asked for priority,
                                       extra_headers={"x-sim-served-tier": "default"})  # served at the standard tier
    assert record.service_tier == row["service_tier"] == span["openai.response.service_tier"] == "default"
    assert record.cost_usd == pytest.approx(by_hand(record.usage, 2.0, 8.0, 0.5), rel=1e-12)


def test_openai_scale_tier_is_unpriced_with_the_reason(simulator: Any, ledger: Path) -> None:
    telemetry, record, span, row = openai_chat(simulator, ledger, "gpt-4.1",
                                               extra_headers={"x-sim-served-tier": "scale"})
    assert_unpriced(telemetry, record, span, row, "scale", "Scale Tier is billed by reserved units")


@pytest.mark.parametrize("stream", [False, True], ids=["value", "stream"])
def test_openai_responses_web_and_file_searches_are_fees_on_top_of_tokens(simulator: Any, ledger: Path,
                                                                        stream: bool) -> None:
    telemetry = _telemetry(ledger)
    client = openai_client(simulator)

    def call() -> None:
        answer = client.responses.create(model="gpt-4.1", input="find it", stream=stream,
                                         extra_headers={"x-sim-web-search-calls": "2", "x-sim-file-search-calls": "1"})
        if stream:
            for _ in answer:
                pass

    record, span, row = one_call(telemetry, ledger, call)
    assert (record.usage.web_search_requests, record.usage.file_search_requests) == (2, 1)
    # web search $10 and file search $2.50 per 1,000 calls, on top of gpt-4.1's $2 / $8 per MTok
    fees = 2 * 10.0 / 1000 + 1 * 2.5 / 1000
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 2.0, 8.0, 0.5, fees=fees), "default",
                  "genai-prices")
    assert span["tokentrace.cost.fees_usd"] == pytest.approx(fees) and row["fees_usd"] == pytest.approx(fees)
    assert span["tokentrace.cost.tokens_usd"] == pytest.approx(by_hand(record.usage, 2.0, 8.0, 0.5), rel=1e-9)


# --------------------------------------------------------------------------- Anthropic


def _anthropic(simulator: Any) -> Any:
    import anthropic

    return anthropic.Anthropic(api_key="sk-ant-test", base_url=simulator.url, max_retries=0)


def _messages(client: Any, model: str, stream: bool = False, **extra: Any) -> Any:
    def call() -> None:
        kwargs: dict[str, Any] = {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                                  **extra}
        if stream:
            with client.messages.stream(**kwargs) as events:
                for _ in events:
                    pass
        else:
            client.messages.create(**kwargs)
    return call


def test_anthropic_batch_tier_is_priced_at_batch_rates(simulator: Any, ledger: Path) -> None:
    telemetry = _telemetry(ledger)
    record, span, row = one_call(telemetry, ledger, _messages(
        _anthropic(simulator), "claude-haiku-4-5", extra_headers={"x-sim-served-tier": "batch"}))
    # claude-haiku-4-5 batch (platform.claude.com pricing): $0.50 in, $2.50 out per MTok
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 0.5, 2.5), "batch",
                  "processing=batch (genai-prices)")
    assert span["tokentrace.service_tier"] == "batch"


ANTHROPIC_MODIFIERS = [
    # US-only inference: 1.1x the standard $3 / $15 per MTok (platform.claude.com data residency)
    pytest.param("claude-sonnet-4-5", {"inference_geo": "us"}, (3.3, 16.5), "standard+inference_geo=us",
                 "inference_geo=us x1.1 (modifier table", id="us-only"),
    # Opus 4.8 fast mode: $10 in, $50 out per MTok (standard: $5 / $25)
    pytest.param("claude-opus-4-8", {"speed": "fast"}, (10.0, 50.0), "standard+speed=fast",
                 "speed=fast (genai-prices)", id="fast-mode"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["value", "stream"])
@pytest.mark.parametrize(("model", "body", "rates", "tier", "how"), ANTHROPIC_MODIFIERS)
def test_anthropic_us_only_inference_and_fast_mode_are_priced_at_their_rates(
        simulator: Any, ledger: Path, stream: bool, model: str, body: dict[str, str], rates: tuple[float, float],
        tier: str, how: str) -> None:
    telemetry = _telemetry(ledger)
    record, span, row = one_call(telemetry, ledger, _messages(_anthropic(simulator), model, stream, extra_body=body))
    assert_priced(telemetry, record, span, row, by_hand(record.usage, *rates), tier, how)


def test_anthropic_fast_mode_without_a_known_price_is_unpriced(simulator: Any, ledger: Path) -> None:
    telemetry = _telemetry(ledger)
    record, span, row = one_call(telemetry, ledger, _messages(
        _anthropic(simulator), "claude-haiku-4-5", extra_body={"speed": "fast"}))
    assert_unpriced(telemetry, record, span, row, "standard+speed=fast", "fast mode has a per-model price")


def test_anthropic_priority_tier_is_unpriced_with_the_reason(simulator: Any, ledger: Path) -> None:
    telemetry = _telemetry(ledger)
    record, span, row = one_call(telemetry, ledger, _messages(
        _anthropic(simulator), "claude-haiku-4-5", extra_headers={"x-sim-served-tier": "priority"}))
    assert_unpriced(telemetry, record, span, row, "priority", "Priority Tier is billed by a capacity commitment")


# --------------------------------------------------------------------------- Gemini, Bedrock


@pytest.mark.parametrize("stream", [False, True], ids=["value", "stream"])
def test_gemini_flex_asked_through_the_sdk_is_unpriced_as_its_response_type_drops_the_tier(
        simulator: Any, ledger: Path, stream: bool) -> None:
    from google import genai
    from google.genai import types

    telemetry = _telemetry(ledger)
    client = genai.Client(api_key="AIza-test", http_options=types.HttpOptions(base_url=simulator.url))
    config = types.GenerateContentConfig(service_tier=types.ServiceTier.FLEX)

    def call() -> None:
        if stream:
            for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents="one two",
                                                           config=config):
                pass
        else:
            client.models.generate_content(model="gemini-2.5-flash", contents="one two", config=config)

    record, span, row = one_call(telemetry, ledger, call)
    assert_unpriced(telemetry, record, span, row, "asked:flex", "does not say which tier served the call")


def test_gemini_flex_read_on_the_wire_is_priced_at_half_the_standard_rates(simulator: Any, ledger: Path) -> None:
    """The Gemini API bills its flex tier 50% under standard (ai.google.dev/gemini-api/docs/flex-inference):
    gemini-2.5-flash's Batch rates, $0.15 / $1.25 per million (standard $0.30 / $2.50)."""
    import httpx

    telemetry = _telemetry(ledger)
    url = simulator.url.rstrip("/") + "/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "one two"}]}], "serviceTier": "flex"}
    record, span, row = one_call(telemetry, ledger, lambda: httpx.post(url, json=body))
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 0.15, 1.25), "flex", "service_tier=flex")


NOVA = {"models": {"amazon.nova-lite-v1:0": {"provider": "bedrock", "input": 0.06, "output": 0.24}}}


@pytest.mark.parametrize("stream", [False, True], ids=["value", "stream"])
def test_bedrock_priority_is_priced_by_the_users_modifier(simulator: Any, ledger: Path, stream: bool) -> None:
    prices = {**NOVA, "modifiers": [{"provider": "bedrock", "key": "service_tier", "value": "priority",
                                     "multiplier": 1.75}]}
    telemetry = _telemetry(ledger, prices)
    client = bedrock_client(simulator)
    kwargs = {"modelId": "amazon.nova-lite-v1:0", "serviceTier": {"type": "priority"},
              "messages": [{"role": "user", "content": [{"text": "one two"}]}]}

    def call() -> None:
        if stream:
            for _ in client.converse_stream(**kwargs)["stream"]:
                pass
        else:
            client.converse(**kwargs)

    record, span, row = one_call(telemetry, ledger, call)
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 0.06 * 1.75, 0.24 * 1.75), "priority",
                  "service_tier=priority x1.75 (your modifiers)")


def test_bedrock_priority_without_a_modifier_is_unpriced(simulator: Any, ledger: Path) -> None:
    telemetry = _telemetry(ledger, NOVA)
    record, span, row = one_call(telemetry, ledger, lambda: bedrock_client(simulator).converse(
        modelId="amazon.nova-lite-v1:0", serviceTier={"type": "priority"},
        messages=[{"role": "user", "content": [{"text": "one two"}]}]))
    assert_unpriced(telemetry, record, span, row, "priority", "bedrock service_tier=priority is not in the modifier")


@pytest.mark.parametrize(("model", "rates"), [
    # aws.amazon.com/bedrock/pricing, Claude Sonnet 4.5 (checked 2026-12-03): a geographic (us., eu., jp., au.)
    # inference profile is billed 10% over the global one: $3.30 / $16.50 against $3 / $15 per MTok
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", (3.3, 16.5)),
    ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", (3.3, 16.5)),
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", (3.0, 15.0)),
    ("us.anthropic.claude-3-5-haiku-20241022-v1:0", (0.8, 4.0)),  # before 4.5: no regional premium
], ids=["us", "eu", "global", "older-model"])
def test_bedrock_regional_and_global_inference_profiles_are_priced_apart(simulator: Any, ledger: Path, model: str,
                                                                        rates: tuple[float, float]) -> None:
    telemetry = _telemetry(ledger)
    record, span, row = one_call(telemetry, ledger, lambda: bedrock_client(simulator).converse(
        modelId=model, messages=[{"role": "user", "content": [{"text": "one two"}]}]))
    assert record.model == model and record.usage.total > 0
    assert_priced(telemetry, record, span, row, by_hand(record.usage, *rates), None, "genai-prices")
    assert ("global." if model.startswith("global.") else "regional.") in row["price_source"]


@pytest.mark.parametrize(("region", "model", "premium"), [
    # platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai (checked 2026-12-03): from Claude Sonnet 4.5
    # on, a regional (or multi-region) Vertex AI endpoint is billed 10% over the global one; older models are not
    ("us-east5", "claude-sonnet-4-5@20250929", 1.1),
    ("eu", "claude-haiku-4-5@20251001", 1.1),
    ("global", "claude-sonnet-4-5@20250929", 1.0),
    ("us-east5", "claude-sonnet-4@20250514", 1.0),
], ids=["regional", "multi-region", "global", "older-model"])
@pytest.mark.parametrize("stream", [False, True], ids=["value", "stream"])
def test_claude_on_a_regional_vertex_endpoint_is_priced_10_percent_over_global(
        simulator: Any, ledger: Path, region: str, model: str, premium: float, stream: bool) -> None:
    from anthropic import AnthropicVertex

    telemetry = _telemetry(ledger)
    client = AnthropicVertex(region=region, project_id="p", access_token="t", base_url=simulator.url + "/v1")

    def call() -> None:
        answer = client.messages.create(model=model, max_tokens=6, stream=stream,
                                        messages=[{"role": "user", "content": "one two"}])
        if stream:
            for _ in answer:
                pass

    record, span, row = one_call(telemetry, ledger, call)
    assert f"/locations/{region}/publishers/anthropic/models/{model}" in simulator.served[-1]
    inp, out = (1.0, 5.0) if "haiku" in model else (3.0, 15.0)  # Haiku 4.5 / Sonnet 4 and 4.5 standard rates
    expected = by_hand(record.usage, inp * premium, out * premium)
    if premium == 1.0:
        assert record.cost_usd == pytest.approx(expected, rel=1e-12) and row["cost_usd"] == pytest.approx(expected)
    else:
        assert_priced(telemetry, record, span, row, expected, "standard+endpoint=regional",
                      "endpoint=regional x1.1 (modifier table")


class _ToSimulator(httpx.HTTPTransport):
    """An httpx transport that sends a request for a provider's host to the simulator (the test's DNS): the
    client, its hooks and the wire layer see the provider's real host name."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return super().handle_request(request)


@pytest.mark.parametrize(("host", "premium"), [("us-east5-aiplatform.googleapis.com", 1.1),
                                               ("aiplatform.us.rep.googleapis.com", 1.1),
                                               ("aiplatform.googleapis.com", 1.0)],
                         ids=["regional", "multi-region", "global"])
@pytest.mark.parametrize("stream", [False, True], ids=["value", "stream"])
def test_claude_on_vertex_over_raw_http_is_priced_by_its_endpoint(simulator: Any, ledger: Path, host: str,
                                                                  premium: float, stream: bool) -> None:
    telemetry = _telemetry(ledger)
    model = "claude-sonnet-4-5@20250929"
    verb = "streamRawPredict" if stream else "rawPredict"
    url = f"https://{host}/v1/projects/p/locations/us-east5/publishers/anthropic/models/{model}:{verb}"
    body = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 6, "stream": stream,
            "messages": [{"role": "user", "content": "one two"}]}
    with httpx.Client(transport=_ToSimulator(simulator.port)) as client:
        record, span, row = one_call(telemetry, ledger, lambda: client.post(url, json=body).read())
    assert record.request_model == model and record.usage.total > 0 and record.stream is stream
    expected = by_hand(record.usage, 3.0 * premium, 15.0 * premium)  # Sonnet 4.5: $3 / $15, +10% regional
    assert record.cost_usd == pytest.approx(expected, rel=1e-12) and row["cost_usd"] == pytest.approx(expected)
    assert span["tokentrace.cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert ("endpoint=regional" in (record.service_tier or "")) is (premium > 1.0)


# --------------------------------------------------------------------------- what wins


def test_a_users_modifier_wins_over_genai_prices_and_the_bundled_table(simulator: Any, ledger: Path) -> None:
    telemetry, record, span, row = openai_chat(simulator, ledger, "gpt-5", service_tier="flex",
                                               prices={"modifiers": {"openai:service_tier=flex": 0.6}})
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 1.25 * 0.6, 10.0 * 0.6, 0.125 * 0.6), "flex",
                  "your modifiers")


def test_a_refreshed_genai_prices_table_wins_over_the_bundled_modifier_table(
        simulator: Any, ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    (data / "tokentrace").mkdir(parents=True)
    (data / "tokentrace" / "prices.json").write_text(json.dumps([{
        "id": "openai", "name": "OpenAI", "api_pattern": "https://api\\.openai\\.com",
        "models": [{"id": "gpt-4o-mini", "match": {"starts_with": "gpt-4o-mini"},
                    "prices": {"input_mtok": 0.15, "output_mtok": 0.6},
                    "price_variants": [{"when": {"service_tier": "flex"},
                                        "prices": {"input_mtok": 0.05, "output_mtok": 0.2}}]}]}]))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    from tokentrace.pricing import refresh as price_refresh

    assert price_refresh.refreshed_table_path() == data / "tokentrace" / "prices.json"
    telemetry, record, span, row = openai_chat(simulator, ledger, "gpt-4o-mini", service_tier="flex")
    # the bundled table would bill flex at gpt-4o-mini's Batch rates ($0.075 / $0.30); the refreshed one says
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 0.05, 0.2), "flex",
                  "service_tier=flex (genai-prices)")


def test_report_by_tier_groups_the_served_tiers(simulator: Any, ledger: Path) -> None:
    make_telemetry(prices=None, ledger=ledger)
    client = openai_client(simulator)
    for tier in ("flex", "flex", "priority", None):
        client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "one two"}],
                                       **({"service_tier": tier} if tier else {}))
    assert tokentrace.flush()
    result = reports.report(since="1d", by="tier", ledger=ledger)
    assert {row["key"]: row["calls"] for row in result["rows"]} == {"flex": 2, "priority": 1, "default": 1}


@pytest.mark.parametrize("bad", [
    {"modifiers": [{"provider": "openai", "key": "service_tier", "value": "flex", "multiplier": -1}]},
    {"modifiers": [{"provider": "openai", "key": "service_tier", "value": "flex", "multiplier": "half"}]},
    {"modifiers": [{"provider": "openai", "value": "flex", "multiplier": 0.5}]},
    {"modifiers": [{"provider": "openai", "key": "service_tier", "value": "flex", "multipler": 0.5}]},
    {"modifiers": "flex=0.5"},
])
def test_a_bad_modifier_is_a_config_error_that_says_what_is_wrong(bad: dict[str, Any]) -> None:
    with pytest.raises(tokentrace.ConfigError, match="modifier"):
        tokentrace.instrument(prices=bad, ledger=False)


def test_anthropic_web_searches_are_fees_on_top_of_tokens(simulator: Any, ledger: Path) -> None:
    telemetry = _telemetry(ledger)
    record, span, row = one_call(telemetry, ledger, _messages(
        _anthropic(simulator), "claude-haiku-4-5", extra_headers={"x-sim-web-searches": "3"}))
    fees = 3 * 10.0 / 1000  # $10 per 1,000 searches, on top of $1 / $5 per MTok
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 1.0, 5.0, fees=fees), "standard",
                  "genai-prices")
    assert row["fees_usd"] == pytest.approx(fees) and span["tokentrace.cost.fees_usd"] == pytest.approx(fees)


def test_groq_flex_is_billed_as_on_demand(simulator: Any, ledger: Path) -> None:
    telemetry = _telemetry(ledger)
    client = openai_client(simulator, base_url="https://api.groq.com/openai/v1")
    record, span, row = one_call(telemetry, ledger, lambda: client.chat.completions.create(
        model="llama-3.1-8b-instant", service_tier="flex", messages=[{"role": "user", "content": "one two"}]))
    # Groq llama-3.1-8b-instant: $0.05 in, $0.08 out per MTok, flex at the on-demand price
    assert_priced(telemetry, record, span, row, by_hand(record.usage, 0.05, 0.08), "flex", "genai-prices")
    assert record.provider == "groq" and span["tokentrace.service_tier"] == "flex"


def test_a_block_budget_estimates_a_priority_request_at_priority_rates(simulator: Any) -> None:
    # 11 input tokens (7 characters / 3, + 8 for the message) and 100 output: $0.000822 at gpt-4.1's standard
    # $2 / $8 per MTok, $0.0014385 at its priority $3.50 / $14; a $0.001 limit takes the first, not the second
    make_telemetry(prices=None, budgets=[tokentrace.Budget("b", limit_usd=0.001, action="block")])
    client = openai_client(simulator)
    with pytest.raises(tokentrace.BudgetExceeded, match=r"could cost up to \$0\.00143[89]"):
        client.chat.completions.create(model="gpt-4.1", service_tier="priority", max_tokens=100,
                                       messages=[{"role": "user", "content": "one two"}])
    client.chat.completions.create(model="gpt-4.1", max_tokens=100, messages=[{"role": "user", "content": "one two"}])


@pytest.mark.parametrize(("mode", "on_span", "as_event"), [("SPAN_ONLY", True, False), ("EVENT_ONLY", False, True),
                                                            ("SPAN_AND_EVENT", True, True)])
def test_captured_content_goes_where_the_capture_mode_says(simulator: Any, monkeypatch: pytest.MonkeyPatch,
                                                           mode: str, on_span: bool, as_event: bool) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    telemetry = make_telemetry(prices=None)
    client = openai_client(simulator)
    stream = client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "one two"}],
                                            stream=True, stream_options={"include_usage": True})
    list(stream)
    (span,) = telemetry.finished_spans()
    attributes = dict(span.attributes or {})
    assert ("gen_ai.input.messages" in attributes, "gen_ai.output.messages" in attributes) == (on_span, on_span)
    events = [e for e in span.events if e.name == "gen_ai.client.inference.operation.details"]
    assert bool(events) == as_event
    if as_event:
        assert "one two" in str(events[0].attributes["gen_ai.input.messages"])
        assert "gen_ai.output.messages" in (events[0].attributes or {})
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == attributes["tokentrace.usage.reasoning_tokens"] > 0
    assert attributes["gen_ai.response.time_to_first_chunk"] == attributes["tokentrace.time_to_first_token_s"] > 0


# --------------------------------------------------------------------------- audio tokens


def test_openai_audio_tokens_are_priced_at_the_audio_rates(simulator: Any, ledger: Path) -> None:
    telemetry, record, span, row = openai_chat(simulator, ledger, "gpt-audio", max_tokens=10,
                                               extra_headers={"x-sim-audio-tokens": "3,4"})
    usage = record.usage
    assert (usage.input_audio, usage.output_audio) == (3, 4)  # of input and output: the partition is unchanged
    assert usage.total == row["total_tokens"]
    # gpt-audio (developers.openai.com pricing): text $2.50 in / $10 out, audio $32 in / $64 out per MTok
    expected = ((usage.input - 3) * 2.5 + 3 * 32 + (usage.output - 4) * 10 + 4 * 64) / 1e6
    assert_priced(telemetry, record, span, row, expected, "default", "genai-prices")
    assert (span["tokentrace.usage.input_audio_tokens"], span["tokentrace.usage.output_audio_tokens"]) == (3, 4)


def test_gemini_audio_modality_tokens_are_priced_at_the_audio_rate(simulator: Any, ledger: Path) -> None:
    from google import genai
    from google.genai import types

    telemetry = _telemetry(ledger)
    client = genai.Client(api_key="AIza-test", http_options=types.HttpOptions(
        base_url=simulator.url, headers={"x-sim-audio-tokens": "2,0"}))
    record, span, row = one_call(telemetry, ledger, lambda: client.models.generate_content(
        model="gemini-2.5-flash", contents="one two three four"))
    usage = record.usage
    assert usage.input_audio == 2
    # gemini-2.5-flash (ai.google.dev pricing): text $0.30 in, audio $1.00 in, $2.50 out per MTok
    expected = ((usage.input - 2) * 0.3 + 2 * 1.0 + usage.output * 2.5) / 1e6
    assert record.cost_usd == pytest.approx(expected, rel=1e-12) and row["cost_usd"] == pytest.approx(expected)
    assert span["tokentrace.usage.input_audio_tokens"] == 2


# --------------------------------------------------------------------------- image tokens


@pytest.mark.parametrize("stream", [False, True], ids=["value", "stream"])
def test_gemini_image_output_tokens_are_priced_at_the_image_rate(simulator: Any, ledger: Path, stream: bool) -> None:
    from google import genai
    from google.genai import types

    telemetry = _telemetry(ledger)
    client = genai.Client(api_key="AIza-test", http_options=types.HttpOptions(
        base_url=simulator.url, headers={"x-sim-image-tokens": "1,6"}))

    def call() -> None:
        if stream:
            for _ in client.models.generate_content_stream(model="gemini-2.5-flash-image", contents="one two three"):
                pass
        else:
            client.models.generate_content(model="gemini-2.5-flash-image", contents="one two three")

    record, span, row = one_call(telemetry, ledger, call)
    usage = record.usage
    assert (usage.input_image, usage.output_image) == (1, 6)  # of input and output: the partition is unchanged
    assert usage.total == row["total_tokens"] == usage.input + usage.output
    # gemini-2.5-flash-image (ai.google.dev/gemini-api/docs/pricing, checked 2026-12-03): $0.30 per MTok of text
    # or image input, $2.50 of text output, $30 of image output
    expected = (usage.input * 0.3 + (usage.output - 6) * 2.5 + 6 * 30.0) / 1e6
    assert record.cost_usd == pytest.approx(expected, rel=1e-12) and row["cost_usd"] == pytest.approx(expected)
    assert span["tokentrace.cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert (span["tokentrace.usage.input_image_tokens"], span["tokentrace.usage.output_image_tokens"]) == (1, 6)


def test_an_image_rate_in_a_prices_file_prices_image_tokens(simulator: Any, ledger: Path) -> None:
    from google import genai
    from google.genai import types

    prices = {"models": {"my-image-model": {"provider": "google", "input": 1.0, "output": 2.0,
                                            "output_image": 40.0}}}
    telemetry = _telemetry(ledger, prices)
    client = genai.Client(api_key="AIza-test", http_options=types.HttpOptions(
        base_url=simulator.url, headers={"x-sim-image-tokens": "0,5"}))
    record, _, row = one_call(telemetry, ledger, lambda: client.models.generate_content(
        model="my-image-model", contents="one two"))
    usage = record.usage
    expected = (usage.input * 1.0 + (usage.output - 5) * 2.0 + 5 * 40.0) / 1e6
    assert record.cost_usd == pytest.approx(expected, rel=1e-12) and row["cost_usd"] == pytest.approx(expected)
