"""The fault matrix: whatever goes wrong inside tokentrace or around it, the host call returns exactly what it
would have returned uninstrumented, and the rest of the telemetry keeps working."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

import tokentrace
from tokentrace import Usage
from tokentrace._support import errors as _errors
from tokentrace.providers import Prepared, google_genai
from tokentrace.providers import anthropic as anthropic_provider
from tokentrace.providers import openai as openai_provider
from tokentrace.testing import capture_usage

from .cases import MESSAGES, sync_client
from .conftest import Telemetry, free_port, make_telemetry, openai_async_client, openai_client

LABELS = {"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "operation": "chat", "feature": ""}


def _chat(client: Any, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=3, **kwargs)


# --------------------------------------------------------------------------- ledger faults


def test_disk_full_drops_rows_counts_them_and_the_call_is_unaffected(simulator: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentrace.ledger.store import Db

    def disk_full(db: Any, rows: Any, released: Any = ()) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Db, "insert", disk_full)
    _errors.reset()
    telemetry = make_telemetry(ledger=tmp_path / "usage.db")
    with openai_client(simulator) as client:
        results = [_chat(client) for _ in range(5)]
    assert all(r.usage.completion_tokens == 3 for r in results)
    assert not tokentrace.flush(2.0)
    assert _errors.counts()["ledger.write"] >= 1
    assert telemetry.handle.sink("ledger").dropped == 5
    assert telemetry.sample("llm_requests_total", **LABELS, status="ok") == 5  # Prometheus still counts
    assert len(telemetry.finished_spans()) == 5


def test_a_corrupted_ledger_file_is_reported_and_the_app_goes_on(simulator: Any, tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    path.write_bytes(b"\x00garbage" * 1000)
    _errors.reset()
    telemetry = make_telemetry(ledger=path)
    with openai_client(simulator) as client:
        assert _chat(client).usage.completion_tokens == 3
    tokentrace.flush(1.0)
    assert _errors.counts().get("ledger.open", 0) >= 1
    assert telemetry.sample("llm_requests_total", **LABELS, status="ok") == 1


def test_a_database_locked_for_a_while_loses_nothing(simulator: Any, tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    telemetry = make_telemetry(ledger=path)
    sink = telemetry.handle.sink("ledger")
    with openai_client(simulator) as client:
        _chat(client)
        assert tokentrace.flush()
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
        sink._conn.execute("PRAGMA busy_timeout = 50")
        started = time.perf_counter()
        for _ in range(5):
            _chat(client)
        call_time = time.perf_counter() - started
        time.sleep(0.5)
        holder.execute("ROLLBACK")
        holder.close()
    assert tokentrace.flush(10)
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM llm_usage").fetchone()[0] == 6
    assert call_time < 5  # the calls never waited on the locked database


# --------------------------------------------------------------------------- exporters


def test_an_otlp_endpoint_that_is_down_does_not_touch_the_call(simulator: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", timeout=5)))
    registry = CollectorRegistry()
    tokentrace.instrument(ledger=False, registry=registry, tracer_provider=tracer_provider)
    with openai_client(simulator) as client:
        started = time.perf_counter()
        results = [_chat(client) for _ in range(20)]
        elapsed = time.perf_counter() - started
    assert [r.usage.completion_tokens for r in results] == [3] * 20
    assert elapsed < 5  # export happens off the calling thread; a down endpoint costs the caller nothing
    assert registry.get_sample_value("llm_requests_total", {**LABELS, "status": "ok"}) == 20
    tokentrace.uninstrument()
    tracer_provider.shutdown()


# --------------------------------------------------------------------------- odd usage payloads

ODD = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
              st.floats(allow_nan=True), st.text(max_size=5)),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children,
                                                                                max_size=3)),
    max_leaves=8,
)
FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens",
          "cache_read_input_tokens", "cache_creation_input_tokens", "prompt_token_count", "candidates_token_count",
          "cached_content_token_count", "thoughts_token_count", "tool_use_prompt_token_count")
DETAILS = ("prompt_tokens_details", "completion_tokens_details", "input_tokens_details", "output_tokens_details",
           "cache_creation")
PAYLOADS = st.one_of(
    ODD,
    st.fixed_dictionaries({}, optional={**{f: ODD for f in FIELDS}, **{d: ODD for d in DETAILS}}),
)
PREPARED = Prepared(tokentrace._usage.RequestInfo("xai", "chat", "m"), {})


def _partitions(payload: Any) -> list[Usage | None]:
    return [
        openai_provider.usage_from_completion_usage(payload, "openai"),
        openai_provider.usage_from_completion_usage(payload, "xai"),
        openai_provider.usage_from_response_usage(payload, "openai"),
        anthropic_provider.usage_from(payload),
        google_genai.usage_from(payload),
        openai_provider.chat_response({"usage": payload, "choices": payload, "model": payload}, "openai").usage,
        anthropic_provider.extract({"usage": payload, "stop_reason": payload}, PREPARED).usage,
        google_genai.extract({"usage_metadata": payload, "candidates": payload}, PREPARED).usage,
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=PAYLOADS)
def test_malformed_usage_never_raises_and_counts_stay_non_negative_integers(payload: Any) -> None:
    for usage in _partitions(payload):
        if usage is None:
            continue
        for name in ("input", "cache_read", "cache_write", "output", "reasoning", "cache_write_1h"):
            value = getattr(usage, name)
            assert type(value) is int and value >= 0, (name, value, payload)


@pytest.mark.parametrize("odd", [-5, "12", True, {"a": 1}, [1]])
def test_an_odd_usage_field_means_usage_not_reported_and_is_counted(odd: Any) -> None:
    """Issue 38, finding 6: such a count used to read as 0, and the call was charged $0 with its usage 'reported'."""
    _errors.reset()
    usage = openai_provider.usage_from_completion_usage({"prompt_tokens": odd, "completion_tokens": 2}, "openai")
    assert usage is None
    assert _errors.counts()["usage.openai"] == 1


@pytest.mark.parametrize("impossible", [3000.5, 2**63, 10**30, float("nan"), float("inf")])
def test_a_number_that_cannot_be_a_token_count_means_usage_not_reported(impossible: Any) -> None:
    _errors.reset()
    for usage in (openai_provider.usage_from_completion_usage({"prompt_tokens": impossible, "completion_tokens": 2},
                                                              "openai"),
                  anthropic_provider.usage_from({"input_tokens": 3, "output_tokens": impossible}),
                  google_genai.usage_from({"prompt_token_count": impossible})):
        assert usage is None
    assert _errors.counts()["usage.openai"] == 1


def test_an_integral_float_count_is_that_count() -> None:
    assert openai_provider.usage_from_completion_usage({"prompt_tokens": 3000.0, "completion_tokens": 2.0},
                                                       "openai") == Usage(input=3000, output=2)


def test_usage_details_larger_than_their_totals_are_clamped_and_counted() -> None:
    _errors.reset()
    usage = openai_provider.usage_from_completion_usage(
        {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
         "prompt_tokens_details": {"cached_tokens": 9}, "completion_tokens_details": {"reasoning_tokens": 4}},
        "openai")
    assert usage is not None and min(usage.input, usage.output) >= 0
    assert _errors.counts()["usage.openai"] == 1


def test_an_attribute_that_raises_is_treated_as_absent() -> None:
    class Hostile:
        @property
        def usage(self) -> Any:
            raise RuntimeError("boom")

    info = openai_provider.chat_response(Hostile(), "openai")
    assert info.usage is None


# --------------------------------------------------------------------------- the SDK raising


def test_a_timeout_reaches_the_caller_unchanged(simulator: Any, telemetry: Telemetry) -> None:
    with openai_client(simulator, timeout=0.1) as client, capture_usage() as records:
        with pytest.raises(openai.APITimeoutError):
            _chat(client, extra_headers={"x-sim-latency-ms": "1000"})
    assert [(r.status, r.error_type) for r in records] == [("error", "APITimeoutError")]
    span = telemetry.finished_spans()[0]
    assert span.attributes["error.type"] == "APITimeoutError"


# --------------------------------------------------------------------------- concurrency


def test_16_threads_x_10000_records_sum_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder and the Prometheus and ledger sinks under 160,000 concurrent calls (no HTTP, to be quick).

    The burst is far faster than any real LLM traffic, so the ledger queue is sized for all of it here (a full
    queue drops and counts rows: see test_ledger)."""
    from tokentrace._usage import RequestInfo, ResponseInfo

    monkeypatch.setenv("TOKENTRACE_LEDGER_QUEUE_SIZE", "200000")
    registry = CollectorRegistry()
    handle = tokentrace.instrument(ledger=tmp_path / "usage.db", registry=registry, prices={"m": {"input": 1,
                                                                                                  "output": 2}})
    recorder = handle.recorder
    request = RequestInfo("openai", "chat", "m")
    response = ResponseInfo(Usage(input=3, cache_read=1, output=2, reasoning=1), "m")

    def worker(index: int) -> None:
        with tokentrace.attributes(feature=f"f{index % 4}"):
            for _ in range(10_000):
                call = recorder.start(request)
                call.detach()
                call.stop(response)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tokentrace.flush(60)
    labels = {"provider": "openai", "model": "m", "operation": "chat"}
    for feature in ("f0", "f1", "f2", "f3"):
        assert registry.get_sample_value("llm_requests_total", {**labels, "status": "ok", "feature": feature}) == 40_000
        assert registry.get_sample_value("tokens_used_total", {**labels, "token_type": "input",
                                                               "feature": feature}) == 120_000
    total_cost = sum(registry.get_sample_value("chat_cost_usd_total", {**labels, "feature": f"f{i}"})
                     for i in range(4))
    assert total_cost == pytest.approx(160_000 * (3 * 1 + 1 * 1 + 2 * 2 + 1 * 2) / 1e6)
    conn = sqlite3.connect(tmp_path / "usage.db")
    assert conn.execute("SELECT COUNT(*), SUM(total_tokens) FROM llm_usage").fetchone() == (160_000, 160_000 * 7)


def test_a_read_sees_every_call_that_ended_before_it_while_threads_record_and_scrape(tmp_path: Path) -> None:
    """In-process, finished calls wait to be added to the Prometheus series (``prometheus_values.FOLD_AT``): any
    read adds them first. A read right after one call sees it; 8 threads recording while 2 threads scrape never see
    a counter go down, and the end is exact."""
    from prometheus_client import generate_latest

    from tokentrace._usage import RequestInfo, ResponseInfo
    from tokentrace.sinks import prometheus_values

    registry = CollectorRegistry()
    handle = tokentrace.instrument(ledger=False, registry=registry, prices={"m": {"input": 1, "output": 2}})
    recorder = handle.recorder
    request = RequestInfo("openai", "chat", "m")
    response = ResponseInfo(Usage(input=3, output=2), "m")
    labels = {"provider": "openai", "model": "m", "operation": "chat", "feature": ""}
    requests = {**labels, "status": "ok"}

    def one_call() -> None:
        call = recorder.start(request)
        call.detach()
        call.stop(response)

    one_call()
    assert registry.get_sample_value("llm_requests_total", requests) == 1  # 1 < FOLD_AT: added by the read itself
    assert b'llm_requests_total{feature="",model="m",operation="chat",provider="openai",status="ok"} 1.0' in \
        generate_latest(registry)
    calls_per_thread = 3 * prometheus_values.FOLD_AT + 7
    done = threading.Event()
    seen: list[list[float]] = [[], []]

    def scrape(reads: list[float]) -> None:
        while not done.is_set():
            reads.append(registry.get_sample_value("llm_requests_total", requests) or 0.0)

    def record() -> None:
        for _ in range(calls_per_thread):
            one_call()

    scrapers = [threading.Thread(target=scrape, args=(reads,)) for reads in seen]
    workers = [threading.Thread(target=record) for _ in range(8)]
    for t in scrapers + workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    for t in scrapers:
        t.join()
    total = 1 + 8 * calls_per_thread
    assert registry.get_sample_value("llm_requests_total", requests) == total
    assert registry.get_sample_value("tokens_used_total", {**labels, "token_type": "input"}) == 3 * total
    assert registry.get_sample_value("llm_request_tokens_count", {"provider": "openai", "model": "m",
                                                                   "direction": "output"}) == total
    assert registry.get_sample_value("chat_cost_usd_total", labels) == pytest.approx(total * 7 / 1e6)
    for reads in seen:  # each scraper's reads never go down
        assert reads and reads == sorted(reads)


def test_a_scrape_right_after_calls_with_new_labels_lists_every_one() -> None:
    """A finished call waits with its sink, which makes its label children in the fold: every way of listing the
    series (the registry, one metric's ``collect()``, the exposition text) adds the waiting calls first, so calls
    whose labels no call had before are listed by the very next read."""
    from prometheus_client import generate_latest

    from tokentrace._usage import RequestInfo, ResponseInfo

    registry = CollectorRegistry()
    handle = tokentrace.instrument(ledger=False, registry=registry, prices={"m": {"input": 1, "output": 2}})
    recorder = handle.recorder
    sink = next(s for s in recorder.sinks if s.name == "prometheus")

    def calls(prefix: str) -> None:
        for i in range(10):
            with tokentrace.attributes(feature=f"{prefix}{i}"):
                call = recorder.start(RequestInfo("openai", "chat", "m"))
                call.detach()
                call.stop(ResponseInfo(Usage(input=3, output=2), "m"))

    calls("a")
    assert sum(s.value for m in registry.collect() if m.name == "llm_requests" for s in m.samples
               if s.name == "llm_requests_total") == 10
    calls("b")
    (family,) = sink.metrics.tokens.collect()
    assert len({s.labels["feature"] for s in family.samples if s.labels["feature"].startswith("b")}) == 10
    calls("c")
    text = generate_latest(registry).decode()
    assert all(f'feature="c{i}"' in text for i in range(10))


def test_label_children_made_inside_folds_and_inside_calls_at_once_neither_deadlock_nor_lose_calls() -> None:
    """A waiting call's label children are found in the fold (under the metrics' lock), a call with prompt-cache
    tokens finds its own on the calling thread: 8 threads, each with features no one used before and every other
    call reading a cache, while 2 threads scrape, all end (no lock taken in two orders) and every sum is exact."""
    from tokentrace._usage import RequestInfo, ResponseInfo

    registry = CollectorRegistry()
    handle = tokentrace.instrument(ledger=False, registry=registry,
                                   prices={"m": {"input": 1, "output": 2, "cache_read": 0.5}})
    recorder = handle.recorder
    request = RequestInfo("openai", "chat", "m")
    plain = ResponseInfo(Usage(input=3, output=2), "m")
    cached = ResponseInfo(Usage(input=3, cache_read=4, output=2), "m")
    done = threading.Event()

    def record(worker: int) -> None:
        for i in range(600):
            with tokentrace.attributes(feature=f"w{worker}-{i // 20}"):  # a new feature every 20 calls
                call = recorder.start(request)
                call.detach()
                call.stop(cached if i % 2 else plain)

    def scrape() -> None:
        while not done.is_set():
            registry.get_sample_value("llm_requests_total", {"provider": "openai", "model": "m", "operation": "chat",
                                                             "status": "ok", "feature": "w0-0"})

    scrapers = [threading.Thread(target=scrape, daemon=True) for _ in range(2)]
    workers = [threading.Thread(target=record, args=(w,), daemon=True) for w in range(8)]
    for t in scrapers + workers:
        t.start()
    for t in workers:
        t.join(60)
    done.set()
    for t in scrapers:
        t.join(60)
    assert not any(t.is_alive() for t in scrapers + workers), "a recording or scraping thread never ended"
    samples = [s for metric in registry.collect() if metric.name == "llm_requests" for s in metric.samples
               if s.name == "llm_requests_total"]
    assert len(samples) == 8 * 30 and sum(s.value for s in samples) == 8 * 600
    savings = [s.value for metric in registry.collect() if metric.name == "llm_cache_savings_usd"
               for s in metric.samples if s.name == "llm_cache_savings_usd_total"]
    assert len(savings) == 8 * 30 and sum(savings) == pytest.approx(8 * 300 * 4 * 0.5 / 1e6)


def test_1000_concurrent_asyncio_calls_sum_exactly(simulator: Any, telemetry: Telemetry) -> None:
    async def go() -> None:
        async with openai_async_client(simulator) as client:
            semaphore = asyncio.Semaphore(1000)

            async def one() -> None:
                async with semaphore:
                    await _chat(client)

            await asyncio.gather(*(one() for _ in range(1000)))

    asyncio.run(go())
    assert telemetry.sample("llm_requests_total", **LABELS, status="ok") == 1000
    assert telemetry.sample("tokens_used_total", **LABELS, token_type="output") == 3000


def test_uninstrument_while_streams_are_in_flight_finishes_them_cleanly(simulator: Any, tmp_path: Path) -> None:
    telemetry = make_telemetry(ledger=tmp_path / "usage.db")
    with openai_client(simulator) as client:
        streams = [_chat(client, stream=True) for _ in range(5)]
        first = [next(iter(s)) for s in streams]
        tokentrace.uninstrument()
        rest = [list(s) for s in streams]
        after = _chat(client)  # no longer measured
    assert all(f.choices for f in first) and all(len(r) == 4 for r in rest)  # 1 + 4 chunks, usage chunk hidden
    assert after.usage.completion_tokens == 3
    assert len(telemetry.finished_spans()) == 5
    assert telemetry.sample("llm_requests_total", **LABELS, status="ok") == 5
    assert tokentrace.flush()  # the rows of calls in flight at uninstrument() are written in the background
    rows = sqlite3.connect(tmp_path / "usage.db").execute("SELECT COUNT(*), SUM(output_tokens) FROM llm_usage")
    assert rows.fetchone() == (5, 15)  # the ledger got them too


# --------------------------------------------------------------------------- processes


def _multiprocess_worker(port: int, calls: int) -> None:
    import openai as sdk

    import tokentrace as tt
    from tokentrace.simulator import sync_client as routed

    tt.instrument(ledger=False)
    client = sdk.OpenAI(api_key="sk-test", base_url="https://api.openai.com/v1", http_client=routed(port),
                        max_retries=0)
    for _ in range(calls):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=3)


def test_prometheus_multiprocess_mode_sums_exactly_across_4_workers(simulator: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "prom-multiproc"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))  # read by prometheus_client at import, as gunicorn
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters that inherit the variable
    workers = [ctx.Process(target=_multiprocess_worker, args=(simulator.port, 25)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    assert registry.get_sample_value("llm_requests_total", {**LABELS, "status": "ok"}) == 100
    assert registry.get_sample_value("tokens_used_total", {**LABELS, "token_type": "output"}) == 300
    assert registry.get_sample_value("llm_latency_seconds_count", {**{k: v for k, v in LABELS.items()
                                                                      if k != "feature"}, "status": "ok"}) == 100


# --------------------------------------------------------------------------- privacy


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
def test_no_prompt_text_and_no_api_key_anywhere(provider: str, simulator: Any, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tokentrace")
    secret_prompt = "zebra quartz confidential"
    ledger = tmp_path / "usage.db"
    telemetry = make_telemetry(ledger=ledger)
    with sync_client(provider, simulator) as client:
        if provider == "openai":
            result = client.chat.completions.create(model="gpt-4o-mini",
                                                    messages=[{"role": "user", "content": secret_prompt}])
            completion = result.choices[0].message.content
        elif provider == "anthropic":
            result = client.messages.create(model="claude-opus-4-6", max_tokens=4,
                                            messages=[{"role": "user", "content": secret_prompt}])
            completion = result.content[0].text
        else:
            result = client.models.generate_content(model="gemini-2.5-flash", contents=secret_prompt)
            completion = result.text
    tokentrace.flush()
    haystacks = [
        generate_latest(telemetry.registry).decode(),
        " ".join(f"{s.name} {dict(s.attributes or {})}" for s in telemetry.finished_spans()),
        " ".join(r.getMessage() for r in caplog.records if r.name.startswith("tokentrace")),
        " ".join(str(row) for row in sqlite3.connect(ledger).execute("SELECT * FROM llm_usage")),
    ]
    for text in haystacks:
        assert "secret-key" not in text and "sk-test" not in text and "AIza" not in text
        assert secret_prompt not in text and completion not in text
    assert os.stat(ledger).st_mode & 0o077 == 0


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
@pytest.mark.parametrize("stream", [False, True])
def test_content_is_captured_on_spans_only_when_asked(provider: str, stream: bool, simulator: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    ledger = tmp_path / "usage.db"
    telemetry = make_telemetry(ledger=ledger)
    prompt = "zebra quartz"
    with sync_client(provider, simulator) as client:
        if provider == "openai":
            kwargs: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}],
                                      "max_tokens": 3}
            result = client.chat.completions.create(**kwargs, stream=stream)
            text = "".join(c.choices[0].delta.content or "" for c in result) if stream else \
                result.choices[0].message.content
        elif provider == "anthropic":
            kwargs = {"model": "claude-opus-4-6", "max_tokens": 3, "messages": [{"role": "user", "content": prompt}]}
            if stream:
                with client.messages.stream(**kwargs) as s:
                    text = "".join(s.text_stream)
            else:
                text = client.messages.create(**kwargs).content[0].text
        else:
            from google.genai import types

            config = types.GenerateContentConfig(max_output_tokens=3)
            if stream:
                text = "".join(c.text or "" for c in client.models.generate_content_stream(
                    model="gemini-2.5-flash", contents=prompt, config=config))
            else:
                text = client.models.generate_content(model="gemini-2.5-flash", contents=prompt, config=config).text
    (span,) = telemetry.finished_spans()
    inputs = json.loads(span.attributes["gen_ai.input.messages"])
    outputs = json.loads(span.attributes["gen_ai.output.messages"])
    assert inputs[-1]["parts"][0]["content"] == prompt
    assert outputs[0]["role"] == "assistant" and outputs[0]["parts"][0]["content"] == text and text
    tokentrace.flush()
    assert prompt not in " ".join(str(r) for r in sqlite3.connect(ledger).execute("SELECT * FROM llm_usage"))
