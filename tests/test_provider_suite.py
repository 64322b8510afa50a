"""Every provider x every call x {sync, async, stream, async stream}: exact tokens per type, cost, span, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

import tokentrace
from tokentrace.testing import capture_usage

from . import anthropic_cases, google_cases, more_sdk_cases, openai_cases
from .cases import MODES, Case, async_client, sync_client
from .conftest import TEST_PRICES, Telemetry

CASES = openai_cases.CASES + anthropic_cases.CASES + google_cases.CASES + more_sdk_cases.CASES
MATRIX = [(case, mode) for case in CASES for mode in MODES if mode in case.runners]

IS_STREAM = {"sync": False, "async": False, "stream": True, "async_stream": True}
SEMCONV_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "google": "gcp.gemini", "groq": "groq",
                    "mistral": "mistral_ai", "cohere": "cohere", "ollama": "ollama", "bedrock": "aws.bedrock",
                    "xai": "x_ai"}
SERVER = {"openai": "api.openai.com", "anthropic": "127.0.0.1", "google": "127.0.0.1", "groq": "api.groq.com",
          "mistral": "api.mistral.ai", "cohere": "api.cohere.com", "ollama": "127.0.0.1", "bedrock": "127.0.0.1",
          "xai": None}
"""``server.address`` on spans; None: the SDK does not tell (xai-sdk's gRPC channel keeps its target private)."""
NO_RESPONSE_ID = {"ollama"}
"""Providers whose responses carry no id."""
IDS = [f"{c}-{m}" for c, m in MATRIX]


def run(case: Case, mode: str, sim: Any) -> Any:
    runner = case.runners[mode]
    if mode.startswith("async"):

        async def go() -> Any:
            async with async_client(case.provider, sim) as client:
                return await runner(client)  # type: ignore[misc]

        return asyncio.run(go())
    with sync_client(case.provider, sim) as client:
        return runner(client)


def expected_cost(model: str, usage: tokentrace.Usage) -> float:
    p = TEST_PRICES[model]
    return (usage.input * p["input"] + usage.cache_read * p.get("cache_read", p["input"])
            + usage.output * p["output"] + usage.reasoning * p["output"]) / 1_000_000


def _major(distribution: str) -> int:
    from importlib.metadata import version

    return int(version(distribution).split(".")[0])


@pytest.mark.parametrize(("case", "mode"), MATRIX, ids=IDS)
def test_call_is_measured_exactly(case: Case, mode: str, simulator: Any, telemetry: Telemetry) -> None:
    with tokentrace.attributes(feature="summarize", session_id="s-42", user_id="u-7", agent_id="planner"), \
            capture_usage() as records:
        run(case, mode, simulator)

    assert len(records) == 1
    record = records[0]
    if case.provider == "google" and case.operation == "embeddings" and _major("google-genai") < 3:
        # google-genai 2.x has no field for the embeddings' usageMetadata: the SDK drops it, the call is counted
        assert (record.status, record.usage_reported) == ("ok", False)
        return
    cost = expected_cost(case.response_model, case.usage)
    assert record.usage == case.usage
    assert record.usage_reported
    assert record.cost_usd == pytest.approx(cost, rel=1e-12)
    assert record.status == "ok"
    assert (record.provider, record.model, record.request_model) == (case.provider, case.response_model,
                                                                     case.request_model)
    assert record.operation == case.operation
    assert record.stream is IS_STREAM[mode]
    assert (record.ttft_s is not None) is IS_STREAM[mode]
    assert record.attributes["feature"] == "summarize"

    labels = {"provider": case.provider, "model": case.response_model, "operation": case.operation}
    for token_type, value in case.usage.by_type():
        assert telemetry.sample("tokens_used_total", **labels, token_type=token_type, feature="summarize") == value
    assert telemetry.sample("chat_cost_usd_total", **labels, feature="summarize") == pytest.approx(cost, rel=1e-12)
    assert telemetry.sample("llm_requests_total", **labels, status="ok", feature="summarize") == 1
    assert telemetry.sample("llm_latency_seconds_count", **labels, status="ok") == 1
    assert telemetry.sample("llm_time_to_first_token_seconds_count", **labels) == (1 if IS_STREAM[mode] else 0)
    assert telemetry.sample("llm_request_tokens_sum", provider=case.provider, model=case.response_model,
                            direction="input") == case.usage.all_input

    (span,) = telemetry.finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == f"{case.operation} {case.request_model}"
    assert span.kind is SpanKind.CLIENT
    assert attrs["gen_ai.operation.name"] == case.operation
    assert attrs["gen_ai.provider.name"] == SEMCONV_PROVIDER[case.provider]
    assert attrs["gen_ai.request.model"] == case.request_model
    assert attrs["gen_ai.response.model"] == case.response_model
    assert attrs["gen_ai.usage.input_tokens"] == case.usage.all_input
    assert attrs["gen_ai.usage.output_tokens"] == case.usage.all_output
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == case.usage.cache_read
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == case.usage.cache_write
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == case.usage.cache_write  # the newer name, beside it
    assert attrs["gen_ai.request.stream"] is IS_STREAM[mode]
    assert attrs["tokentrace.cost_usd"] == pytest.approx(cost, rel=1e-12)
    assert attrs["tokentrace.feature"] == "summarize"
    assert attrs["tokentrace.session_id"] == "s-42"
    assert attrs["gen_ai.usage.cost"] == attrs["tokentrace.cost_usd"]  # the names backends read
    assert (attrs["session.id"], attrs["gen_ai.conversation.id"], attrs["user.id"], attrs["gen_ai.agent.name"]) == \
        ("s-42", "s-42", "u-7", "planner")
    assert "gen_ai.usage.cost.amount" not in attrs  # the proposed trio only when opted in
    assert attrs.get("server.address") == SERVER[case.provider]
    assert attrs["tokentrace.price_source"] == "override:mapping"
    if case.operation != "embeddings" and case.provider not in NO_RESPONSE_ID:  # embeddings carry no id
        assert attrs["gen_ai.response.id"]
    if case.operation != "embeddings":
        assert attrs["gen_ai.response.finish_reasons"]
    if IS_STREAM[mode]:
        assert attrs["tokentrace.time_to_first_token_s"] >= 0
    assert span.status.status_code is not StatusCode.ERROR

    otel = telemetry.otel_metrics()
    token_points = {dict(p.attributes)["gen_ai.token.type"]: p.sum for p in otel["gen_ai.client.token.usage"]}
    assert token_points == {"input": case.usage.all_input, "output": case.usage.all_output}
    assert [p.count for p in otel["gen_ai.client.operation.duration"]] == [1]
    assert ("gen_ai.client.operation.time_to_first_chunk" in otel) is IS_STREAM[mode]


@pytest.mark.parametrize(("case", "mode"), MATRIX, ids=IDS)
def test_caller_sees_exactly_what_the_sdk_returns(case: Case, mode: str, simulator: Any) -> None:
    """Same types and the same chunks with and without tokentrace (an injected usage chunk is hidden)."""
    plain = run(case, mode, simulator)
    tokentrace.instrument(ledger=False, registry=CollectorRegistry())
    measured = run(case, mode, simulator)

    def shape(result: Any) -> Any:
        if isinstance(result, list):
            return [type(item).__name__ for item in result]
        return type(result)

    assert shape(measured) == shape(plain)
    if isinstance(measured, list) and measured and hasattr(measured[0], "choices"):
        assert all(chunk.usage is None for chunk in measured)
        assert [len(c.choices) for c in measured] == [len(c.choices) for c in plain]
