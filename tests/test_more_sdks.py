"""The six further SDKs beyond the suite's matrix: errors, cut streams and missing usage through each real client;
rules each provider has of its own (Bedrock cache TTLs, Cohere's billed units, xAI's reported cost, Ollama's
local price, Vertex AI's label); calls to other AWS services pass through unmeasured."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import tokentrace
from tokentrace.testing import capture_usage

from . import more_sdk_cases
from .cases import MAX, MESSAGES, Case
from .conftest import Telemetry, make_telemetry
from .test_provider_suite import run

FIRST_CHAT = {case.provider: case for case in reversed(more_sdk_cases.CASES) if case.operation == "chat"}
PROVIDERS = sorted(FIRST_CHAT)


def _run(case: Case, mode: str, sim: Any) -> Any:
    """Run one case as the suite does; return what the caller got, or the exception it raised."""
    try:
        return run(case, mode, sim)
    except Exception as exc:
        return exc


def _without_dates(text: str) -> str:
    """An error's text without the response's Date header (Cohere's errors print the headers)."""
    return re.sub(r"'date': '[^']*'", "'date': ...", text)


FAILURES = [(p, error, mode) for p in PROVIDERS for error, mode in (("429", "sync"), ("500", "stream"),
                                                                       ("cut", "stream"))]


@pytest.mark.parametrize(("provider", "error", "mode"), FAILURES, ids=[f"{p}-{e}-{m}" for p, e, m in FAILURES])
def test_sdk_errors_reach_the_caller_unchanged_and_are_recorded(provider: str, error: str, mode: str,
                                                                simulator: Any) -> None:
    case = FIRST_CHAT[provider]
    with simulator.behaving(error=error):
        plain = _run(case, mode, simulator)
        telemetry = make_telemetry()
        with capture_usage() as records:
            measured = _run(case, mode, simulator)
    assert isinstance(plain, Exception), plain
    assert type(measured) is type(plain)
    assert _without_dates(str(measured)) == _without_dates(str(plain))
    (record,) = records
    assert (record.status, record.provider, record.error_type) == ("error", provider, type(plain).__qualname__)
    (span,) = telemetry.finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert telemetry.sample("llm_requests_total", provider=provider, model=record.model, operation="chat",
                            status="error", feature="") == 1


NO_USAGE = [(p, mode) for p in PROVIDERS for mode in ("sync", "stream")
            if (p, mode) != ("mistral", "sync")]  # Mistral's SDK rejects a response without usage: the API always
#                                                   sends it there


@pytest.mark.parametrize(("provider", "mode"), NO_USAGE)
def test_missing_usage_is_recorded_as_unreported_never_zero_cost(provider: str, mode: str, simulator: Any,
                                                                 telemetry: Telemetry) -> None:
    case = FIRST_CHAT[provider]
    with simulator.behaving(error="no-usage"), capture_usage() as records:
        result = _run(case, mode, simulator)
    assert not isinstance(result, Exception), result
    (record,) = records
    assert (record.status, record.usage_reported, record.cost_usd) == ("ok", False, None)


# ---------------------------------------------------------------- provider rules, from documented shapes
def test_bedrock_converse_usage_per_the_api_reference() -> None:
    """TokenUsage: inputTokens excludes cache reads and writes, totalTokens counts them; cacheDetails by TTL."""
    from tokentrace.providers.bedrock import converse_usage

    usage = converse_usage({"inputTokens": 12, "outputTokens": 40, "totalTokens": 12 + 40 + 900 + 300,
                            "cacheReadInputTokens": 900, "cacheWriteInputTokens": 300,
                            "cacheDetails": [{"ttl": "1h", "inputTokens": 200}, {"ttl": "5m", "inputTokens": 100}]})
    assert usage == tokentrace.Usage(input=12, cache_read=900, cache_write=300, output=40, cache_write_1h=200)
    # a total without the cache counts says they are inside inputTokens
    inside = converse_usage({"inputTokens": 1212, "outputTokens": 40, "totalTokens": 1252,
                             "cacheReadInputTokens": 900, "cacheWriteInputTokens": 300})
    assert inside == tokentrace.Usage(input=12, cache_read=900, cache_write=300, output=40)
    assert converse_usage({"inputTokens": 25, "outputTokens": 9, "totalTokens": 34}) == \
        tokentrace.Usage(input=25, output=9)


def test_cohere_bills_billed_units_not_tokens() -> None:
    from tokentrace.providers.cohere import extract_chat

    documented = {"id": "c14c80c3", "finish_reason": "COMPLETE",
                  "message": {"role": "assistant", "content": [{"type": "text", "text": "LLMs are..."}]},
                  "usage": {"billed_units": {"input_tokens": 5.0, "output_tokens": 418.0},
                            "tokens": {"input_tokens": 71.0, "output_tokens": 418.0}}}
    info = extract_chat(documented, _prepared())
    assert info.usage == tokentrace.Usage(input=5, output=418)
    assert info.finish_reasons == ("COMPLETE",)


def test_ollama_counts_from_the_final_message() -> None:
    from tokentrace.providers.ollama import extract

    documented = {"model": "llama3.2", "created_at": "2023-12-12T14:13:43.416799Z",
                  "message": {"role": "assistant", "content": "Hello! How are you today?"}, "done": True,
                  "done_reason": "stop", "total_duration": 5191566416, "load_duration": 2154458,
                  "prompt_eval_count": 26, "prompt_eval_duration": 383809000, "eval_count": 298,
                  "eval_duration": 4799921000}
    assert extract(documented, _prepared()).usage == tokentrace.Usage(input=26, output=298)


def test_xai_reasoning_is_on_top_of_completion_tokens_by_the_total() -> None:
    from xai_sdk.proto import usage_pb2

    from tokentrace.providers.xai_sdk import usage_from

    usage = usage_pb2.SamplingUsage(prompt_tokens=120, cached_prompt_text_tokens=100, completion_tokens=30,
                                    reasoning_tokens=200, total_tokens=350)
    assert usage_from(usage) == tokentrace.Usage(input=20, cache_read=100, output=30, reasoning=200)


def test_bedrock_invoke_stream_uses_the_invocation_metrics() -> None:
    from tokentrace.providers.bedrock import EventAccumulator

    accumulator = EventAccumulator(_prepared())
    last = {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": 18, "outputTokenCount": 52, "invocationLatency": 1290, "firstByteLatency": 470}}
    accumulator.chunk({"chunk": {"bytes": b'{"type":"content_block_delta","delta":{"text":"Hi"}}'}})
    accumulator.chunk({"chunk": {"bytes": json.dumps(last).encode()}})
    assert accumulator.result().usage == tokentrace.Usage(input=18, output=52)


def _prepared() -> Any:
    from tokentrace._usage import RequestInfo
    from tokentrace.providers import Prepared

    return Prepared(RequestInfo("test", "chat", "m"), {})


# ---------------------------------------------------------------- through the real clients
def test_bedrock_prompt_cache_is_split_and_priced_per_ttl(simulator: Any, telemetry: Telemetry) -> None:
    from .cases import bedrock_client

    client = bedrock_client(simulator)
    headers = {"x-sim-prompt-tokens": "2000", "x-sim-cached-tokens": "1200", "x-sim-cache-write-tokens": "500",
               "x-sim-cache-write-1h-tokens": "300"}

    def add_headers(request: Any, **_: Any) -> None:
        for name, value in headers.items():
            request.headers[name] = value

    client.meta.events.register("before-send.bedrock-runtime.*", add_headers)
    with capture_usage() as records:
        client.converse(**more_sdk_cases.CONVERSE_KW)
        list(client.converse_stream(**more_sdk_cases.CONVERSE_KW)["stream"])
    # botocore versions before Converse's cacheDetails drop the TTL split while parsing: nothing can read it then
    ttl_known = "cacheDetails" in client.meta.service_model.shape_for("TokenUsage").members
    expected = tokentrace.Usage(input=300, cache_read=1200, cache_write=500, output=MAX,
                                cache_write_1h=300 if ttl_known else 0)
    assert [r.usage for r in records] == [expected, expected]
    assert records[0].cost_usd == pytest.approx((300 * 0.8 + 1200 * 0.08 + 500 * 1.0 + MAX * 4.0) / 1e6)


def test_boto3_calls_to_other_services_pass_through_unmeasured(simulator: Any, telemetry: Telemetry) -> None:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=simulator.url, aws_access_key_id="AKIATEST",
                      aws_secret_access_key="secret", config=Config(retries={"total_max_attempts": 1}))
    with capture_usage() as records, pytest.raises(Exception):  # noqa: B017 - the simulator serves no S3
        s3.list_buckets()
    assert records == []


def test_a_cost_xai_reports_wins_over_the_price_table(simulator: Any, telemetry: Telemetry) -> None:
    import xai_sdk

    client = xai_sdk.Client(api_key="xai-test-secret-key", api_host=simulator.grpc_address,
                            use_insecure_channel=True, metadata=(("x-sim-report-cost", "1"),))
    with capture_usage() as records:
        more_sdk_cases.CASES[-1].runners["sync"](client)
    (record,) = records
    from xai_sdk.proto import usage_pb2

    if "cost_in_usd_ticks" in usage_pb2.SamplingUsage.DESCRIPTOR.fields_by_name:
        assert record.cost_usd == pytest.approx(record.usage.total * 1e-6)
        assert record.price_source == "reported by xai"
    else:  # an SDK whose protocol predates reported costs: the price table prices the call
        assert record.price_source is not None and record.price_source.startswith("override")


def test_ollama_models_are_local_and_free_unless_priced(simulator: Any) -> None:
    import ollama

    tokentrace.instrument(ledger=False, prices={})
    with capture_usage() as records:
        ollama.Client(host=simulator.url).chat(more_sdk_cases.OLLAMA, MESSAGES)
    (record,) = records
    assert (record.cost_usd, record.price_source, record.usage.total) == (0.0, "local", 7 + 8)


def test_module_level_ollama_functions_are_measured(simulator: Any, tmp_path: Any) -> None:
    """``ollama.chat`` is a method of a default client bound at import: measured too (a fresh process, so the
    default client is built for the simulator from OLLAMA_HOST)."""
    script = (
        "import tokentrace, json\n"
        "from tokentrace.testing import capture_usage\n"
        "tokentrace.instrument(ledger=False)\n"
        "import ollama\n"
        "with capture_usage() as records:\n"
        "    ollama.chat('llama3.2', [{'role': 'user', 'content': 'one two three'}])\n"
        "    list(ollama.generate(model='llama3.2', prompt='one two three', stream=True))\n"
        "print(json.dumps([[r.provider, r.operation, r.stream, list(r.usage[:5])] for r in records]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
                         env={**_env(), "OLLAMA_HOST": simulator.url})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        ["ollama", "chat", False, [7, 0, 0, 8, 0]], ["ollama", "text_completion", True, [3, 0, 0, 8, 0]]]


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TOKENTRACE_")}


def test_vertex_ai_through_google_genai_has_its_own_label(simulator: Any, telemetry: Telemetry) -> None:
    from google import genai
    from google.genai import types

    client = genai.Client(vertexai=True, api_key="vertex-test-secret-key",
                          http_options=types.HttpOptions(base_url=simulator.url))
    with capture_usage() as records:
        client.models.generate_content(model="gemini-2.5-flash", contents="one two three",
                                       config=types.GenerateContentConfig(max_output_tokens=MAX))
    (record,) = records
    assert (record.provider, record.usage) == ("vertex_ai", tokentrace.Usage(input=7, output=MAX))
    (span,) = telemetry.finished_spans()
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"


def test_a_cohere_client_built_before_instrument_has_its_chats_measured_on_the_wire(simulator: Any) -> None:
    """ClientV2 copies chat onto each instance when it is built: a client built before instrument() keeps the
    unpatched method, and its chat is measured by the wire layer instead, once, with the SDK layer's usage rule."""
    from .cases import _cohere

    tokentrace.uninstrument()
    client = _cohere(simulator)
    make_telemetry()
    with capture_usage() as records:
        answer = client.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "one two three"}])
    (record,) = records
    billed = answer.usage.billed_units
    assert (record.provider, record.usage_reported) == ("cohere", True)
    assert (record.usage.input, record.usage.output) == (int(billed.input_tokens), int(billed.output_tokens))
