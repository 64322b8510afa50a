"""The public surface: __all__, a light import, semconv names, entry points, the /metrics endpoint."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from importlib.metadata import entry_points
from typing import Any

import pytest

import tokentrace
from tokentrace.sinks import semconv as _semconv

from .conftest import free_port, make_telemetry, openai_client
from .missing import missing


def test_all_is_exactly_the_public_api() -> None:
    assert sorted(tokentrace.__all__) == sorted([
        "TOKEN_TYPES", "Budget", "BudgetError", "BudgetExceeded", "BudgetUnavailable", "ConfigError", "Instrumentation",
        "PriceError", "ReportError", "Usage", "UsageRecord", "__version__", "attributes", "budget_status", "flush",
        "instrument", "record_cache_hit", "report", "run_budget", "uninstrument", "usage_app",
    ])
    for name in tokentrace.__all__:
        assert getattr(tokentrace, name) is not None
    assert tokentrace.testing.capture_usage is not None


def test_import_is_light() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import tokentrace; dt = time.perf_counter() - t\n"
        "heavy = [m for m in ('openai', 'anthropic', 'google.genai', 'genai_prices', 'opentelemetry.sdk', "
        "'prometheus_client', 'typer', 'rich', 'tokentrace.cli') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_genai_names_match_the_semantic_conventions_package() -> None:
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
    from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as gm

    ours = {name: value for name, value in vars(_semconv).items()
            if isinstance(value, str) and "gen_ai." in value and value not in _semconv.EVENT_NAMES}
    theirs = {v for v in vars(ga).values() if isinstance(v, str)} | {v for v in vars(gm).values() if isinstance(v, str)}
    unknown = {value for value in ours.values() if value not in theirs}
    assert unknown == _semconv.BEYOND_RELEASE  # de facto or proposed names, set beside the released ones


def test_entry_points_are_declared() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["tokentrace"] == "tokentrace.cli:main"
    instrumentors = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}
    assert instrumentors["tokentrace"].load().__name__ == "TokentraceInstrumentor"


def test_metrics_are_served_on_localhost(simulator: Any) -> None:
    port = free_port()
    telemetry = make_telemetry(metrics_port=port)
    assert telemetry.handle.metrics_server.addr == "127.0.0.1"
    with openai_client(simulator) as client, tokentrace.attributes(feature="summarize"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'tokens_used_total{feature="summarize",model="gpt-4o-mini-2024-07-18",operation="chat",' \
           'provider="openai",token_type="input"} 5.0' in body
    for name in ("chat_cost_usd_total", "llm_latency_seconds_bucket", "llm_requests_total"):
        assert name in body


def test_metrics_port_in_use_warns_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        telemetry = make_telemetry(metrics_port=port)
    assert not telemetry.handle.metrics_server.running
    assert any("cannot serve /metrics" in r.getMessage() for r in caplog.records)


def test_namespace_prefixes_every_metric(simulator: Any) -> None:
    telemetry = make_telemetry(namespace="acme")
    with openai_client(simulator) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert telemetry.sample("acme_llm_requests_total", provider="openai", model="gpt-4o-mini-2024-07-18",
                            operation="chat", status="ok", feature="") == 1
    assert telemetry.sample("llm_requests_total", provider="openai", model="gpt-4o-mini-2024-07-18",
                            operation="chat", status="ok", feature="") == 0


def test_bad_arguments_raise_config_error() -> None:
    with pytest.raises(tokentrace.ConfigError, match="unknown provider"):
        tokentrace.instrument(providers=["watsonx"])
    with pytest.raises(tokentrace.ConfigError, match="metric label"):
        tokentrace.instrument(metric_labels=("model",))


def test_the_api_key_never_reaches_spans_or_metrics(simulator: Any) -> None:
    telemetry = make_telemetry()
    with openai_client(simulator) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "secret words"}])
    from prometheus_client import generate_latest

    exposed = generate_latest(telemetry.registry).decode()
    spans = " ".join(str(dict(s.attributes or {})) for s in telemetry.finished_spans())
    for text in (exposed, spans):
        assert "sk-test-secret-key" not in text
        assert "secret words" not in text  # no prompt text without capture_content


def test_capture_usage_stops_capturing_when_the_block_ends(simulator: Any) -> None:
    from tokentrace.testing import capture_usage

    make_telemetry()
    with openai_client(simulator) as client:
        with capture_usage() as inside:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert len(inside) == 1
    assert tokentrace.instrumentation.instrumentor.current().recorder._listeners == ()


def test_capture_usage_needs_instrument() -> None:
    from tokentrace.testing import capture_usage

    tokentrace.uninstrument()
    with pytest.raises(RuntimeError, match="instrument"), capture_usage():
        pass


def _opentelemetry_instrument(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os
    import shutil
    from pathlib import Path

    runner = shutil.which("opentelemetry-instrument") or str(Path(sys.executable).with_name("opentelemetry-instrument"))
    if not Path(runner).exists():
        missing("opentelemetry-instrumentation is not installed (it comes with the otlp extra)")
    env = {**os.environ, "TOKENTRACE_LEDGER": "off", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
           **env}
    return subprocess.run([runner, sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_opentelemetry_instrument_exports_a_span_with_zero_code(simulator: Any) -> None:
    code = ("import openai\n"
            f"client = openai.OpenAI(api_key='sk-test', base_url='http://127.0.0.1:{simulator.port}/v1')\n"
            "client.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'hi'}])\n")
    result = _opentelemetry_instrument(code, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="zero-code-app")
    assert result.returncode == 0, result.stderr
    assert '"name": "chat gpt-4o-mini"' in result.stdout, result.stdout + result.stderr  # exported by the distro's SDK
    assert '"gen_ai.usage.input_tokens":' in result.stdout and '"tokentrace.cost_usd":' in result.stdout
    assert "configured no OpenTelemetry SDK" not in result.stderr


def test_opentelemetry_instrument_without_an_sdk_says_spans_are_dropped() -> None:
    code = ("from openai.resources.chat.completions.completions import Completions\n"
            "import wrapt\n"
            "print(isinstance(vars(Completions)['create'], wrapt.FunctionWrapper))\n")
    # no configurator runs, as when opentelemetry-distro is not installed: the tracer provider stays a no-op
    result = _opentelemetry_instrument(code, OTEL_PYTHON_CONFIGURATOR="none-such", OTEL_TRACES_EXPORTER="none")
    assert result.stdout.strip() == "True", result.stderr  # the SDKs are patched all the same
    assert result.stderr.count("configured no OpenTelemetry SDK") == 1, result.stderr
