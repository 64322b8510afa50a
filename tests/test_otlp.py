"""Spans and gen_ai.* metrics exported over OTLP (HTTP and gRPC) reach a receiver with GenAI attributes and cost."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import tokentrace

from .cases import MESSAGES
from .conftest import TEST_PRICES, free_port, openai_client


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    value = getattr(any_value, kind)
    if kind == "array_value":
        return [_value(v) for v in value.values]
    return value


def _span_attributes(requests: list[Any]) -> list[dict[str, Any]]:
    return [{a.key: _value(a.value) for a in span.attributes}
            for request in requests for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def _metric_names(requests: list[Any]) -> set[str]:
    return {m.name for request in requests for rm in request.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics}


def _measure_one_call(simulator: Any, span_exporter: Any, metric_exporter: Any) -> None:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(metric_exporter,
                                                                                 export_interval_millis=60_000)])
    tokentrace.instrument(ledger=False, prices=TEST_PRICES, tracer_provider=tracer_provider,
                          meter_provider=meter_provider,
                          registry=__import__("prometheus_client").CollectorRegistry())
    with openai_client(simulator) as client, tokentrace.attributes(feature="summarize"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5, stream=True))
    assert tokentrace.flush(10)  # drains the providers tokentrace was given: spans and metrics are exported now
    tokentrace.uninstrument()
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _assert_exported(spans: list[dict[str, Any]], metric_names: set[str]) -> None:
    assert len(spans) == 2
    for attrs in spans:
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
        assert attrs["gen_ai.usage.input_tokens"] == 7 and attrs["gen_ai.usage.output_tokens"] == 5
        assert attrs["tokentrace.cost_usd"] == pytest.approx((7 * 0.15 + 5 * 0.6) / 1e6)
        assert attrs["tokentrace.feature"] == "summarize"
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration",
            "gen_ai.client.operation.time_to_first_chunk"} <= metric_names


def test_otlp_http_export(simulator: Any, httpserver: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    httpserver.expect_request("/v1/traces", method="POST").respond_with_data(
        trace_service_pb2.ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf")
    httpserver.expect_request("/v1/metrics", method="POST").respond_with_data(
        metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString(), content_type="application/x-protobuf")
    _measure_one_call(simulator, OTLPSpanExporter(endpoint=httpserver.url_for("/v1/traces")),
                      OTLPMetricExporter(endpoint=httpserver.url_for("/v1/metrics")))
    traces = [trace_service_pb2.ExportTraceServiceRequest.FromString(r.data) for r, _ in httpserver.log
              if r.path == "/v1/traces"]
    metrics = [metrics_service_pb2.ExportMetricsServiceRequest.FromString(r.data) for r, _ in httpserver.log
               if r.path == "/v1/metrics"]
    _assert_exported(_span_attributes(traces), _metric_names(metrics))


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.requests: list[Any] = []

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method name
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.requests: list[Any] = []

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method name
        self.requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def test_otlp_grpc_export(simulator: Any) -> None:
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    port = free_port()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    traces, metrics = _Traces(), _Metrics()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(traces, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(metrics, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _measure_one_call(simulator, OTLPSpanExporter(endpoint=endpoint, insecure=True),
                          OTLPMetricExporter(endpoint=endpoint, insecure=True))
    finally:
        server.stop(grace=None)
    _assert_exported(_span_attributes(traces.requests), _metric_names(metrics.requests))


def test_the_documented_otlp_line_exports_to_an_http_receiver(simulator: Any, httpserver: Any,
                                                               tmp_path: Any) -> None:
    """The environment docs/metrics-traces-dashboards.md gives for the shipped Collector's port 4318, as written (the
    port aside), under ``opentelemetry-instrument``: the spans reach a real OTLP/HTTP receiver."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "metrics-traces-dashboards.md").read_text(encoding="utf-8")
    line = re.search(r"`(OTEL_EXPORTER_OTLP_PROTOCOL=\S+ OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318) "
                     r"opentelemetry-instrument python app\.py`", page)
    assert line is not None, "the documented OTLP/HTTP line"
    env = dict(pair.split("=", 1) for pair in line.group(1).split())
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = env["OTEL_EXPORTER_OTLP_ENDPOINT"].replace(
        "localhost:4318", f"127.0.0.1:{httpserver.port}")
    httpserver.expect_request("/v1/traces", method="POST").respond_with_data(
        trace_service_pb2.ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf")
    httpserver.expect_request("/v1/metrics", method="POST").respond_with_data(
        metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString(), content_type="application/x-protobuf")
    app = tmp_path / "app.py"
    app.write_text(
        "import openai, tokentrace\nfrom tokentrace.simulator import sync_client\n"
        "tokentrace.instrument(ledger=False)\n"
        f"client = openai.OpenAI(api_key='sk-test', max_retries=0, http_client=sync_client({simulator.port}))\n"
        "client.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'hi'}])\n",
        encoding="utf-8")
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    result = subprocess.run([str(instrument), sys.executable, str(app)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env,
                                                         "OTEL_METRIC_EXPORT_INTERVAL": "500"})
    assert result.returncode == 0, result.stderr
    traces = [trace_service_pb2.ExportTraceServiceRequest.FromString(r.data) for r, _ in httpserver.log
              if r.path == "/v1/traces"]
    spans = _span_attributes(traces)
    assert [s["gen_ai.operation.name"] for s in spans if "gen_ai.operation.name" in s] == ["chat"], result.stderr
