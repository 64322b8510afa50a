"""The dollars corpus: real provider responses recorded by other projects' test suites (``tests/data/dollars``,
rebuilt by its ``build.py``; licence and source per recording) replayed through the real clients against a local
server, with tokentrace's bundled prices (no test overrides). Each call's ``cost_usd`` must equal genai-prices' own
``extract_usage(...).calc_price()`` of the provider's final usage, at the served tier: the reference is computed by
genai-prices, never by tokentrace's functions. A difference not explained by a documented modifier fails.

Anthropic recordings go through the anthropic SDK (``messages.create(stream=True)``); Gemini ones were recorded as
``streamGenerateContent`` JSON arrays (no ``alt=sse``, which google-genai always asks for), so they are replayed
over raw httpx and measured by the wire layer.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace.testing import capture_usage

RECORDINGS = json.loads((Path(__file__).parent / "data" / "dollars" / "recordings.json").read_text("utf-8"))


def _anthropic_final(body: str) -> dict[str, Any]:
    """The message the provider billed, as its events say: message_start's message, with each message_delta's
    cumulative usage laid over it (Anthropic's documented stream rule)."""
    message: dict[str, Any] = {}
    for line in body.splitlines():
        if not line.startswith("data:"):
            continue
        event = json.loads(line[5:])
        if event.get("type") == "message_start":
            message = dict(event["message"])
            message["usage"] = dict(message.get("usage") or {})
        elif event.get("type") == "message_delta" and event.get("usage"):
            message["usage"].update({k: v for k, v in event["usage"].items() if v is not None})
    return message


def _gemini_final(body: str) -> dict[str, Any]:
    chunks = json.loads(body)
    final = next(c for c in reversed(chunks) if c.get("usageMetadata"))
    return {"modelVersion": final.get("modelVersion"), "usageMetadata": final["usageMetadata"]}


def _sse_payloads(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in body.splitlines()
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]")]


def _openai_final(recording: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The answer the provider billed, and genai-prices' API flavour for it: a whole answer as it is; a chat stream's
    usage chunk; a Responses stream's ``response.completed`` response."""
    flavor = "responses" if recording["path"].endswith("/responses") else "chat"
    if not recording["body"].lstrip().startswith(("data:", "event:")):
        return json.loads(recording["body"]), flavor
    payloads = _sse_payloads(recording["body"])
    if flavor == "responses":
        return next(p["response"] for p in payloads if p.get("type") == "response.completed"), flavor
    return next(p for p in reversed(payloads) if p.get("usage")), flavor


def reference_usd(recording: dict[str, Any]) -> float:
    """genai-prices' own extraction and price of the provider's final usage, or the bill the host reported in it
    (OpenRouter's ``usage.cost``: some recordings of OpenAI-format answers came from it)."""
    import genai_prices

    if recording["provider"] == "anthropic":
        extracted = genai_prices.extract_usage(_anthropic_final(recording["body"]), provider_id="anthropic")
    elif recording["provider"] == "google":
        extracted = genai_prices.extract_usage(_gemini_final(recording["body"]), provider_id="google")
    else:
        final, flavor = _openai_final(recording)
        if final["usage"].get("cost") is not None:
            return float(final["usage"]["cost"])
        extracted = genai_prices.extract_usage(final, provider_id="openai", api_flavor=flavor)
    return float(extracted.calc_price().total_price)


def _sdk_kwargs(method: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The recorded request as the SDK method takes it: its own parameters, the rest as the body it was sent with."""
    accepted = inspect.signature(method).parameters
    kwargs = {k: v for k, v in request.items() if k in accepted}
    extra = {k: v for k, v in request.items() if k not in accepted}
    return {**kwargs, "extra_body": extra} if extra else kwargs


def _replay(recording: dict[str, Any], url: str) -> None:
    if recording["provider"] == "openai":
        import openai

        client = openai.OpenAI(api_key="sk-test", base_url=url + "/v1", max_retries=0)
        method = client.responses.create if recording["path"].endswith("/responses") else \
            client.chat.completions.create
        answer = method(**_sdk_kwargs(method, recording["request"]))
        if recording["request"].get("stream"):
            for _ in answer:
                pass
    elif recording["provider"] == "anthropic":
        import anthropic

        request = recording["request"]
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=url, max_retries=0)
        accepted = inspect.signature(client.messages.create).parameters  # this SDK's own parameters, the rest as
        kwargs = {k: v for k, v in request.items() if k in accepted and k != "stream"}  # the body it was sent with
        extra = {k: v for k, v in request.items() if k not in accepted}
        for _ in client.messages.create(stream=True, extra_body=extra or None, **kwargs):
            pass
    else:
        import httpx

        response = httpx.post(url + recording["path"], json=recording["request"],
                              headers={"x-goog-api-key": "AIza-test"})
        assert response.status_code == 200 and response.json()


@pytest.mark.parametrize("recording", RECORDINGS, ids=[r["id"] for r in RECORDINGS])
def test_recorded_call_costs_what_genai_prices_says(recording: dict[str, Any], httpserver: Any) -> None:
    from .conftest import make_telemetry

    httpserver.expect_request(recording["path"], method="POST").respond_with_data(
        recording["body"], content_type=recording["content_type"])
    make_telemetry(prices=None)
    with capture_usage() as records:
        _replay(recording, httpserver.url_for("/").rstrip("/"))
    tokentrace.flush()
    (record,) = records
    expected = reference_usd(recording)
    assert record.usage_reported
    assert record.cost_usd == pytest.approx(expected, rel=1e-9, abs=1e-12), (record.price_source, record.usage)


def test_corpus_keeps_its_sources_and_licences() -> None:
    assert len(RECORDINGS) >= 68 and {r["provider"] for r in RECORDINGS} == {"openai", "anthropic", "google"}
    for recording in RECORDINGS:
        assert recording["source"]["licence"] and len(recording["source"]["commit"]) == 40
