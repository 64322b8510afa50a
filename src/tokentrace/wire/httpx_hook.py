"""httpx (and httpx2, the fork the newest provider SDKs use): ``Client.send`` and ``AsyncClient.send``.

``send`` is where every request of a client passes, built and final (``get``, ``post``, ``stream`` and the SDKs all
end there). A response the client read before returning is read from its content; a streamed one is read as the
caller reads it, through the instance's ``iter_bytes`` / ``aiter_bytes`` (which ``read``, ``iter_text`` and
``iter_lines`` use too): the same decoded bytes, in the same pieces. ``iter_raw`` bypasses decoding and is not
read (the call is then recorded with usage not reported).
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

from .._support import errors as _errors
from ..instrumentation.wrappers import _inside, _StreamState
from ..providers import stream_usage
from . import stream_options
from .exchange import DEFAULT_PORTS, Exchange, atee, begin, feed_all, tee
from .routes import may_be_llm

MODULES = ("httpx", "httpx2")


def _begin(request: Any) -> Exchange | None:
    """A POST: an Exchange when it is an LLM call to measure."""
    try:
        url = request.url
        try:
            raw_path = url._uri_reference.path  # the path as sent, unparsed (``url.path`` decodes it on every read)
        except AttributeError:
            raw_path = url.path
    except Exception as exc:  # not an httpx request as we know it: sent untouched
        _errors.report("wire.httpx", exc, "could not read a request's URL")
        return None
    if not may_be_llm(raw_path):
        return None
    return begin("POST", url.host, url.port or DEFAULT_PORTS.get(url.scheme), url.path, lambda: _content(request),
                 can_ask=True)


def _sdk_sending(inside: Any) -> bool:
    """The SDK layer's request is going out (``exchange.begin`` says the same for the other hooks): from now on its
    failure is a failed call. Whether the SDK layer asked it for usage (then a 400 naming ``stream_options`` gets it
    sent once more without)."""
    if inside is True:
        return False
    inside.sent = True
    return bool(getattr(inside, "asked_usage", False))


def _content(request: Any) -> bytes | dict[str, Any] | None:
    """The body's bytes when the request holds them (not a generator, an async generator or a file); a multipart
    upload's plain fields (``model``, ``response_format``, ...) read from httpx's own list of them, no file read."""
    if hasattr(request, "_content"):
        return request.content  # type: ignore[no-any-return]
    fields = getattr(request.stream, "fields", None)
    if isinstance(fields, list):
        return {field.name: field.value if isinstance(field.value, str) else field.value.decode("utf-8", "replace")
                for field in fields if isinstance(getattr(field, "value", None), (str, bytes))}
    return None


def _asking(request: Any, exchange: Exchange) -> Any:
    """The request to send: with ``stream_options.include_usage`` added when the exchange asks (else as it is)."""
    if not exchange.asked_usage:
        return request
    try:
        body = stream_options.ask(request.content) if hasattr(request, "_content") else None  # not a streamed body
        if body is not None:
            return _with_body(request, body)
    except Exception as exc:
        _errors.report("wire.httpx", exc, "could not ask a stream for usage")
    exchange.asked_usage = False
    return request


def _with_body(request: Any, body: bytes) -> Any:
    headers = request.headers.copy()
    headers.pop("Content-Length", None)  # set again for the new body
    return type(request)(request.method, request.url, headers=headers, content=body, extensions=request.extensions)


def _marker(exchange: Exchange | None) -> Any:
    """Who asked this request for stream usage (the wire exchange, or the SDK layer's ``Measuring``), or None."""
    asker = exchange if exchange is not None else _inside.get()
    return asker if getattr(asker, "asked_usage", False) else None


def _retry_without_option(response: Any, request: Any, asker: Any, host: str) -> Any:
    """After a 400 whose body was read: the request to send again when the host rejected the option, else None.
    (``host`` as the caller addressed it: a transport may rewrite the request's URL in place.)"""
    if not stream_options.rejects_option(response.status_code, response.content) or not hasattr(request, "_content"):
        return None
    asker.asked_usage = False
    stream_usage.refused(host)
    return _with_body(request, stream_options.unask(request.content))


def _send(wrapped: Any, request: Any, rest: tuple[Any, ...], kwargs: dict[str, Any], asker: Any) -> Any:
    host = request.url.host if asker is not None else ""
    response = wrapped(request, *rest, **kwargs)
    if asker is not None and response.status_code == 400:
        response.read()
        retry = _retry_without_option(response, request, asker, host)
        if retry is not None:
            response.close()
            return wrapped(retry, *rest, **kwargs)
    return response


async def _send_async(wrapped: Any, request: Any, rest: tuple[Any, ...], kwargs: dict[str, Any], asker: Any
                      ) -> Any:
    host = request.url.host if asker is not None else ""
    response = await wrapped(request, *rest, **kwargs)
    if asker is not None and response.status_code == 400:
        await response.aread()
        retry = _retry_without_option(response, request, asker, host)
        if retry is not None:
            await response.aclose()
            return await wrapped(retry, *rest, **kwargs)
    return response


def _watch(exchange: Exchange, response: Any, is_async: bool) -> None:
    try:
        state = exchange.answered(response.status_code, response.headers)
        if state is None:
            return
        host = exchange.prepared.request.server_address
        hidden = stream_options.UsageHidden(not stream_usage.null_usage_unasked(host)) if exchange.asked_usage else None
        if hasattr(response, "_content"):  # read before send() returned
            feed_all(state, response._content)
            if hidden is not None:
                response._content = hidden.feed(response._content) + hidden.end()
            return
        name = "aiter_bytes" if is_async else "iter_bytes"
        original = getattr(response, name)
        setattr(response, name, functools.partial(_async_reading if is_async else _reading, original, state, hidden))
        weakref.finalize(response, state.finish)  # never read, or abandoned half-way: end the call on GC
    except Exception as exc:
        _errors.report("wire.httpx", exc, "could not watch an LLM response")
        exchange.call.stop(None)


def _reading(original: Any, state: _StreamState, hidden: stream_options.UsageHidden | None,
             chunk_size: int | None = None) -> Any:
    chunks = tee(original(chunk_size), state)
    return chunks if hidden is None else stream_options.hide(chunks, hidden)


def _async_reading(original: Any, state: _StreamState, hidden: stream_options.UsageHidden | None,
                   chunk_size: int | None = None) -> Any:
    chunks = atee(original(chunk_size), state)
    return chunks if hidden is None else stream_options.ahide(chunks, hidden)


def sync_send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    request: Any = args[0] if args else kwargs.get("request")
    if getattr(request, "method", None) != "POST":  # a GET: one comparison
        return wrapped(*args, **kwargs)
    inside = _inside.get()
    if inside:  # a patched SDK method measures this call: its URL is never parsed here
        if not _sdk_sending(inside):  # not asked for usage by the SDK layer: nothing to do on the wire
            return wrapped(*args, **kwargs)
        return _send(wrapped, request, *_rest(args, kwargs), inside)
    exchange = _begin(request)
    if exchange is None:
        return wrapped(*args, **kwargs)
    response = exchange.run(_send, (wrapped, _asking(request, exchange), *_rest(args, kwargs), _marker(exchange)),
                            {})
    _watch(exchange, response, False)
    return response


async def async_send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    request: Any = args[0] if args else kwargs.get("request")
    if getattr(request, "method", None) != "POST":
        return await wrapped(*args, **kwargs)
    inside = _inside.get()
    if inside:
        if not _sdk_sending(inside):
            return await wrapped(*args, **kwargs)
        return await _send_async(wrapped, request, *_rest(args, kwargs), inside)
    exchange = _begin(request)
    if exchange is None:
        return await wrapped(*args, **kwargs)
    response = await exchange.run_async(_send_async, (wrapped, _asking(request, exchange), *_rest(args, kwargs),
                                                      _marker(exchange)), {})
    _watch(exchange, response, True)
    return response


def _rest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``send``'s arguments but the request (sent as the first positional argument)."""
    return args[1:], {name: value for name, value in kwargs.items() if name != "request"}


PATCHES = (("Client.send", sync_send), ("AsyncClient.send", async_send))
"""(attribute of each module in MODULES, wrapper)."""
