"""What holds for every provider: instrument/uninstrument, import order, concurrency, failures stay inside.

Most tests drive the openai SDK (the cheapest to run); errors and cut streams run for every provider.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
import wrapt
from google.genai import types

import tokentrace
from tokentrace.testing import capture_usage

from .anthropic_cases import CLAUDE
from .cases import MESSAGES, sync_client
from .conftest import Telemetry, make_telemetry, openai_async_client, openai_client
from .google_cases import GEMINI

A_KW: dict[str, Any] = {"model": CLAUDE, "max_tokens": 6, "messages": MESSAGES}


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_instrument_twice_returns_the_same_handle_and_uninstrument_twice_is_safe(telemetry: Telemetry) -> None:
    assert tokentrace.instrument() is telemetry.handle
    tokentrace.uninstrument()
    tokentrace.uninstrument()


def test_nothing_is_recorded_after_uninstrument(simulator: Any, telemetry: Telemetry) -> None:
    from openai.resources.chat.completions.completions import Completions

    assert isinstance(vars(Completions)["create"], wrapt.FunctionWrapper)
    tokentrace.uninstrument()
    assert not isinstance(vars(Completions)["create"], wrapt.FunctionWrapper)
    with openai_client(simulator) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert telemetry.finished_spans() == ()
    assert telemetry.sample("llm_requests_total", provider="openai", model="gpt-4o-mini-2024-07-18",
                            operation="chat", status="ok", feature="") == 0


def test_a_client_created_before_instrument_is_measured(simulator: Any) -> None:
    client = openai_client(simulator)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # used before instrument(), too
    make_telemetry()
    with capture_usage() as records:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.embeddings.create(model="text-embedding-3-small", input="x")
        client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES).parse()
    assert [r.operation for r in records] == ["chat", "embeddings", "chat"]


def test_instrument_before_the_sdk_is_imported_patches_it_on_import() -> None:
    result = _run_python(
        "import sys, tokentrace\n"
        "tokentrace.instrument(ledger=False)\n"
        "assert 'openai' not in sys.modules\n"
        "import openai\n"
        "from openai.resources.chat.completions.completions import Completions\n"
        "import wrapt; assert isinstance(vars(Completions)['create'], wrapt.FunctionWrapper)\n"
        "print('ok')\n"
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_tokentrace_disabled_patches_nothing() -> None:
    result = _run_python(
        "import tokentrace, openai\n"
        "handle = tokentrace.instrument(ledger=False)\n"
        "from openai.resources.chat.completions.completions import Completions\n"
        "import wrapt; assert not isinstance(vars(Completions)['create'], wrapt.FunctionWrapper)\n"
        "assert not handle.enabled\n"
        "print('ok')\n",
        TOKENTRACE_DISABLED="1",
    )
    assert result.stdout.strip() == "ok", result.stderr


# --------------------------------------------------------------------------- concurrency


def test_counters_sum_exactly_across_8_threads_x_500_calls(simulator: Any, telemetry: Telemetry) -> None:
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with openai_client(simulator) as client, tokentrace.attributes(feature=f"f{index % 2}"):
                for _ in range(500):
                    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=3)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    labels = {"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "operation": "chat"}
    for feature in ("f0", "f1"):
        assert telemetry.sample("llm_requests_total", **labels, status="ok", feature=feature) == 2000
        assert telemetry.sample("tokens_used_total", **labels, token_type="input", feature=feature) == 2000 * 7
        assert telemetry.sample("tokens_used_total", **labels, token_type="output", feature=feature) == 2000 * 3
    assert telemetry.sample("llm_latency_seconds_count", **labels, status="ok") == 4000
    assert len(telemetry.finished_spans()) == 4000


def test_counters_sum_exactly_across_200_concurrent_asyncio_calls(simulator: Any, telemetry: Telemetry) -> None:
    async def go() -> None:
        async with openai_async_client(simulator) as client:

            async def one(i: int) -> None:
                async with tokentrace.attributes(feature=f"f{i % 4}"):
                    if i % 2:
                        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=3)
                    else:
                        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                      max_tokens=3, stream=True)
                        async for _ in stream:
                            pass

            await asyncio.gather(*(one(i) for i in range(200)))

    asyncio.run(go())
    labels = {"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "operation": "chat"}
    for feature in ("f0", "f1", "f2", "f3"):
        assert telemetry.sample("llm_requests_total", **labels, status="ok", feature=feature) == 50
        assert telemetry.sample("tokens_used_total", **labels, token_type="output", feature=feature) == 150
    assert telemetry.sample("llm_time_to_first_token_seconds_count", **labels) == 100


def test_a_failing_sink_never_reaches_the_caller(simulator: Any, telemetry: Telemetry) -> None:
    from tokentrace._support import errors as _errors

    class BrokenError(Exception):
        pass

    def boom(record: Any) -> None:
        raise BrokenError

    telemetry.handle.recorder.add_listener(boom)
    with openai_client(simulator) as client:
        result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=2)
    assert result.usage.completion_tokens == 2
    assert _errors.counts()["listener"] == 1
    assert telemetry.sample("tokentrace_internal_errors_total", stage="listener") == 1


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



def test_global_opentelemetry_providers_set_after_instrument_get_spans_and_metrics(simulator: Any) -> None:
    """Without an OpenTelemetry SDK the sink records nothing (nothing to record into); once the app sets global
    providers, later calls get their span and gen_ai.* histograms."""
    result = _run_python(f"""
import openai, tokentrace
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tokentrace.simulator import sync_client
import openai._base_client as base
sdk_httpx = getattr(base, "httpx2", None) or base.httpx  # openai 3 is built on httpx2, 2.x on httpx
tokentrace.instrument(ledger=False)
client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.com/v1", max_retries=0,
                       http_client=sync_client({simulator.port}, sdk_httpx))
ask = lambda: client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
ask()
exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
ask()
(span,) = exporter.get_finished_spans()
assert span.attributes["gen_ai.usage.input_tokens"] > 0
names = {{m.name for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics}}
assert "gen_ai.client.token.usage" in names, names
print("ok")
""")
    assert result.stdout.strip() == "ok", result.stderr
