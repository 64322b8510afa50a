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
from ..instrumentation.wrappers import _StreamState
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
    return begin("POST", url.host, url.port or DEFAULT_PORTS.get(url.scheme), url.path, lambda: request.content)


def _watch(exchange: Exchange, response: Any, is_async: bool) -> None:
    try:
        state = exchange.answered(response.status_code, response.headers)
        if state is None:
            return
        if hasattr(response, "_content"):  # read before send() returned
            feed_all(state, response._content)
            return
        name = "aiter_bytes" if is_async else "iter_bytes"
        original = getattr(response, name)
        setattr(response, name, functools.partial(_async_reading if is_async else _reading, original, state))
        weakref.finalize(response, state.finish)  # never read, or abandoned half-way: end the call on GC
    except Exception as exc:
        _errors.report("wire.httpx", exc, "could not watch an LLM response")
        exchange.call.stop(None)


def _reading(original: Any, state: _StreamState, chunk_size: int | None = None) -> Any:
    return tee(original(chunk_size), state)


def _async_reading(original: Any, state: _StreamState, chunk_size: int | None = None) -> Any:
    return atee(original(chunk_size), state)


def sync_send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    request: Any = args[0] if args else kwargs.get("request")
    if getattr(request, "method", None) != "POST" or (exchange := _begin(request)) is None:  # a GET: one comparison
        return wrapped(*args, **kwargs)
    response = exchange.run(wrapped, args, kwargs)
    _watch(exchange, response, False)
    return response


async def async_send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    request: Any = args[0] if args else kwargs.get("request")
    if getattr(request, "method", None) != "POST" or (exchange := _begin(request)) is None:
        return await wrapped(*args, **kwargs)
    response = await exchange.run_async(wrapped, args, kwargs)
    _watch(exchange, response, True)
    return response


PATCHES = (("Client.send", sync_send), ("AsyncClient.send", async_send))
"""(attribute of each module in MODULES, wrapper)."""
