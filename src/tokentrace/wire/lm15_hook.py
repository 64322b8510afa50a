"""lm15's own HTTP/1.1 transports (DSPy 3.4's default engine vendors them as ``dspy._vendor.lm15``; ``lm15`` on
PyPI): ``StdlibTransport.stream`` and ``StdlibAsyncTransport._do_stream``, where each of its requests passes.

lm15 speaks HTTP over bare sockets, below none of the other hooked clients. A request is a ``TransportRequest``
(method, URL, header pairs, body bytes); the response's body is the iterator ``_chunks``, which every read
(iteration, ``read``, ``iter_lines``) drains: the instance gets it measured, the same bytes in the same pieces.
"""

from __future__ import annotations

import weakref
from typing import Any

from .._support import errors as _errors
from .exchange import Exchange, atee, begin_url, tee

_PACKAGES = ("dspy._vendor.lm15.transports", "lm15.transports")


def _begin(request: Any) -> Exchange | None:
    if getattr(request, "method", None) != "POST":
        return None
    return begin_url(getattr(request, "url", None), lambda: request.body)


def _watch(exchange: Exchange, response: Any, is_async: bool) -> None:
    try:
        headers = {str(name).lower(): value for name, value in response.headers}
        state = exchange.answered(response.status, headers)
        if state is None:
            return
        response._chunks = (atee if is_async else tee)(response._chunks, state)
        weakref.finalize(response, state.finish)  # never read: the call ends with the response
    except Exception as exc:
        _errors.report("wire.lm15", exc, "could not watch an LLM response")
        exchange.call.stop(None)


def sync_stream(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    exchange = _begin(args[0] if args else kwargs.get("request"))
    if exchange is None:
        return wrapped(*args, **kwargs)
    response = exchange.run(wrapped, args, kwargs)
    _watch(exchange, response, False)
    return response


async def async_stream(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    exchange = _begin(args[0] if args else kwargs.get("request"))
    if exchange is None:
        return await wrapped(*args, **kwargs)
    response = await exchange.run_async(wrapped, args, kwargs)
    _watch(exchange, response, True)
    return response


PATCHES: dict[str, tuple[tuple[str, Any], ...]] = {
    **{f"{package}._sync": (("StdlibTransport.stream", sync_stream),) for package in _PACKAGES},
    **{f"{package}._async": (("StdlibAsyncTransport._do_stream", async_stream),) for package in _PACKAGES},
}
"""Module -> (``Class.method``, wrapper)."""
