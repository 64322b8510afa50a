"""Usage of OpenAI-format streams nobody asked usage for (issue 40, items 1 and 3), over real sockets.

The wire layer asks (``stream_options.include_usage``) where the host takes it and takes out of the caller's bytes
exactly what asking added; a host the registry does not know is learnt from its first stream; a host that rejects
the option gets the request again without it. The SDK layer's ``with_streaming_response`` calls are measured on the
wire, and what the caller reads (bytes, chunks) equals the uninstrumented run's."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import httpx
import pytest

from tokentrace.providers import stream_usage
from tokentrace.simulator import async_client, sync_client
from tokentrace.testing import capture_usage
from tokentrace.wire import stream_options

from .conftest import make_telemetry, openai_async_client, openai_client
from .wire_cases import normalized

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count the tokens of this"}],
        "max_tokens": 7, "stream": True}
COMPLETION = {"model": "gpt-3.5-turbo-instruct", "prompt": "count these", "max_tokens": 5, "stream": True}


def _read(sim: Any, url: str, body: dict[str, Any], headers: dict[str, str] | None = None,
          chunk_size: int | None = None) -> bytes:
    with sync_client(sim.port, httpx) as http, http.stream("POST", url, json=body, headers=headers) as response:
        return b"".join(response.iter_bytes(chunk_size))


def _events(raw: bytes) -> list[Any]:
    return [json.loads(line[6:]) for line in raw.splitlines() if line.startswith(b"data: {")]


def _asked_total(sim: Any, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> int:
    """The provider's own total for the same request, asked for usage, uninstrumented."""
    raw = _read(sim, url, {**body, "stream_options": {"include_usage": True}}, headers)
    return int(_events(raw)[-1]["usage"]["total_tokens"])


@pytest.mark.parametrize("chunk_size", [None, 1, 7], ids=["as-sent", "byte-by-byte", "7-bytes"])
@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/completions", COMPLETION)],
                         ids=["chat", "completions"])
def test_a_stream_on_the_wire_is_asked_for_usage_and_reads_as_if_it_was_not(
        simulator: Any, path: str, body: dict[str, Any], chunk_size: int | None) -> None:
    url = "https://api.openai.com" + path
    uninstrumented = _read(simulator, url, body, chunk_size=chunk_size)
    total = _asked_total(simulator, url, body)
    assert b'"usage"' not in uninstrumented
    make_telemetry()
    with capture_usage() as records:
        instrumented = _read(simulator, url, body, chunk_size=chunk_size)
    assert normalized(instrumented) == normalized(uninstrumented)  # no usage event, no "usage": null, same framing
    (record,) = records
    assert record.provider == "openai" and record.usage_reported and record.usage.total == total


def test_an_async_stream_and_a_body_read_whole_are_asked_too(simulator: Any) -> None:
    url = "https://api.openai.com/v1/chat/completions"
    total = _asked_total(simulator, url, CHAT)

    async def stream() -> bytes:
        async with async_client(simulator.port, httpx) as http, http.stream("POST", url, json=CHAT) as response:
            return b"".join([chunk async for chunk in response.aiter_bytes()])

    def whole() -> bytes:
        with sync_client(simulator.port, httpx) as http:
            return http.post(url, json=CHAT).content

    uninstrumented = (asyncio.run(stream()), whole())
    make_telemetry()
    with capture_usage() as records:
        instrumented = (asyncio.run(stream()), whole())
    assert [normalized(raw) for raw in instrumented] == [normalized(raw) for raw in uninstrumented]
    assert [r.usage.total for r in records] == [total, total] and all(r.usage_reported for r in records)


def test_a_caller_that_asked_gets_its_usage_event_untouched(simulator: Any) -> None:
    url = "https://api.openai.com/v1/chat/completions"
    asked = {**CHAT, "stream_options": {"include_usage": True}}
    uninstrumented = _read(simulator, url, asked)
    make_telemetry()
    with capture_usage() as records:
        instrumented = _read(simulator, url, asked)
    assert normalized(instrumented) == normalized(uninstrumented)
    assert _events(instrumented)[-1]["usage"]["total_tokens"] == records[0].usage.total


def test_an_unknown_host_is_learnt_from_its_first_stream(simulator: Any) -> None:
    url = "http://llm.internal.example:8000/v1/chat/completions"
    uninstrumented = _read(simulator, url, CHAT)
    total = _asked_total(simulator, url, CHAT)
    make_telemetry()
    with capture_usage() as records:
        first, second, third = (_read(simulator, url, CHAT) for _ in range(3))
    # the first goes out as written: it ends without usage, so the host must be asked; the next ones are
    assert [normalized(raw) for raw in (first, second, third)] == [normalized(uninstrumented)] * 3
    assert [r.usage_reported for r in records] == [False, True, True]
    assert records[2].usage.total == total and records[2].provider == "openai_compatible"


def test_a_host_that_sends_usage_unasked_is_never_asked(simulator: Any) -> None:
    url = "http://tgi.internal.example:8080/v1/chat/completions"
    unasked = {"x-sim-stream-usage": "unasked"}
    uninstrumented = _read(simulator, url, CHAT, unasked)
    assert "usage" in _events(uninstrumented)[-1]  # the app reads the usage event it always read
    make_telemetry()
    with capture_usage() as records:
        reads = [_read(simulator, url, CHAT, unasked) for _ in range(3)]
    assert [normalized(raw) for raw in reads] == [normalized(uninstrumented)] * 3
    assert all(r.usage_reported for r in records) and len(records) == 3


def test_a_host_that_rejects_the_option_gets_the_request_again_without_it(simulator: Any) -> None:
    url = "https://api.deepseek.com/v1/chat/completions"  # a provider known to take the option: asked at once
    rejects = {"x-sim-stream-usage": "reject"}
    uninstrumented = _read(simulator, url, CHAT, rejects)
    make_telemetry()
    served = len(simulator.served)
    with capture_usage() as records:
        first = _read(simulator, url, CHAT, rejects)
        assert len(simulator.served) - served == 2  # the 400, then the request as written
        second = _read(simulator, url, CHAT, rejects)
        assert len(simulator.served) - served == 3  # remembered: sent once, as written
    assert normalized(first) == normalized(second) == normalized(uninstrumented)
    assert [(r.status, r.usage_reported) for r in records] == [("ok", False), ("ok", False)]


def test_the_sdk_layer_learns_and_retries_like_the_wire(simulator: Any) -> None:
    """An OpenAI client on a self-hosted server that sends usage unasked: the app reads the usage chunk it always
    read; on a host that rejects the option, the SDK never sees the 400."""

    def chunks(base_url: str, headers: dict[str, str]) -> list[Any]:
        with openai_client(simulator, base_url, default_headers=headers) as client:
            return [c.model_dump(exclude={"id", "created"}) for c in client.chat.completions.create(
                model="gpt-4o-mini", messages=CHAT["messages"], max_tokens=7, stream=True)]

    cases = [("http://tgi.internal.example:8080/v1", {"x-sim-stream-usage": "unasked"}),
             ("https://api.deepseek.com/v1", {"x-sim-stream-usage": "reject"})]
    uninstrumented = [chunks(*case) for case in cases]
    make_telemetry()
    with capture_usage() as records:
        instrumented = [chunks(*case) for case in cases for _ in range(2)]
    assert instrumented == [uninstrumented[0], uninstrumented[0], uninstrumented[1], uninstrumented[1]]
    assert uninstrumented[0][-1]["usage"] is not None
    assert [(r.status, r.usage_reported) for r in records] == [("ok", True), ("ok", True), ("ok", False),
                                                               ("ok", False)]
    assert stream_usage.should_ask("deepseek", "api.deepseek.com") is False


@pytest.mark.parametrize("mode", ["parse", "iter_lines"])
def test_with_streaming_response_streams_count_exact_tokens_and_add_no_chunk(simulator: Any, mode: str) -> None:
    def run() -> list[Any]:
        with openai_client(simulator) as client, client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=CHAT["messages"], max_tokens=7, stream=True) as response:
            if mode == "parse":
                return [c.model_dump(exclude={"id", "created"}) for c in response.parse()]
            return [normalized(line.encode()) for line in response.iter_lines()]

    uninstrumented = run()
    total = _asked_total(simulator, "https://api.openai.com/v1/chat/completions", CHAT)
    make_telemetry()
    with capture_usage() as records:
        instrumented = run()
    assert instrumented == uninstrumented
    (record,) = records
    assert (record.provider, record.stream, record.usage_reported, record.usage.total) == ("openai", True, True,
                                                                                          total)


def test_with_streaming_response_of_the_responses_api_and_a_whole_answer(simulator: Any) -> None:
    async def run() -> tuple[Any, Any]:
        async with openai_async_client(simulator) as client:
            async with client.responses.with_streaming_response.create(
                    model="gpt-4o-mini", input="hello there", stream=True) as response:
                events = [e.type async for e in await response.parse()]
            async with client.chat.completions.with_streaming_response.create(
                    model="gpt-4o-mini", messages=CHAT["messages"], max_tokens=3) as response:
                answer = await response.parse()
        return events, answer

    make_telemetry()
    with capture_usage() as records:
        events, answer = asyncio.run(run())
    assert events[-1] == "response.completed"
    streamed, whole = records
    assert streamed.usage_reported and streamed.operation == "chat" and streamed.stream
    assert whole.usage.total == answer.usage.total_tokens and not whole.stream


@pytest.mark.parametrize("kind", ["generator", "file", "async-generator"])
def test_a_request_body_that_is_not_in_memory_goes_out_untouched(simulator: Any, kind: str) -> None:
    url = "https://api.openai.com/v1/chat/completions"
    payload = json.dumps({**CHAT, "stream": False}).encode()

    def generator() -> Any:
        yield payload[:10]
        yield payload[10:]

    async def agenerator() -> Any:
        yield payload

    async def send_async() -> bytes:
        async with async_client(simulator.port, httpx) as http:
            return (await http.post(url, content=agenerator())).content

    def send() -> bytes:
        if kind == "async-generator":
            return asyncio.run(send_async())
        with sync_client(simulator.port, httpx) as http:
            return http.post(url, content=generator() if kind == "generator" else io.BytesIO(payload)).content

    uninstrumented = send()
    make_telemetry()
    with capture_usage() as records:
        instrumented = send()
    assert normalized(instrumented) == normalized(uninstrumented)
    # a provider's own host: counted from its answer (the request's model unknown, the answer's model and usage read)
    (record,) = records
    assert record.usage_reported and record.usage.total == json.loads(instrumented)["usage"]["total_tokens"]


def test_a_50_mib_upload_is_not_parsed_and_passes_untouched(simulator: Any) -> None:
    url = "http://app.internal.example:9000/v1/embeddings"
    body = b'{"input": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    make_telemetry()
    with capture_usage() as records, sync_client(simulator.port, httpx) as http:
        response = http.post(url, content=body, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 422) and records == []


def test_the_usage_event_filter_holds_across_any_split() -> None:
    events = [b'data: {"id":"a","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n',
              b'data: {"usage":null,"id":"b","choices":[{"delta":{},"finish_reason":"stop"}]}\r\n\r\n',
              b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}\n\n',
              b"data: [DONE]\n\n"]
    expected = (b'data: {"id":"a","choices":[{"delta":{"content":"hi"}}]}\n\n'
                b'data: {"id":"b","choices":[{"delta":{},"finish_reason":"stop"}]}\r\n\r\ndata: [DONE]\n\n')
    raw = b"".join(events)
    for size in (1, 2, 3, 5, 64, len(raw)):
        hidden = stream_options.UsageHidden(strip_nulls=True)
        out = b"".join(hidden.feed(raw[i:i + size]) for i in range(0, len(raw), size)) + hidden.end()
        assert out == expected, size
    text = b'data: {"id":"d","choices":[{"delta":{"content":"say \\"usage\\": null, ok"}}]}\n\n'
    assert stream_options.UsageHidden(strip_nulls=True).feed(text) == text  # text inside a string is left alone
    assert stream_options.ask(b' {"model":"m"}') == b' {"stream_options":{"include_usage":true},"model":"m"}'
    assert stream_options.unask(stream_options.ask(b'{"model":"m"}') or b"") == b'{"model":"m"}'
    assert stream_options.ask(b'{"stream_options":{"include_usage":false},"model":"m"}') is None


def test_with_streaming_response_without_the_wire_layer_adds_no_chunk(simulator: Any) -> None:
    def run() -> list[Any]:
        with openai_client(simulator) as client, client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=CHAT["messages"], max_tokens=7, stream=True) as response:
            return [c.model_dump(exclude={"id", "created"}) for c in response.parse()]

    uninstrumented = run()
    make_telemetry(http=False)
    with capture_usage() as records:
        instrumented = run()
    assert instrumented == uninstrumented  # nothing asked, so nothing to hide
    (record,) = records
    assert record.status == "ok" and not record.usage_reported  # the body is the caller's to read: not measured


def test_a_host_that_ignores_the_option_reads_as_before(simulator: Any) -> None:
    """Asked, a host that ignores ``stream_options`` sends no usage: nothing to hide, the bytes unchanged, the call
    counted with usage not reported."""
    url = "https://api.openai.com/v1/chat/completions"
    ignores = {"x-sim-stream-usage": "ignore"}
    uninstrumented = _read(simulator, url, CHAT, ignores)
    make_telemetry()
    with capture_usage() as records:
        instrumented = _read(simulator, url, CHAT, ignores, chunk_size=3)
    assert normalized(instrumented) == normalized(uninstrumented)
    (record,) = records
    assert record.status == "ok" and not record.usage_reported
