"""The wire layer over real sockets: raw httpx, httpx2, requests and aiohttp against the simulator, every provider
wire format, whole answers and streams; exactly once under the SDKs; budgets before the bytes leave; the bytes
the caller reads equal the uninstrumented run's."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest

import tokentrace
from tokentrace._support import errors as _errors
from tokentrace.simulator import sync_client
from tokentrace.testing import capture_usage
from tokentrace.wire.routes import recognise

from .conftest import make_telemetry, openai_client
from .wire_cases import CASES, CLIENTS, WireCase, fetch, normalized, provider_total


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_raw_client_call_is_counted_once_with_the_providers_own_usage(simulator: Any, client: str,
                                                                          case: WireCase) -> None:
    url = simulator.url.rstrip("/") + case.path
    uninstrumented = fetch(client, url, case)
    make_telemetry()
    with capture_usage() as records:
        instrumented = fetch(client, url, case)
        gc.collect()
    assert normalized(instrumented) == normalized(uninstrumented)  # the caller read the same bytes
    assert len(records) == 1, records
    (record,) = records
    expected = provider_total(case, instrumented)
    assert expected is not None and expected > 0
    assert (record.provider, record.operation, record.status, record.stream) == (
        case.provider, case.operation, "ok", case.stream)
    assert record.usage_reported and record.usage.total == expected


def test_the_wire_layer_sees_real_provider_hosts(simulator: Any) -> None:
    assert recognise("POST", "api.groq.com", "/openai/v1/chat/completions").provider == "groq"  # type: ignore[union-attr]
    assert recognise("POST", "api.x.ai", "/v1/responses").provider == "xai"  # type: ignore[union-attr]
    assert recognise("POST", "x.openai.azure.com", "/openai/deployments/d/chat/completions").provider == "azure_openai"  # type: ignore[union-attr]
    assert recognise("POST", "us-central1-aiplatform.googleapis.com",
                     "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:generateContent"
                     ).provider == "vertex_ai"  # type: ignore[union-attr]
    assert recognise("POST", "bedrock-runtime.us-east-1.amazonaws.com",
                     "/model/amazon.nova-lite-v1%3A0/converse").path_model == "amazon.nova-lite-v1:0"  # type: ignore[union-attr]
    for method, path in (("GET", "/v1/chat/completions"), ("POST", "/v1/threads/t/messages"), ("POST", "/upload"),
                         ("POST", "/v1/files"), ("GET", "/")):
        assert recognise(method, "api.openai.com", path) is None


def test_an_sdk_call_is_not_counted_again_on_the_wire(simulator: Any) -> None:
    make_telemetry()
    with capture_usage() as records, openai_client(simulator) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                                stream=True)
        list(stream)
    assert [(r.provider, r.stream) for r in records] == [("openai", False), ("openai", True)]


def test_http_false_and_the_environment_turn_the_wire_layer_off(simulator: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[0]
    url = simulator.url.rstrip("/") + case.path
    make_telemetry(http=False)
    with capture_usage() as records:
        fetch("httpx", url, case)
    assert records == []
    tokentrace.uninstrument()
    monkeypatch.setenv("TOKENTRACE_HTTP", "0")
    make_telemetry()
    with capture_usage() as records:
        fetch("requests", url, case)
    assert records == []
    tokentrace.uninstrument()
    monkeypatch.delenv("TOKENTRACE_HTTP")
    make_telemetry()
    import httpx
    import requests

    assert hasattr(httpx.Client.send, "__wrapped__")
    tokentrace.uninstrument()  # the clients are back to their own methods
    assert not hasattr(httpx.Client.send, "__wrapped__") and not hasattr(requests.Session.send, "__wrapped__")


def test_a_block_budget_refuses_a_raw_request_before_it_is_sent(simulator: Any) -> None:
    """The simulator's host is named an LLM host, so its calls may be refused from the first one."""
    budget = tokentrace.Budget("none-left", limit_usd=1e-12, action="block")
    make_telemetry(budgets=[budget], llm_hosts=["127.0.0.1"])
    case = CASES[0]
    seen_before = len(simulator.served)
    with capture_usage() as records:
        for client in CLIENTS:
            with pytest.raises(tokentrace.BudgetExceeded):
                fetch(client, simulator.url.rstrip("/") + case.path, case)
    assert [r.status for r in records] == ["blocked"] * len(CLIENTS)
    assert len(simulator.served) == seen_before  # the simulator never saw any of them


def test_errors_and_odd_bodies_reach_the_caller_as_they_were(simulator: Any) -> None:
    import httpx

    case = CASES[0]
    url = simulator.url.rstrip("/") + case.path
    make_telemetry(llm_hosts=["127.0.0.1"])  # an LLM host: its errors and odd answers are calls from the first one
    _errors.reset()
    with capture_usage() as records:
        answered = httpx.post(url, json=case.body, headers={"x-sim-error": "429"})
        malformed = httpx.post(url, json=case.body, headers={"x-sim-error": "malformed"})
        no_usage = httpx.post(url, json=case.body, headers={"x-sim-error": "no-usage"})
        odd_request = httpx.post(url, content=b"\xff\xfe not json", headers={"content-type": "application/json"})
    assert answered.status_code == 429 and malformed.status_code == 200 and no_usage.status_code == 200
    assert odd_request.status_code in (200, 400, 422, 500)
    assert [(r.status, r.error_type) for r in records[:3]] == [("error", "429"), ("ok", None), ("ok", None)]
    assert [r.usage_reported for r in records[1:3]] == [False, False]  # never counted as $0 with usage
    assert records[1].cost_usd is None or not records[1].usage_reported
    assert _errors.counts().get("wire.json", 0) >= 1  # the malformed body was counted


def test_a_stream_abandoned_half_way_is_recorded_with_what_was_read(simulator: Any) -> None:
    import httpx

    case = CASES[1]
    make_telemetry()
    with capture_usage() as records:
        with httpx.Client() as http, http.stream("POST", simulator.url.rstrip("/") + case.path, json=case.body,
                                                 headers={"x-sim-chunk-delay-ms": "5"}) as response:
            for _line in response.iter_lines():
                break
        gc.collect()
    assert len(records) == 1 and records[0].stream and not records[0].usage_reported


def test_a_mixed_app_counts_every_call_once(simulator: Any) -> None:
    """SDK calls, raw calls of every client and async tasks interleaved: one record per call, tokens equal to what
    the provider said it billed."""
    telemetry = make_telemetry()
    expected_tokens: list[int] = []
    lock = threading.Lock()

    def raw(index: int) -> None:
        case = CASES[index % len(CASES)]
        body = fetch(CLIENTS[index % len(CLIENTS)], simulator.url.rstrip("/") + case.path, case)
        with lock:
            expected_tokens.append(provider_total(case, body) or 0)

    def sdk() -> None:
        with openai_client(simulator) as client:
            response = client.chat.completions.create(model="gpt-4o-mini",
                                                      messages=[{"role": "user", "content": "a b"}])
        with lock:
            expected_tokens.append(response.usage.total_tokens)

    async def tasks() -> None:
        import httpx

        async with httpx.AsyncClient() as http:
            case = CASES[0]
            answers = await asyncio.gather(*(http.post(simulator.url.rstrip("/") + case.path, json=case.body)
                                             for _ in range(5)))
        with lock:
            expected_tokens.extend(provider_total(case, a.content) or 0 for a in answers)

    with capture_usage() as records:
        threads = [threading.Thread(target=raw, args=(i,)) for i in range(20)]
        threads += [threading.Thread(target=sdk) for _ in range(4)]
        threads.append(threading.Thread(target=lambda: asyncio.run(tasks())))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        gc.collect()
    assert len(records) == len(expected_tokens) == 29
    assert sum(r.usage.total for r in records) == sum(expected_tokens)
    counted = sum(s.value for m in telemetry.registry.collect() if m.name == "tokens_used" for s in m.samples
                  if s.name == "tokens_used_total")
    assert counted == sum(expected_tokens)


def test_a_host_that_sends_stream_usage_unasked_streams_the_same_chunks_instrumented(simulator: Any) -> None:
    """Hugging Face's router ends every stream with a usage-only chunk, asked or not: tokentrace neither asks for it
    nor hides it, so the app reads the same chunks (usage included) with and without tokentrace."""

    def chunks() -> list[Any]:
        with openai_client(simulator, base_url="https://router.huggingface.co/v1") as client:
            stream = client.chat.completions.create(model="meta-llama/Llama-3.1-8B-Instruct", stream=True,
                                                    messages=[{"role": "user", "content": "one two three"}])
            return [c.model_dump(exclude={"id", "created"}) for c in stream]

    uninstrumented = chunks()
    make_telemetry()
    with capture_usage() as records:
        instrumented = chunks()
    assert instrumented == uninstrumented and instrumented[-1]["usage"] is not None
    assert [(r.provider, r.usage.input, r.usage.output) for r in records] == [("openai_compatible", 7, 8)]


# --------------------------------------------------------------------------- hostile and odd answers

CHAT_ANSWER = {"id": "c1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
               "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
               "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}}
SSE_ANSWER = (b'data: {"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
              b'data: {"id":"c1","model":"gpt-4o-mini","choices":[],'
              b'"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}}\n\ndata: [DONE]\n\n')


def _serve(httpserver: Any, body: bytes, headers: dict[str, str], status: int = 200) -> str:
    from werkzeug import Response

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_response(
        Response(body, status=status, headers=headers))
    return str(httpserver.url_for("/v1/chat/completions"))


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("answer", ["gzip-json", "sse-called-json", "non-utf8", "truncated-sse", "empty"])
def test_odd_answers_reach_the_caller_unchanged_and_are_counted(httpserver: Any, client: str, answer: str) -> None:
    import gzip
    import json

    body, headers, expect_usage, stream = {
        "gzip-json": (gzip.compress(json.dumps(CHAT_ANSWER).encode()),
                      {"Content-Type": "application/json", "Content-Encoding": "gzip"}, True, False),
        "sse-called-json": (SSE_ANSWER, {"Content-Type": "application/json"}, True, True),
        "non-utf8": (b'{"id": "\xff\xfe", "usage": {"prompt_tokens": 7}}', {"Content-Type": "application/json"},
                     False, False),
        "truncated-sse": (SSE_ANSWER[:120], {"Content-Type": "text/event-stream"}, False, True),
        "empty": (b"", {"Content-Type": "application/json"}, False, False),
    }[answer]
    url = _serve(httpserver, body, headers)
    case = WireCase("openai-chat", "", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                                        "stream": stream}, stream, "openai_compatible", "chat")
    uninstrumented = fetch(client, url, case)
    make_telemetry(llm_hosts=["localhost"])  # named an LLM host: an odd answer is still a call
    with capture_usage() as records:
        instrumented = fetch(client, url, case)
        gc.collect()
    assert instrumented == uninstrumented  # decoded the same way, nothing added or removed
    assert len(records) == 1 and records[0].status == "ok"
    assert records[0].usage_reported is expect_usage
    if expect_usage:
        assert records[0].usage.total == 12
    else:
        assert records[0].cost_usd is None  # unknown, never $0


@pytest.mark.parametrize("client", CLIENTS)
def test_a_connection_error_is_the_callers_and_recorded_as_an_error(client: str) -> None:
    from .conftest import free_port

    case = CASES[0]
    url = f"http://127.0.0.1:{free_port()}{case.path}"  # nothing listens there
    with pytest.raises(Exception) as uninstrumented:
        fetch(client, url, case)
    make_telemetry(llm_hosts=["127.0.0.1"])
    with capture_usage() as records, pytest.raises(Exception) as instrumented:
        fetch(client, url, case)
    assert type(instrumented.value) is type(uninstrumented.value)
    # urllib wraps http.client's OSError in a URLError above the hook: the record names the cause, its reason
    raised = getattr(instrumented.value, "reason", None) if client == "urllib" else instrumented.value
    assert [(r.status, r.error_type) for r in records] == [("error", type(raised).__qualname__)]


@pytest.mark.parametrize("client", ["requests", "aiohttp", "httpx-async"])
def test_other_clients_record_a_stream_abandoned_half_way(simulator: Any, client: str) -> None:
    case = CASES[1]
    url = simulator.url.rstrip("/") + case.path
    headers = {"x-sim-chunk-delay-ms": "5"}

    async def aiohttp_first_line() -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.post(url, json=case.body, headers=headers) as response:
            await response.content.readline()

    async def httpx_first_line() -> None:
        import httpx

        async with httpx.AsyncClient() as http, http.stream("POST", url, json=case.body, headers=headers) as response:
            async for _line in response.aiter_lines():
                break

    make_telemetry()
    with capture_usage() as records:
        if client == "requests":
            import requests

            with requests.post(url, json=case.body, headers=headers, stream=True, timeout=30) as response:
                next(response.iter_lines())
        else:
            asyncio.run(aiohttp_first_line() if client == "aiohttp" else httpx_first_line())
        gc.collect()
    assert len(records) == 1 and records[0].stream and not records[0].usage_reported


def test_a_wire_call_gets_the_same_span_metrics_ledger_row_and_attribution_as_an_sdk_call(simulator: Any,
                                                                                          tmp_path: Any) -> None:
    """The same request through the openai SDK (SDK layer) and through raw httpx (wire layer): the same record but
    for the layer-specific facts (latency, ids), the same span attributes, and a ledger row each."""
    import sqlite3

    import httpx

    ledger = tmp_path / "usage.db"
    telemetry = make_telemetry(ledger=ledger)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 5,
            "temperature": 0.5}
    with capture_usage() as records, tokentrace.attributes(feature="compare", user_id="u1"):
        with openai_client(simulator) as client:
            client.chat.completions.create(**body)  # type: ignore[call-overload]
        with sync_client(simulator.port, httpx) as http:  # api.openai.com, sent to the simulator below the hook
            http.post("https://api.openai.com/v1/chat/completions", json=body)
    assert tokentrace.flush()
    sdk, wire = records
    same = ("provider", "model", "request_model", "operation", "usage", "cost_usd", "price_source", "status",
            "stream", "finish_reasons", "usage_reported", "attributes")
    assert {k: getattr(wire, k) for k in same} == {k: getattr(sdk, k) for k in same}
    sdk_span, wire_span = telemetry.finished_spans()[-2:]
    assert wire_span.name == sdk_span.name == "chat gpt-4o-mini"
    skip = {"gen_ai.response.id"}  # the simulator numbers its answers
    assert {k: v for k, v in wire_span.attributes.items() if k not in skip} == {
        k: v for k, v in sdk_span.attributes.items() if k not in skip}
    rows = sqlite3.connect(ledger).execute("SELECT feature, user_id, total_tokens FROM llm_usage").fetchall()
    assert rows == [("compare", "u1", sdk.usage.total)] * 2


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/v2/chat", "/v2/embed"])
def test_an_apps_own_api_on_a_generic_path_is_not_taken_for_an_llm_call(httpserver: Any, path: str) -> None:
    """Ollama's and Cohere's paths are common in ordinary web APIs: a body that is not an LLM request of the format
    is not an LLM call (no record, nothing read); nor is an LLM-shaped request an unknown host answers without usage,
    id or model. A host named in ``llm_hosts`` is an LLM host: such an answer is a call whose usage is unknown."""
    import httpx

    httpserver.expect_request(path, method="POST").respond_with_json({"reply": "hello"})
    make_telemetry()
    body = {"model": "command-a", "messages": [{"role": "user", "content": "hi"}], "texts": ["hi"],
            "prompt": "hi", "input": "hi"}
    with capture_usage() as records:
        httpx.post(httpserver.url_for(path), json={"message": "hi", "user": "u1"})
        httpx.post(httpserver.url_for(path), content=b"not json")
        httpx.post(httpserver.url_for(path), json={"model": "llama3.2", "messages": []})
        httpx.post(httpserver.url_for(path), json=body)
    assert records == []
    tokentrace.uninstrument()
    make_telemetry(llm_hosts=["localhost"])
    with capture_usage() as records:
        httpx.post(httpserver.url_for(path), json=body)
    assert len(records) == 1 and not records[0].usage_reported


APP_OWN_POSTS = [
    ("/forms/42/responses", {"answers": [{"question": 1, "value": "yes"}], "email": "a@example.com"}),
    ("/v1/messages", {"to": "+15550100", "from": "+15550199", "body": "your code is 1234"}),
    ("/api/tasks/7/completions", {"completed_by": "u1", "note": "done"}),
    ("/collections/docs/embeddings", {"vectors": [[0.1, 0.2]], "ids": ["d1"]}),
    ("/api/chat", {"model": "support-bot", "message": "where is my order?"}),
    ("/v1/chat/completions", {"model": "house-bot", "messages": [{"role": "user", "content": "hi"}]}),
]
"""The app's own API on paths LLM APIs use too; the last is LLM-shaped, but the host answers like no LLM API."""


@pytest.mark.parametrize("path, body", APP_OWN_POSTS, ids=[p for p, _ in APP_OWN_POSTS])
@pytest.mark.parametrize("client", ["httpx", "requests", "aiohttp", "urllib"])
def test_the_apps_own_posts_are_never_counted_charged_or_refused(httpserver: Any, tmp_path: Any, path: str,
                                                                 body: dict[str, Any], client: str) -> None:
    """A $1 daily block budget and the $0.10 unpriced floor: 12 of the app's own POSTs each reach its server, leave
    no record and no spend, and the caller reads what it read uninstrumented."""
    httpserver.expect_request(path, method="POST").respond_with_json({"ok": True, "reply": "noted"})
    case = WireCase("own", "", body, False, "openai_compatible", "chat")
    url = httpserver.url_for(path)
    uninstrumented = fetch(client, url, case)
    make_telemetry(ledger=str(tmp_path / "u.db"), budgets=[tokentrace.Budget("d", limit_usd=1.0, action="block")])
    served = len(httpserver.log)
    with capture_usage() as records:
        answers = [fetch(client, url, case) for _ in range(12)]
    assert answers == [uninstrumented] * 12
    assert len(httpserver.log) - served == 12
    assert records == []
    assert tokentrace.flush()
    import sqlite3

    assert sqlite3.connect(tmp_path / "u.db").execute("SELECT COUNT(*) FROM llm_usage").fetchone() == (0,)


def test_an_unknown_host_that_answers_like_an_llm_api_is_refused_from_then_on(simulator: Any) -> None:
    """The first LLM request to an unknown host is counted, never refused; its LLM answer proves the host, and the
    next call meets the budget like any other."""
    import httpx

    case = CASES[0]
    make_telemetry(budgets=[tokentrace.Budget("none-left", limit_usd=1e-12, action="block")])
    url = simulator.url.rstrip("/") + case.path
    with capture_usage() as records:
        assert httpx.post(url, json=case.body).status_code == 200
        with pytest.raises(tokentrace.BudgetExceeded):
            httpx.post(url, json=case.body)
    assert [r.status for r in records] == ["ok", "blocked"]
    assert records[0].usage_reported


def test_llm_hosts_come_from_the_environment_and_bad_ones_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentrace.config import ConfigError, resolve

    monkeypatch.setenv("TOKENTRACE_LLM_HOSTS", "llm.internal.example, GW.example.com")
    assert resolve(ledger=False).llm_hosts == ("llm.internal.example", "gw.example.com")
    with pytest.raises(ConfigError, match="not a host name"):
        resolve(ledger=False, llm_hosts=["https://gw.example.com/v1"])


@pytest.mark.parametrize("ledger", [False, "sqlite"])
def test_a_request_the_sdk_refuses_before_sending_is_no_call(simulator: Any, tmp_path: Any, ledger: Any) -> None:
    """Issue 40, item 2: anthropic's SDK raises "Streaming is required" for a long non-streamed request before any
    byte is sent (pydantic-ai then retries as a stream). It was recorded as a failed call, so such users saw a 50%
    error rate. Nothing reached the provider: no record, no request counted, the budget's reservation given back."""
    import anthropic

    telemetry = make_telemetry(ledger=str(tmp_path / "u.db") if ledger else False,
                               budgets=[tokentrace.Budget("small", limit_usd=0.7, action="block")])  # 2 estimates
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=simulator.url, max_retries=0)
    served = len(simulator.served)
    with capture_usage() as records:
        for _ in range(3):  # each would hold a large estimate if its reservation were kept
            with pytest.raises(ValueError, match="Streaming is required"):
                client.messages.create(model="claude-haiku-4-5", max_tokens=64000,
                                       messages=[{"role": "user", "content": "hi"}])
        client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert len(simulator.served) - served == 1
    assert [r.status for r in records] == ["ok"]
    assert telemetry.sample("llm_requests_total", provider="anthropic", model="claude-haiku-4-5", operation="chat",
                            status="error", feature="") in (None, 0.0)


def test_an_answer_the_sdk_cannot_read_is_still_a_failed_call(httpserver: Any) -> None:
    """The other side of the rule: a request that went out and whose answer the SDK could not parse (a ValueError
    too) is a call, recorded as failed."""
    import openai

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_data(
        "not json", content_type="application/json")
    make_telemetry()
    client = openai.OpenAI(api_key="sk-test", base_url=httpserver.url_for("/v1"), max_retries=0)
    with capture_usage() as records, pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises for it
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert [r.status for r in records] == ["error"]
