"""Shared fixtures: one simulator per session, fresh telemetry backends per test, real SDK clients over HTTP."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import tokentrace
from tokentrace._support import errors as _errors
from tokentrace.simulator import Simulator, async_client, sync_client

# prices used by the suite (USD per million tokens), so expected costs are computed by hand here
TEST_PRICES = {
    "gpt-4o-mini-2024-07-18": {"provider": "openai", "input": 0.15, "cache_read": 0.075, "output": 0.6},
    "gpt-4o-mini": {"input": 0.15, "cache_read": 0.075, "output": 0.6},
    "o3-mini": {"provider": "openai", "input": 1.1, "cache_read": 0.55, "output": 4.4},
    "grok-3-mini": {"provider": "xai", "input": 0.3, "cache_read": 0.075, "output": 0.5},
    "text-embedding-3-small": {"input": 0.02, "output": 0.0},
    "gpt-3.5-turbo-instruct": {"input": 1.5, "output": 2.0},
    "claude-opus-4-6": {"provider": "anthropic", "input": 3.0, "cache_read": 0.3, "cache_write": 3.75,
                          "cache_write_1h": 6.0, "output": 15.0},
    "gemini-2.5-flash": {"provider": "google", "input": 0.3, "cache_read": 0.03, "output": 2.5},
    "gemini-embedding-001": {"provider": "google", "input": 0.15, "output": 0.0},
    "llama-3.3-70b-versatile": {"provider": "groq", "input": 0.59, "output": 0.79},
    "mistral-small-latest": {"provider": "mistral", "input": 0.1, "output": 0.3},
    "mistral-embed": {"provider": "mistral", "input": 0.1, "output": 0.0},
    "command-r-08-2024": {"provider": "cohere", "input": 0.15, "output": 0.6},
    "embed-english-v3.0": {"provider": "cohere", "input": 0.1, "output": 0.0},
    "llama3.2": {"provider": "ollama", "input": 0.01, "output": 0.02},
    "nomic-embed-text": {"provider": "ollama", "input": 0.01, "output": 0.0},
    "anthropic.claude-3-5-haiku-20241022-v1:0": {"provider": "bedrock", "input": 0.8, "cache_read": 0.08,
                                                 "cache_write": 1.0, "output": 4.0},
}


# the framework suite runs in CI's venvs that hold the frameworks (.ci/run), never in the README's test command; so
# does the Phoenix round trip, whose server is a venv of its own that CI builds while the main suite runs
collect_ignore = [*([] if os.environ.get("TOKENTRACE_FRAMEWORKS") else ["frameworks"]),
                  *([] if os.environ.get("TOKENTRACE_PHOENIX") else ["test_phoenix.py"])]

@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    with Simulator() as sim:
        yield sim


@dataclass
class Telemetry:
    """Where one test's telemetry lands: a Prometheus registry, finished spans and OTel metrics."""

    registry: CollectorRegistry
    spans: InMemorySpanExporter
    metric_reader: InMemoryMetricReader
    handle: Any

    def sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def settled_sample(self, name: str, expected: float, timeout: float = 10.0, **labels: str) -> float:
        """A sample that is refreshed in the background (fleet budget gauges): its value once it equals
        ``expected`` (approximately), or its last value after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.sample(name, **labels)
            if value == pytest.approx(expected) or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    def finished_spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.spans.get_finished_spans())

    def otel_metrics(self) -> dict[str, list[Any]]:
        data = self.metric_reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found


def make_telemetry(**instrument_kwargs: Any) -> Telemetry:
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrument_kwargs.setdefault("prices", TEST_PRICES)
    instrument_kwargs.setdefault("ledger", False)
    handle = tokentrace.instrument(
        registry=registry, tracer_provider=tracer_provider, meter_provider=meter_provider, **instrument_kwargs
    )
    return Telemetry(registry, exporter, reader, handle)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    tokentrace.uninstrument()
    _errors.reset()
    telemetry = make_telemetry()
    yield telemetry
    tokentrace.uninstrument()


@pytest.fixture(autouse=True)
def _always_uninstrument() -> Iterator[None]:
    yield
    tokentrace.uninstrument()


OPENAI_URL = "https://api.openai.com/v1"


def sdk_httpx(sdk_module: str = "openai") -> Any:
    """The httpx module a Stainless SDK is built on: ``httpx2`` from openai 3 on, ``httpx`` before."""
    import importlib

    base = importlib.import_module(f"{sdk_module}._base_client")
    return getattr(base, "httpx2", None) or base.httpx


def openai_client(sim: Simulator, base_url: str = OPENAI_URL, **kwargs: Any) -> Any:
    import openai

    return openai.OpenAI(api_key="sk-test-secret-key", base_url=base_url,
                         http_client=sync_client(sim.port, sdk_httpx()),
                         max_retries=0, **kwargs)


def openai_async_client(sim: Simulator, base_url: str = OPENAI_URL, **kwargs: Any) -> Any:
    import openai

    return openai.AsyncOpenAI(api_key="sk-test-secret-key", base_url=base_url,
                              http_client=async_client(sim.port, sdk_httpx()),
                              max_retries=0, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server (Debian's package) started for this test session as a non-root user."""
    from .postgres_server import postgres_server

    with postgres_server() as server:
        yield server.url


@pytest.fixture
def pg_ledger(postgres_url: str) -> str:
    """An empty database on the session's server, for one test."""
    import uuid

    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + "/" + name
