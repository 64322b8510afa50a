"""One LLM call seen on the wire, from the request about to be sent to the last byte the caller reads.

The client adapters (``httpx_hook``, ``requests_hook``, ``aiohttp_hook``) only translate their library's request
and response into ``begin`` / ``Exchange``; everything else (exactly-once, budgets, reading usage as the caller
reads the body, recording once) is here, written once. The caller's bytes are never altered or held back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from .._registry import HF_ROUTER, router_backend
from .._support import errors as _errors
from .._usage import RequestInfo, ResponseInfo
from ..budgets.refusal import counted_only
from ..instrumentation.wrappers import _inside, _StreamState, active
from ..providers import Options, Prepared, StreamAccumulator, stream_usage
from ..recorder import Call
from . import formats, framing, hosts
from .routes import Route, may_be_llm, recognise

MAX_JSON_BODY = 16 * 1024 * 1024
"""A JSON answer larger than this is passed on untouched but not read (usage not reported, counted)."""

class _Switch:
    """Whether the wire layer measures at all (``instrument(http=...)``); a plain attribute read per request."""

    on: bool = False


switch = _Switch()


DEFAULT_PORTS = {"https": 443, "http": 80}
"""``server.port`` when a URL names none (the SDK layer reports the scheme's port too)."""


def begin(method: str, host: str, port: int | None, path: str, body: Any, can_ask: bool = False) -> Exchange | None:
    """An Exchange when this request is an LLM call the wire layer measures, else None (send it untouched).

    ``body``: the request's JSON object, its bytes, or a callable returning either (read only for LLM requests).
    ``can_ask``: the adapter can add ``stream_options`` to the request and hide what it causes (``asked_usage``).
    Raises what a block budget raises (``BudgetExceeded``): the request must then not be sent."""
    if not switch.on:
        return None
    inside = _inside.get()
    if inside:  # a patched SDK method is measuring this call (first: no route is worked out for it)
        if inside is not True:
            inside.sent = True  # the SDK's request is going out: its failure from now on is a failed call
        return None
    if method != "POST":
        return None
    try:
        route = recognise(method, host, path)
        if route is None:
            return None
        recorder = active.recorder
        if recorder is None:  # uninstrumented
            return None
        request_json = _json_of(body)
        proving = None if hosts.trusted(host) else host
        if proving is not None and not hosts.is_llm_request(route, request_json):
            return None  # the app's own API on a path an LLM API uses too: passed on untouched, never counted
        if route.generic and not (isinstance(request_json, Mapping) and isinstance(request_json.get("model"), str)):
            return None  # an /api/chat or /v2/chat without a model: not an LLM API request
        try:
            prepared = formats.prepare(route, request_json, host or None, port, _options())
            if host == HF_ROUTER:  # the router's path names the backend whose prices apply
                prepared = prepared._replace(request=prepared.request._replace(priced_at=router_backend(
                    host, path, prepared.request.request_model)))
        except Exception as exc:
            _errors.report("wire.request", exc, "could not read an LLM request on the wire")
            prepared = Prepared(RequestInfo(route.provider, "chat", "", False, host or None, port), {})
    except Exception as exc:  # an odd request object: it goes out unmeasured, never broken
        _errors.report("wire.request", exc, "could not look at an HTTP request")
        return None
    asks = can_ask and _asks_usage(route, prepared, request_json)
    if proving is None:
        return Exchange(route, prepared, Call(recorder, prepared.request), None, asks)  # Call() may refuse (a budget)
    token = counted_only.set(True)  # a host not yet seen to answer like an LLM API: never refused
    try:
        return Exchange(route, prepared, Call(recorder, prepared.request), proving, asks)
    finally:
        counted_only.reset(token)


def _asks_usage(route: Route, prepared: Prepared, request_json: Any) -> bool:
    """Add ``stream_options.include_usage`` to this request (an OpenAI-format stream whose caller did not ask, to a
    host that takes the option and sends no usage unasked)?"""
    try:
        return (route.format == "openai" and route.api in ("chat", "completions") and prepared.request.stream
                and active.options.stream_usage and isinstance(request_json, Mapping)
                and not stream_usage.caller_asked(request_json)
                and stream_usage.should_ask(prepared.request.provider, prepared.request.server_address))
    except Exception as exc:
        _errors.report("wire.request", exc, "could not decide whether to ask a stream for usage")
        return False


def begin_url(url: Any, body: Any) -> Exchange | None:
    """``begin`` for a POST to an absolute URL given as text (requests, lm15): no parsing unless its path may be an
    LLM API's."""
    if not isinstance(url, str) or not may_be_llm(url.partition("?")[0]):
        return None
    parts = urlsplit(url)
    return begin("POST", (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(parts.scheme), parts.path,
                 body)


_wire_options: tuple[Options, Options] | None = None


def _options() -> Options:
    """The SDK layer's options, except that the wire layer never changes a request (no ``stream_options``)."""
    global _wire_options
    options = active.options
    cached = _wire_options
    if cached is None or cached[0] is not options:
        cached = _wire_options = (options, Options(stream_usage=False, measure_prompt=options.measure_prompt,
                                                   capture_content=options.capture_content))
    return cached[1]


def _json_of(body: Any) -> Any:
    """The request's JSON object; None for a body that is not one, is not in memory (a generator, a file) or is
    larger than MAX_JSON_BODY (an upload: not parsed on the caller's time)."""
    if callable(body):
        body = body()
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        if not body or len(body) > MAX_JSON_BODY:
            return None
        try:
            return json.loads(bytes(body) if isinstance(body, memoryview) else body)
        except ValueError:
            return None
    return body if isinstance(body, Mapping) else None


class Exchange:
    """The measured call of one request; the adapter reports its outcome exactly once."""

    __slots__ = ("asked_usage", "call", "prepared", "proving", "route", "token")

    def __init__(self, route: Route, prepared: Prepared, call: Call, proving: str | None = None,
                 asked_usage: bool = False) -> None:
        self.asked_usage = asked_usage
        """The adapter adds ``stream_options.include_usage`` to the request and hides what it causes from the
        caller (``stream_options``); False again if the host rejected it."""
        self.route = route
        self.prepared = prepared
        self.call = call
        self.token: Any = None
        self.proving = proving
        """The host, while it has not answered an LLM request like an LLM API (``hosts``); else None."""

    def sending(self) -> None:
        """The request goes out now: clients below (and SDKs above) must not measure it again."""
        self.token = _inside.set(True)

    def run(self, send: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Send the request with the client's own method; what it raises is recorded and raised unchanged."""
        self.sending()
        try:
            return send(*args, **kwargs)
        except BaseException as exc:
            self.failed(exc)
            raise

    async def run_async(self, send: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``run`` for a coroutine method."""
        self.sending()
        try:
            return await send(*args, **kwargs)
        except BaseException as exc:
            self.failed(exc)
            raise

    def sending_done(self) -> None:
        """The request's bytes are out, the answer not yet asked for (``http.client``): leave the sending context."""
        if self.token is not None:
            _inside.reset(self.token)
            self.token = None

    def sent(self) -> None:
        """The client returned (or raised) on the calling thread."""
        self.sending_done()
        self.call.detach()

    def failed(self, exc: BaseException) -> None:
        """Sending raised ``exc`` (connection refused, timeout, ...): the caller gets it as it was."""
        self.sent()
        if self.proving is not None:
            self.call.discard()  # nothing says the host is an LLM API: no record
        else:
            self.call.fail(exc)

    def answered(self, status: int, headers: Mapping[str, str]) -> _StreamState | None:
        """The response's status line and headers arrived; returns the state the body's bytes are fed to, or None
        when the body need not be read (an HTTP error: recorded now, as the SDKs record their error)."""
        self.sent()
        if status >= 400:
            if self.proving is not None:
                self.call.discard()  # the app's own error, or an LLM host's: unproven either way, no record
            else:
                self.call.fail(HTTPStatusError(status), error_type=str(status))  # semconv: the status code
            return None
        try:
            reader = BodyReader(self.route, self.prepared, headers, self.call if self.proving else None,
                                self.proving)
        except Exception as exc:
            _errors.report("wire.response", exc, "could not start reading an LLM response")
            self.call.stop(None)
            return None
        state = _StreamState(self.call, reader)
        state.waiting_first = self.prepared.request.stream  # time to first token: streams only, as the SDK layer
        return state


class HTTPStatusError(Exception):
    """An LLM request answered with an HTTP error status: recorded with ``error.type`` = the status code."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _content_type(headers: Mapping[str, str]) -> str:
    try:
        return str(headers.get("content-type") or headers.get("Content-Type") or "").lower()
    except Exception:
        return ""


class BodyReader(StreamAccumulator):
    """Reads a response body as the caller reads it: stream payloads go to the provider's accumulator one by one;
    a JSON answer is kept (up to MAX_JSON_BODY) and read once it is complete. ``feed`` never raises."""

    __slots__ = ("accumulator", "framing", "headers", "parts", "prepared", "proving", "route", "shape", "size",
                 "unproven_call")

    def __init__(self, route: Route, prepared: Prepared, headers: Mapping[str, str], unproven_call: Call | None = None,
                 proving: str | None = None) -> None:
        self.unproven_call = unproven_call
        self.proving = proving
        self.route = route
        self.prepared = prepared
        self.headers = headers
        self.parts: list[bytes] | None = None
        self.size = 0
        self.accumulator: StreamAccumulator | None = None
        self.shape: Any = None
        kind = _content_type(headers)
        if "amazon.eventstream" in kind:
            self.framing: Any = framing.EventStream()
        elif "event-stream" in kind:
            self.framing = framing.SSE()
        elif "ndjson" in kind:
            self.framing = framing.NDJSON()
        else:
            self.framing = None  # decided by the first bytes: a server may lie about its content type

    def _start_stream(self) -> None:
        self.accumulator, self.shape = formats.accumulator(self.route, self.prepared)

    def feed(self, data: bytes) -> None:
        if self.route.api == "speech":  # audio bytes: nothing in them is read (the call is billed by its input)
            return
        try:
            if self.framing is None and self.parts is None:
                self._sniff(data)
            if self.framing is not None:
                if self.accumulator is None:
                    self._start_stream()
                self._payloads(self.framing.feed(data))
            elif self.parts is not None:
                self.size += len(data)
                if self.size <= MAX_JSON_BODY:
                    self.parts.append(bytes(data))
                elif self.parts:
                    _errors.report("wire.body", None, "an LLM response body is larger than 16 MiB; not read")
                    self.parts = []
        except Exception as exc:
            _errors.report("wire.body", exc, "could not read part of an LLM response")

    def _sniff(self, data: bytes) -> None:
        start = bytes(data[:16]).lstrip()
        if not start:
            return
        if start.startswith((b"data:", b"event:", b":")):
            self.framing = framing.SSE()
        elif self.route.format == "ollama" and self.prepared.request.stream:
            self.framing = framing.NDJSON()
        else:
            self.parts = []

    def _payloads(self, payloads: list[Any]) -> None:
        accumulator, shape = self.accumulator, self.shape
        assert accumulator is not None
        for payload in payloads:
            accumulator.chunk(shape(payload))

    def chunk(self, item: Any) -> bool:
        return False

    def result(self) -> ResponseInfo:
        response = self._result()
        if self.proving is not None:  # a host not yet proven: an LLM answer proves it, anything else is no call
            if response.usage is not None or (response.response_id and response.response_model):
                hosts.prove(self.proving)
            elif self.unproven_call is not None:
                self.unproven_call.discard()
        return response

    def _result(self) -> ResponseInfo:
        if self.route.api == "speech":
            return formats.extract(self.route, self.prepared, None, self.headers)
        if self.framing is not None:
            if self.accumulator is None:
                self._start_stream()
            self._payloads(self.framing.end())
            assert self.accumulator is not None
            return self.accumulator.result()
        if not self.parts or self.size > MAX_JSON_BODY:
            return ResponseInfo()
        value = framing.loads(b"".join(self.parts))
        if value is None:
            return ResponseInfo()
        if isinstance(value, list) and self.prepared.request.stream:  # a stream sent as one JSON array (Gemini's
            self._start_stream()                                       # streamGenerateContent without alt=sse)
            self._payloads(value)
            assert self.accumulator is not None
            return self.accumulator.result()
        return formats.extract(self.route, self.prepared, value, self.headers)


def feed_all(state: _StreamState, content: bytes) -> None:
    """A body already read whole (a client that reads before returning): feed it and record the call."""
    if content:
        reader = state.accumulator
        assert isinstance(reader, BodyReader)
        if reader.framing is None and content[:1] == b"{" and len(content) <= MAX_JSON_BODY:
            reader.parts, reader.size = [content], len(content)  # a JSON answer: read once, no sniffing or copying
        else:
            seen(state, content)
    state.finish()


def seen(state: _StreamState, data: bytes) -> None:
    """The caller read ``data``: the first piece of a stream marks the first token; every piece goes to the reader.
    Never raises."""
    if state.waiting_first:
        state.first_chunk()
    state.accumulator.feed(data)  # type: ignore[attr-defined]


def tee(chunks: Iterable[bytes], state: _StreamState) -> Iterator[bytes]:
    """The caller's chunks, unchanged and unbuffered, each also fed to the call's reader; the call is recorded when
    they end, fail, or the caller stops reading (closes the generator)."""
    try:
        for chunk in chunks:
            seen(state, chunk)
            yield chunk
    except GeneratorExit:
        state.finish()  # the caller stopped reading (closed the response): what was read is recorded
        raise
    except BaseException as exc:
        state.finish(exc)
        raise
    state.finish()


async def atee(chunks: AsyncIterable[bytes], state: _StreamState) -> AsyncIterator[bytes]:
    """The async twin of ``tee``."""
    try:
        async for chunk in chunks:
            seen(state, chunk)
            yield chunk
    except GeneratorExit:
        state.finish()
        raise
    except BaseException as exc:
        state.finish(exc)
        raise
    state.finish()
