"""Each cause of a wrong or missing dollar figure (issue 37), replayed through the real clients against a local
server answering with the provider's recorded response shape. Expected dollars come from genai-prices' own
``extract_usage(...).calc_price()``, the host's reported bill, or the provider's published rates worked by hand;
never from tokentrace's functions."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace.simulator import sync_client
from tokentrace.testing import capture_usage

from .conftest import make_telemetry


def _genai_prices(body: dict[str, Any], provider_id: str, **context: str) -> float:
    import genai_prices

    extracted = genai_prices.extract_usage(body, provider_id=provider_id)
    return float(extracted.calc_price(price_context=context or None).total_price)  # type: ignore[arg-type]


def _serve(httpserver: Any, path: str, body: dict[str, Any]) -> None:
    httpserver.expect_request(path, method="POST").respond_with_json(body)


def _one(call: Any) -> Any:
    with capture_usage() as records:
        call()
    tokentrace.flush()
    (record,) = records
    return record


def _openai(httpserver: Any, base_url: str) -> Any:
    import openai

    return openai.OpenAI(api_key="sk-test", base_url=base_url, http_client=sync_client(httpserver.port),
                         max_retries=0)


# Vertex AI's own sample of a Flex PayGo answer (docs.cloud.google.com/vertex-ai/generative-ai/docs/flex-paygo,
# CC BY 4.0): usageMetadata.trafficType says how it was billed; Vertex sends no serviceTier.
VERTEX_FLEX = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Response to sample request."}]},
                               "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 900, "totalTokenCount": 1957,
                                 "trafficType": "ON_DEMAND_FLEX", "thoughtsTokenCount": 1054},
               "modelVersion": "gemini-2.5-flash"}
VERTEX_PATH = "/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-flash:generateContent"


@pytest.mark.parametrize("traffic, factor", [("ON_DEMAND_FLEX", 0.5), ("ON_DEMAND", 1.0)])
def test_vertex_traffic_type_says_the_tier(httpserver: Any, traffic: str, factor: float) -> None:
    """Flex PayGo is billed 50% under Standard PayGo: gemini-2.5-flash $0.30 / $2.50 standard."""
    from google import genai
    from google.genai import types

    body = json.loads(json.dumps(VERTEX_FLEX))
    body["usageMetadata"]["trafficType"] = traffic
    _serve(httpserver, VERTEX_PATH, body)
    make_telemetry(prices=None)
    client = genai.Client(vertexai=True, project="p", location="global", credentials=_NoCredentials(),
                          http_options=types.HttpOptions(base_url=httpserver.url_for("/"), api_version="v1"))
    record = _one(lambda: client.models.generate_content(model="gemini-2.5-flash", contents="hi"))
    assert record.provider == "vertex_ai"
    assert record.service_tier == ("flex" if factor < 1 else "standard")
    by_hand = (3 * 0.30 + (900 + 1054) * 2.50) / 1e6 * factor
    assert record.cost_usd == pytest.approx(by_hand, rel=1e-12)
    assert _genai_prices(body, "google") * factor == pytest.approx(record.cost_usd, rel=1e-12)


class _NoCredentials:
    """Google credentials that are always valid and add one header (no network, no key file)."""

    token = "t"
    expired = False
    valid = True
    quota_project_id = None

    def refresh(self, request: Any) -> None:
        pass

    def before_request(self, request: Any, method: Any, url: Any, headers: dict[str, str]) -> None:
        headers["authorization"] = "Bearer t"

    def apply(self, headers: dict[str, str], token: Any = None) -> None:
        headers["authorization"] = "Bearer t"


def test_gemini_cached_audio_is_priced_at_the_cached_audio_rate(httpserver: Any) -> None:
    """gemini-2.5-flash with implicit caching: 600 of the 1,000 audio prompt tokens were served from cache. The
    modality details of the prompt and of the cache are read together (cached audio $0.10, uncached audio $1.00,
    cached text $0.03 per million), as genai-prices prices them."""
    import httpx

    body = {"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 1500, "cachedContentTokenCount": 800, "candidatesTokenCount": 20,
                              "totalTokenCount": 1520,
                              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 500},
                                                      {"modality": "AUDIO", "tokenCount": 1000}],
                              "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 200},
                                                     {"modality": "AUDIO", "tokenCount": 600}]},
            "modelVersion": "gemini-2.5-flash"}
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    _serve(httpserver, path, body)
    make_telemetry(prices=None)
    record = _one(lambda: httpx.post(httpserver.url_for(path), json={"contents": [{"parts": [{"text": "x"}]}]}))
    assert (record.usage.input, record.usage.cache_read, record.usage.input_audio,
            record.usage.cache_read_audio) == (700, 800, 400, 600)
    by_hand = (300 * 0.30 + 400 * 1.00 + 200 * 0.03 + 600 * 0.10 + 20 * 2.50) / 1e6
    assert record.cost_usd == pytest.approx(by_hand, rel=1e-12)
    assert record.cost_usd == pytest.approx(_genai_prices(body, "google"), rel=1e-12)


OPENROUTER_RESPONSE = {
    "id": "gen-1", "object": "response", "created_at": 1760000000, "status": "completed", "model": "openai/gpt-5-mini",
    "output": [{"type": "message", "id": "m1", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "hi", "annotations": []}]}],
    "service_tier": "auto", "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    "usage": {"input_tokens": 96, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 856,
              "output_tokens_details": {"reasoning_tokens": 768}, "total_tokens": 952, "cost": 0.002196}}


def test_openrouter_responses_api_is_charged_the_bill_openrouter_reports(httpserver: Any) -> None:
    _serve(httpserver, "/api/v1/responses", OPENROUTER_RESPONSE)
    make_telemetry(prices=None)
    client = _openai(httpserver, "https://openrouter.ai/api/v1")
    record = _one(lambda: client.responses.create(model="openai/gpt-5-mini", input="hi"))
    assert record.provider == "openrouter"
    assert record.cost_usd == 0.002196 and record.price_source == "reported by openrouter"


@pytest.mark.parametrize("field, value, usd", [("cost_in_usd_ticks", 158_000_000, 0.0158),
                                               ("estimated_cost", 0.000123, 0.000123)])
def test_a_bill_the_host_reports_wins_in_chat(httpserver: Any, field: str, value: float, usd: float) -> None:
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "some-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, field: value}}
    _serve(httpserver, "/v1/chat/completions", body)
    make_telemetry(prices=None)
    client = _openai(httpserver, "https://llm.example.net/v1")
    record = _one(lambda: client.chat.completions.create(model="some-model", messages=[{"role": "user",
                                                                                         "content": "hi"}]))
    assert record.cost_usd == pytest.approx(usd, rel=1e-12)


def _chat(model: str, tier: str | None = None, prompt: int = 1000, completion: int = 200) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "c1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}
    if tier is not None:
        body["service_tier"] = tier
    return body


@pytest.mark.parametrize("tier, factor", [("default", 1.0), ("flex", 0.5)])
def test_a_gateway_in_front_of_openai_prices_its_served_tier_by_openais_rules(httpserver: Any, tier: str,
                                                                             factor: float) -> None:
    """gpt-5-mini at an unknown host: the price is inferred from OpenAI's entry, and so are the tier rules (flex
    is billed at half, OpenAI's flex processing page); $0.25 / $2.00 per million at standard."""
    _serve(httpserver, "/v1/chat/completions", _chat("gpt-5-mini", tier))
    make_telemetry(prices=None)
    client = _openai(httpserver, "https://llm-gateway.example.com/v1")
    record = _one(lambda: client.chat.completions.create(model="gpt-5-mini", messages=[{"role": "user",
                                                                                         "content": "hi"}]))
    assert record.provider == "openai_compatible"
    assert record.cost_usd == pytest.approx((1000 * 0.25 + 200 * 2.00) / 1e6 * factor, rel=1e-12)


@pytest.mark.parametrize("how", ["mapping", "file"])
def test_an_undated_override_prices_the_dated_snapshot_the_response_names(httpserver: Any, tmp_path: Path,
                                                                          how: str) -> None:
    _serve(httpserver, "/v1/chat/completions", _chat("gpt-4o-mini-2024-07-18"))
    prices: Any = {"models": {"gpt-4o-mini": {"provider": "openai", "input": 0.30, "output": 1.20}}}
    if how == "file":
        path = tmp_path / "prices.toml"
        path.write_text('[models."gpt-4o-mini"]\nprovider = "openai"\ninput = 0.30\noutput = 1.20\n')
        prices = str(path)
    make_telemetry(prices=prices)
    client = _openai(httpserver, "https://api.openai.com/v1")
    record = _one(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user",
                                                                                          "content": "hi"}]))
    assert record.model == "gpt-4o-mini-2024-07-18"
    assert record.cost_usd == pytest.approx((1000 * 0.30 + 200 * 1.20) / 1e6, rel=1e-12)
    assert "override:" in (record.price_source or "")


def test_a_dated_override_wins_over_an_undated_one(httpserver: Any) -> None:
    _serve(httpserver, "/v1/chat/completions", _chat("gpt-4o-mini-2024-07-18"))
    make_telemetry(prices={"models": {"gpt-4o-mini": {"provider": "openai", "input": 0.30, "output": 1.20},
                                      "gpt-4o-mini-2024-07-18": {"provider": "openai", "input": 1.0, "output": 2.0}}})
    client = _openai(httpserver, "https://api.openai.com/v1")
    record = _one(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user",
                                                                                          "content": "hi"}]))
    assert record.cost_usd == pytest.approx((1000 * 1.0 + 200 * 2.0) / 1e6, rel=1e-12)


def test_unpriced_answered_calls_count_their_floor_against_a_block_budget(httpserver: Any, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """$0.16 a day and a model nobody prices: each answered call counts the $0.05 floor, so the fourth is
    refused before it is sent (the ledger keeps cost_usd NULL: the dollar figure is unknown, not $0)."""
    monkeypatch.setenv("TOKENTRACE_UNPRICED_ESTIMATE_USD", "0.05")
    _serve(httpserver, "/v1/chat/completions", _chat("house-model-7"))
    ledger = tmp_path / "usage.db"
    make_telemetry(prices=None, ledger=str(ledger),
                   budgets=[tokentrace.Budget("d", limit_usd=0.16, action="block")])
    client = _openai(httpserver, "https://llm.internal.example/v1")
    answered = refused = 0
    for _ in range(6):
        try:
            client.chat.completions.create(model="house-model-7", messages=[{"role": "user", "content": "hi"}])
            answered += 1
        except tokentrace.BudgetExceeded:
            refused += 1
    assert (answered, refused) == (3, 3)
    assert tokentrace.flush()
    rows = sqlite3.connect(ledger).execute(
        "SELECT cost_usd, charged_usd FROM llm_usage WHERE status = 'ok'").fetchall()
    assert rows == [(None, 0.05)] * 3


def test_a_refused_call_is_recorded_under_the_name_its_model_was_answered_under(httpserver: Any,
                                                                                tmp_path: Path) -> None:
    _serve(httpserver, "/v1/chat/completions", _chat("gpt-4o-mini-2024-07-18", prompt=100_000, completion=100))
    telemetry = make_telemetry(prices=None, ledger=str(tmp_path / "u.db"),
                               budgets=[tokentrace.Budget("d", limit_usd=0.01, action="block")])
    client = _openai(httpserver, "https://api.openai.com/v1")
    with capture_usage() as records:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(tokentrace.BudgetExceeded):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert [(r.status, r.model) for r in records] == [("ok", "gpt-4o-mini-2024-07-18"),
                                                      ("blocked", "gpt-4o-mini-2024-07-18")]
    assert telemetry.sample("llm_requests_total", provider="openai", model="gpt-4o-mini-2024-07-18",
                            operation="chat", status="blocked", feature="") == 1


@pytest.mark.parametrize("base_url, model", [("https://router.huggingface.co/novita/v3/openai", "MiniMaxAI/MiniMax-M2"),
                                             ("https://router.huggingface.co/v1", "MiniMaxAI/MiniMax-M2:novita")])
def test_the_hugging_face_router_is_priced_at_the_backend_that_served_it(httpserver: Any, base_url: str,
                                                                         model: str) -> None:
    """The router names the serving backend in its path (or the model's ``:backend`` suffix); genai-prices prices
    those backends as ``huggingface_<backend>``: the reference is genai-prices' own price for that provider."""
    import genai_prices
    from genai_prices.types import Usage as GenaiUsage

    path = base_url.split("huggingface.co", 1)[1] + "/chat/completions"
    _serve(httpserver, path, _chat("MiniMaxAI/MiniMax-M2", prompt=1200, completion=300))
    make_telemetry(prices=None)
    client = _openai(httpserver, base_url)
    record = _one(lambda: client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}]))
    expected = genai_prices.calc_price(GenaiUsage(input_tokens=1200, output_tokens=300), "MiniMaxAI/MiniMax-M2",
                                       provider_id="huggingface_novita").total_price
    assert record.provider == "openai_compatible"
    assert record.cost_usd == pytest.approx(float(expected), rel=1e-12)
    assert "huggingface_novita" in (record.price_source or "")


def test_the_hugging_face_router_on_the_wire_is_priced_at_its_backend(httpserver: Any) -> None:
    import genai_prices
    import httpx
    from genai_prices.types import Usage as GenaiUsage

    _serve(httpserver, "/novita/v3/openai/chat/completions", _chat("MiniMaxAI/MiniMax-M2", prompt=50, completion=7))
    make_telemetry(prices=None)
    transport = httpx.HTTPTransport()

    class ToLocal(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=httpserver.port)
            return transport.handle_request(request)

    with httpx.Client(transport=ToLocal()) as http:
        record = _one(lambda: http.post("https://router.huggingface.co/novita/v3/openai/chat/completions",
                                        json={"model": "MiniMaxAI/MiniMax-M2",
                                              "messages": [{"role": "user", "content": "hi"}]}))
    expected = genai_prices.calc_price(GenaiUsage(input_tokens=50, output_tokens=7), "MiniMaxAI/MiniMax-M2",
                                       provider_id="huggingface_novita").total_price
    assert record.cost_usd == pytest.approx(float(expected), rel=1e-12)
