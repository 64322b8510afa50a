"""Realtime sessions over WebSocket (issue 41): the openai SDK's realtime client (sync and async) and the raw
``websockets`` client against the simulator's Realtime endpoint: one record per response with the provider's usage,
priced at the realtime model's rates; the frames the app reads unchanged; budgets refusing a ``response.create``
before it is sent; the odd shapes (xAI's top-level usage, a cancelled response, usage of the wrong type, a dropped
connection, a response that never ends) handled without touching the app."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import openai
import pytest
from websockets.sync.client import connect

import tokentrace
from tokentrace import Budget, BudgetExceeded
from tokentrace._support import errors as _errors
from tokentrace._usage import Usage
from tokentrace.testing import capture_usage

from .conftest import make_telemetry

# gpt-realtime (genai-prices): text in $4, cached $0.4, audio in $32, cached audio $0.4, text out $16, audio out $64
RATES = {"input": 4.0, "cache_read": 0.4, "input_audio": 32.0, "output": 16.0, "output_audio": 64.0}
ITEM = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello there you"}]}


def _cost(u: Usage) -> float:
    text_out = u.output - u.output_audio
    return (u.input * RATES["input"] + u.cache_read * RATES["cache_read"] + text_out * RATES["output"]
            + u.output_audio * RATES["output_audio"]) / 1e6


@pytest.fixture
def instrumented() -> Any:
    tokentrace.uninstrument()
    _errors.reset()
    yield make_telemetry(llm_hosts=["127.0.0.1"])
    tokentrace.uninstrument()


def _raw_session(simulator: Any, *metadata: str) -> list[str]:
    """A raw websockets client: one text turn per ``metadata`` value (``""``: a plain response); every frame read."""
    frames: list[str] = []
    with connect(f"ws://127.0.0.1:{simulator.port}/v1/realtime?model=gpt-realtime") as ws:
        frames.append(str(ws.recv()))
        ws.send(json.dumps({"type": "session.update", "session": {"output_modalities": ["audio"]}}))
        frames.append(str(ws.recv()))
        for sim in metadata:
            ws.send(json.dumps({"type": "conversation.item.create", "item": ITEM}))
            ws.send(json.dumps({"type": "response.create", "response": {"metadata": {"sim": sim}}}))
            while True:
                frames.append(str(ws.recv()))
                if json.loads(frames[-1])["type"] == "response.done":
                    break
    return frames


def test_openai_sdk_realtime_one_record_per_response_at_the_realtime_rates(simulator: Any,
                                                                           instrumented: Any) -> None:
    client = openai.OpenAI(api_key="sk-test", websocket_base_url=f"ws://127.0.0.1:{simulator.port}/v1")
    reported = []
    with capture_usage() as records, tokentrace.attributes(feature="voice"):
        with client.realtime.connect(model="gpt-realtime") as conn:
            conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
            for _ in range(2):
                conn.conversation.item.create(item=ITEM)
                conn.response.create()
                for event in conn:
                    if event.type == "response.done":
                        reported.append(event.response.usage)
                        break
    assert len(records) == 2
    for record, usage in zip(records, reported, strict=True):
        assert (record.operation, record.model, record.status) == ("realtime", "gpt-realtime", "ok")
        assert record.usage.all_input == usage.input_tokens and record.usage.all_output == usage.output_tokens
        assert record.usage.cache_read == usage.input_token_details.cached_tokens
        assert record.usage.output_audio == usage.output_token_details.audio_tokens == 20
        assert record.cost_usd == pytest.approx(_cost(record.usage), rel=1e-12)
        assert record.attributes["feature"] == "voice"  # what was in force when the session connected
        assert record.attributes["session_id"] == "sess_sim" + record.attributes["session_id"][8:]
    assert records[1].usage.cache_read == 3  # the second turn reads the first turn's context from the cache


def test_async_openai_sdk_realtime(simulator: Any, instrumented: Any) -> None:
    async def run() -> int:
        client = openai.AsyncOpenAI(api_key="sk-test", websocket_base_url=f"ws://127.0.0.1:{simulator.port}/v1")
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.conversation.item.create(item=ITEM)
            await conn.response.create()
            async for event in conn:
                if event.type == "response.done":
                    return int(event.response.usage.total_tokens)
        return 0

    with capture_usage() as records:
        total = asyncio.run(run())
    (record,) = records
    assert record.usage.total == total == 11 and record.operation == "realtime"


def test_raw_websockets_frames_are_unchanged_and_each_response_counted(simulator: Any) -> None:
    tokentrace.uninstrument()
    plain = _raw_session(simulator, "", "")
    make_telemetry(llm_hosts=["127.0.0.1"])
    try:
        with capture_usage() as records:
            measured = _raw_session(simulator, "", "")
    finally:
        tokentrace.uninstrument()
    def unnumbered(frames: list[str]) -> list[str]:  # the simulator numbers its ids across sessions
        return [re.sub(r"_sim\d+", "_sim", frame) for frame in frames]

    assert unnumbered(measured) == unnumbered(plain)  # every frame the app read, byte for byte
    assert len(records) == 2 and all(r.usage_reported for r in records)


def test_a_block_budget_refuses_a_response_create_before_it_is_sent(simulator: Any) -> None:
    tokentrace.uninstrument()
    make_telemetry(llm_hosts=["127.0.0.1"], budgets=[Budget("voice", limit_requests=1, action="block")])
    try:
        with capture_usage() as records, connect(f"ws://127.0.0.1:{simulator.port}/v1/realtime?model=gpt-realtime"
                                                 ) as ws:
            ws.recv()
            ws.send(json.dumps({"type": "response.create"}))
            while json.loads(ws.recv())["type"] != "response.done":
                pass
            with pytest.raises(BudgetExceeded):
                ws.send(json.dumps({"type": "response.create"}))
            ws.send(json.dumps({"type": "session.update", "session": {}}))  # other events still go
            assert json.loads(ws.recv())["type"] == "session.updated"  # and no response was started
    finally:
        tokentrace.uninstrument()
    assert [r.status for r in records] == ["ok", "blocked"]


def test_responses_the_server_starts_itself_are_counted(simulator: Any, instrumented: Any) -> None:
    import base64

    with capture_usage() as records, connect(f"ws://127.0.0.1:{simulator.port}/v1/realtime?model=gpt-realtime"
                                             ) as ws:
        ws.recv()
        ws.send(json.dumps({"type": "session.update", "session": {"turn_detection": {"type": "server_vad"}}}))
        ws.recv()
        ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\0" * 48_000).decode()}))
        ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while json.loads(ws.recv())["type"] != "response.done":
            pass
    (record,) = records
    assert record.usage.input_audio == 10 and record.cost_usd == pytest.approx(
        (10 * RATES["input_audio"] + 8 * RATES["output"]) / 1e6, rel=1e-12)


def test_xai_usage_a_cancelled_response_and_usage_of_the_wrong_type(simulator: Any, instrumented: Any) -> None:
    with capture_usage() as records:
        _raw_session(simulator, "xai", "cancelled", "bad-usage")
    xai, cancelled, bad = records
    assert xai.usage_reported and xai.usage.output_audio == 20 and xai.cost_usd is not None
    assert cancelled.usage_reported and cancelled.usage.output == 14  # half the output, as billed
    assert not bad.usage_reported and bad.status == "ok"
    assert _errors.counts().get("wire.realtime") == 1


def test_a_dropped_connection_and_a_response_that_never_ends(simulator: Any, instrumented: Any) -> None:
    from websockets.exceptions import ConnectionClosed

    with capture_usage() as records:
        with connect(f"ws://127.0.0.1:{simulator.port}/v1/realtime?model=gpt-realtime") as ws:
            ws.recv()
            ws.send(json.dumps({"type": "response.create", "response": {"metadata": {"sim": "drop"}}}))
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv()
        with connect(f"ws://127.0.0.1:{simulator.port}/v1/realtime?model=gpt-realtime") as ws:
            ws.recv()
            ws.send(json.dumps({"type": "response.create", "response": {"metadata": {"sim": "no-done"}}}))
            for _ in range(5):
                ws.recv()
    assert [(r.status, r.usage_reported) for r in records] == [("error", False), ("error", False)]
    assert all(r.charged_usd for r in records)  # begun, maybe billed: their estimate counts


def test_other_websockets_are_left_alone(simulator: Any, instrumented: Any) -> None:
    with connect(f"ws://127.0.0.1:{simulator.port}/chat/socket") as ws:
        assert "recv" not in vars(ws) and "send" not in vars(ws)  # nothing per frame


@pytest.fixture(scope="module")
def tls_simulator() -> Any:
    """The simulator over TLS, and an SSL context that trusts it: google-genai's live client speaks only wss://."""
    import ssl

    import trustme

    from tokentrace.simulator.server import Simulator

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    context = ssl.create_default_context()
    authority.configure_trust(context)
    with certificate.cert_chain_pems[0].tempfile() as cert, certificate.private_key_pem.tempfile() as key, \
            Simulator(tls=(cert, key)) as simulator:
        yield simulator, context


def test_google_genai_live_one_record_per_turn_with_thoughts_billed(tls_simulator: Any, instrumented: Any) -> None:
    """Gemini Live's usageMetadata comes once per turn and re-counts the whole context as that turn's prompt (the
    simulator's rule, as the issue's recorded sessions show): each turn is a call billed that prompt; its
    totalTokenCount leaves the thoughts out, which are billed as output."""
    from google import genai

    simulator, context = tls_simulator
    client = genai.Client(api_key="gm-test-key", http_options={"base_url": f"https://127.0.0.1:{simulator.port}",
                                                               "async_client_args": {"ssl": context}})

    async def run() -> list[int]:
        totals = []
        async with client.aio.live.connect(model="gemini-live-2.5-flash-preview",
                                           config={"response_modalities": ["TEXT"]}) as session:
            for turn in ("hello there", "and once more"):
                await session.send_client_content(turns={"role": "user", "parts": [{"text": turn}]},
                                                  turn_complete=True)
                async for message in session.receive():
                    if message.usage_metadata:
                        totals.append(int(message.usage_metadata.total_token_count))
                    if message.server_content and message.server_content.turn_complete:
                        break
        return totals

    with capture_usage() as records:
        totals = asyncio.run(run())
    assert [(r.provider, r.model, r.operation) for r in records] == [
        ("google", "gemini-live-2.5-flash-preview", "realtime")] * 2
    assert [r.usage.input for r in records] == [2, 2 + 6 + 3]  # the whole context, re-counted each turn
    assert [r.usage.reasoning for r in records] == [2, 2]
    assert [r.usage.total - r.usage.reasoning for r in records] == totals  # totalTokenCount leaves thoughts out
    assert all(r.cost_usd is not None and r.cost_usd > 0 for r in records)


def test_aiohttp_ws_connect_sessions_are_counted_and_frames_unchanged(simulator: Any, instrumented: Any) -> None:
    import aiohttp

    async def run() -> list[str]:
        seen = []
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"http://127.0.0.1:{simulator.port}/v1/realtime?model=gpt-realtime") as ws:
            seen.append((await ws.receive_json())["type"])
            await ws.send_json({"type": "conversation.item.create", "item": ITEM})
            await ws.send_str(json.dumps({"type": "response.create"}))
            async for message in ws:
                seen.append(json.loads(message.data)["type"])
                if seen[-1] == "response.done":
                    break
        return seen

    with capture_usage() as records:
        seen = asyncio.run(run())
    assert seen[0] == "session.created" and seen[-1] == "response.done" and len(seen) == 7
    (record,) = records
    assert (record.operation, record.usage.all_input, record.usage.output) == ("realtime", 3, 8)


def test_closing_the_session_when_a_budget_would_refuse_a_server_started_response_is_opt_in(
        simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from websockets.exceptions import ConnectionClosed

    def session(closes: bool) -> list[str]:
        tokentrace.uninstrument()
        make_telemetry(llm_hosts=["127.0.0.1"], budgets=[Budget("voice", limit_requests=1, action="block")])
        if closes:
            monkeypatch.setenv("TOKENTRACE_REALTIME_CLOSE_ON_BUDGET", "1")
        statuses: list[str] = []
        try:
            with capture_usage() as records, connect(
                    f"ws://127.0.0.1:{simulator.port}/v1/realtime?model=gpt-realtime") as ws:
                ws.recv()
                ws.send(json.dumps({"type": "session.update", "session": {"turn_detection": {"type": "server_vad"}}}))
                ws.recv()
                for _ in range(2):
                    ws.send(json.dumps({"type": "input_audio_buffer.append",
                                        "audio": base64.b64encode(b"\0" * 4800).decode()}))
                    ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                    while json.loads(ws.recv())["type"] != "response.done":
                        pass
                if closes:
                    ws.recv(timeout=5)
        except ConnectionClosed:
            statuses.append("closed")
        finally:
            tokentrace.uninstrument()
            monkeypatch.delenv("TOKENTRACE_REALTIME_CLOSE_ON_BUDGET", raising=False)
        return statuses + [r.status for r in records]

    assert session(closes=False) == ["ok", "ok"]  # the server's responses cannot be stopped: both counted
    # refused (a blocked record), the session closed; the response already under way still reached the app and
    # is counted with its usage
    assert session(closes=True) == ["closed", "ok", "blocked", "ok"]


def test_aiohttp_closes_the_session_too_when_a_budget_would_refuse_a_server_started_response(
        simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``TOKENTRACE_REALTIME_CLOSE_ON_BUDGET`` through aiohttp's WebSocket client, as through ``websockets``."""
    import base64

    import aiohttp

    async def turns(ws: Any) -> str:
        await ws.receive()
        await ws.send_json({"type": "session.update", "session": {"turn_detection": {"type": "server_vad"}}})
        await ws.receive()
        for _ in range(2):
            await ws.send_json({"type": "input_audio_buffer.append",
                                "audio": base64.b64encode(b"\0" * 4800).decode()})
            await ws.send_json({"type": "input_audio_buffer.commit"})
            while True:
                message = await ws.receive()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    return "closed"
                if json.loads(message.data)["type"] == "response.done":
                    break
        return "open"

    async def run() -> str:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"http://127.0.0.1:{simulator.port}/v1/realtime?model=gpt-realtime") as ws:
            return await turns(ws)

    def session(closes: bool) -> list[str]:
        tokentrace.uninstrument()
        make_telemetry(llm_hosts=["127.0.0.1"], budgets=[Budget("voice", limit_requests=1, action="block")])
        if closes:
            monkeypatch.setenv("TOKENTRACE_REALTIME_CLOSE_ON_BUDGET", "1")
        try:
            with capture_usage() as records:
                state = asyncio.run(run())
        finally:
            tokentrace.uninstrument()
            monkeypatch.delenv("TOKENTRACE_REALTIME_CLOSE_ON_BUDGET", raising=False)
        return [state] + [r.status for r in records]

    assert session(closes=False) == ["open", "ok", "ok"]
    # refused (a blocked record), the session closed; aiohttp's close drops the frames not yet read (websockets'
    # keeps them for the app), so the response under way ends without its usage: a failed call, its estimate charged
    assert session(closes=True) == ["closed", "ok", "blocked", "error"]


def test_a_block_budget_at_its_limit_refuses_a_new_session_before_the_handshake(simulator: Any) -> None:
    tokentrace.uninstrument()
    make_telemetry(llm_hosts=["127.0.0.1"], budgets=[Budget("voice", limit_requests=1, action="block")])
    url = f"ws://127.0.0.1:{simulator.port}/v1/realtime?model=gpt-realtime"
    try:
        with capture_usage() as records:
            with connect(url) as ws:  # admitted: nothing held or recorded for the session itself
                ws.recv()
                ws.send(json.dumps({"type": "response.create"}))
                while json.loads(ws.recv())["type"] != "response.done":
                    pass
            with pytest.raises(BudgetExceeded):
                connect(url)
            with connect(f"ws://127.0.0.1:{simulator.port}/chat/socket") as other:  # not a realtime endpoint
                assert other.protocol is not None
    finally:
        tokentrace.uninstrument()
    assert [r.status for r in records] == ["ok", "blocked"]


def test_a_tool_call_response_is_counted_like_any_other(simulator: Any, instrumented: Any) -> None:
    with capture_usage() as records:
        frames = _raw_session(simulator, "tool")
    assert "response.function_call_arguments.done" in {json.loads(f)["type"] for f in frames}
    (record,) = records
    assert record.usage_reported and record.usage.output == 28  # 8 text + 20 audio tokens (the session has audio)


def test_memory_stays_bounded_and_huge_frames_are_not_read_whole(instrumented: Any) -> None:
    """10,000 responses the server starts and never ends keep at most MAX_PENDING in flight (the oldest recorded
    without usage); a 100 MB frame is looked at through two slices only."""
    import time

    from tokentrace.wire import realtime

    session = realtime.Session("openai", "gpt-realtime", "api.openai.com", 443)
    with capture_usage() as records:
        for _ in range(10_000):
            session.received('{"type": "response.created", "response": {"id": "r"}}')
        assert len(session.pending) == realtime.MAX_PENDING
    assert len(records) == 10_000 - realtime.MAX_PENDING
    huge = '{"type": "response.output_audio.delta", "delta": "' + "A" * 100_000_000 + '"}'
    started = time.perf_counter()
    for _ in range(100):
        session.received(huge)
    assert time.perf_counter() - started < 0.5  # 100 frames of 100 MB: no copy, no parse


def test_at_a_host_not_known_as_an_llm_api_unanswered_responses_are_no_calls(simulator: Any) -> None:
    """Without llm_hosts, 127.0.0.1 is proven only by a response.done with usage: a session that drops before one
    records nothing; once proven, a dropped response is a failed call that may have been billed."""
    from websockets.exceptions import ConnectionClosed

    from tokentrace.wire import hosts

    tokentrace.uninstrument()
    hosts.forget()
    make_telemetry()
    url = f"ws://127.0.0.1:{simulator.port}/v1/realtime?model=gpt-realtime"

    def dropped() -> None:
        with connect(url) as ws:
            ws.recv()
            ws.send(json.dumps({"type": "response.create", "response": {"metadata": {"sim": "drop"}}}))
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv()

    try:
        with capture_usage() as records:
            dropped()
        assert records == []
        with capture_usage() as records:
            _raw_session(simulator, "")  # usage: the host is proven
            dropped()
        assert [r.status for r in records] == ["ok", "error"]
    finally:
        tokentrace.uninstrument()
        hosts.forget()
