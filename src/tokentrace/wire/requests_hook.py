"""requests: ``Session.send``, where every request of ``requests.get/post`` and of a Session passes, prepared.

Without ``stream=True`` requests reads the body before ``send`` returns: it is read from ``response.content``.
With it, the caller's reads (``iter_content``, ``iter_lines``, ``content``, ``json()``) all come from
``response.raw.stream(...)``, which the instance gets measured: the same decoded bytes, in the same pieces.
Reading ``response.raw.read()`` directly is not seen (the call is recorded with usage not reported).
"""

from __future__ import annotations

import weakref
from typing import Any

from .._support import errors as _errors
from .exchange import Exchange, begin_url, feed_all, tee

MODULE = "requests"


def _begin(request: Any) -> Exchange | None:
    """A POST: an Exchange when it is an LLM call to measure."""
    return begin_url(request.url, lambda: request.body)


def _watch(exchange: Exchange, response: Any, streamed: bool) -> None:
    try:
        state = exchange.answered(response.status_code, response.headers)
        if state is None:
            return
        if not streamed or response._content_consumed:
            feed_all(state, response.content or b"")
            return
        raw = response.raw
        original = raw.stream

        def stream(*args: Any, **kwargs: Any) -> Any:
            return tee(original(*args, **kwargs), state)

        raw.stream = stream
        weakref.finalize(response, state.finish)
    except Exception as exc:
        _errors.report("wire.requests", exc, "could not watch an LLM response")
        exchange.call.stop(None)


def send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    request = args[0] if args else kwargs.get("request")
    if getattr(request, "method", None) != "POST" or (exchange := _begin(request)) is None:
        return wrapped(*args, **kwargs)
    response = exchange.run(wrapped, args, kwargs)
    _watch(exchange, response, bool(kwargs.get("stream")))
    return response


PATCHES = (("Session.send", send),)
