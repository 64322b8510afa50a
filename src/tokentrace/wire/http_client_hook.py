"""The standard library's ``http.client`` (and so ``urllib.request``): ``HTTPConnection.request`` and
``HTTPConnection.getresponse``.

A request is one ``request(method, url, body, headers)`` call, its answer the next ``getresponse()`` on the same
connection: the exchange begun by the first is kept on the connection for the second. The caller's reads of the
``HTTPResponse`` (``read``, ``read1``, ``readinto``, ``readline`` and so iteration, ``peek`` reads nothing) are
measured on the instance: the same bytes, in the same pieces. urllib3 (under requests and botocore) sends with its
own ``request`` and never calls this one, so what requests measures is not measured here again.
"""

from __future__ import annotations

import weakref
import zlib
from typing import Any
from urllib.parse import urlsplit

from .._support import errors as _errors
from ..instrumentation.wrappers import _StreamState
from .exchange import Exchange, begin, seen
from .routes import may_be_llm

MODULE = "http.client"
_EXCHANGE = "_tokentrace_exchange"


def _begin(connection: Any, method: Any, url: Any, body: Any) -> Exchange | None:
    if method != "POST" or not isinstance(url, str):
        return None
    path = url.partition("?")[0]
    if "://" in path:  # an absolute URL (a request through a proxy)
        path = urlsplit(path).path
    if not may_be_llm(path):
        return None
    host = getattr(connection, "_tunnel_host", None) or getattr(connection, "host", "")
    port = getattr(connection, "_tunnel_port", None) or getattr(connection, "port", None)
    return begin("POST", str(host).lower(), port, path,
                 body if isinstance(body, (bytes, bytearray, str)) else None)


def request(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    method = args[0] if args else kwargs.get("method")
    url = args[1] if len(args) > 1 else kwargs.get("url")
    body = args[2] if len(args) > 2 else kwargs.get("body")
    exchange = _begin(instance, method, url, body)
    if exchange is None:
        return wrapped(*args, **kwargs)
    result = exchange.run(wrapped, args, kwargs)
    exchange.sending_done()  # sent: the answer comes with getresponse(), which ends the call's sending
    try:
        setattr(instance, _EXCHANGE, exchange)
    except Exception as exc:  # a connection class with __slots__: the answer is not read
        _errors.report("wire.http_client", exc, "could not keep an LLM request for its answer")
        exchange.call.stop(None)
    return result


def getresponse(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    exchange = instance.__dict__.pop(_EXCHANGE, None) if hasattr(instance, "__dict__") else None
    if exchange is None:
        return wrapped(*args, **kwargs)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        exchange.failed(exc)
        raise
    _watch(exchange, response)
    return response


def _watch(exchange: Exchange, response: Any) -> None:
    try:
        headers = {str(name).lower(): value for name, value in response.getheaders()}
        state = exchange.answered(response.status, headers)
        if state is None:
            return
        reading = _Reading(state, headers.get("content-encoding"))
        for name in ("read", "read1", "readline"):
            setattr(response, name, _reader(getattr(response, name), reading))
        response.readinto = _reader(response.readinto, reading, into=True)
        weakref.finalize(response, state.finish)  # never read to the end: the call ends with the response
    except Exception as exc:
        _errors.report("wire.http_client", exc, "could not watch an LLM response")
        exchange.call.stop(None)


class _Reading:
    """One response's reads: what the caller read goes to the call (decoded first when the body is gzip or deflate:
    http.client passes it on as sent), once; an empty read, or a whole ``read()``, ends the body."""

    __slots__ = ("busy", "decoder", "state")

    def __init__(self, state: _StreamState, encoding: str | None) -> None:
        self.state = state
        self.busy = False
        """Inside a read: a read it makes of its own (an older http.client's read(amt) calls readinto) counts once."""
        coding = (encoding or "").strip().lower()
        self.decoder = zlib.decompressobj(wbits=47 if coding in ("gzip", "x-gzip") else 15) \
            if coding in ("gzip", "x-gzip", "deflate") else None

    def seen(self, data: bytes, whole: bool) -> None:
        if data:
            try:
                seen(self.state, self.decoder.decompress(data) if self.decoder is not None else data)
            except zlib.error as exc:
                _errors.report("wire.http_client", exc, "could not decode a compressed LLM response")
                self.decoder = None
        if whole or not data:
            self.state.finish()


def _reader(original: Any, reading: _Reading, into: bool = False) -> Any:
    """``original`` (a read method, or ``readinto`` when ``into``) with what it returns seen by the call."""
    whole_read = original.__name__ == "read"

    def read(*args: Any, **kwargs: Any) -> Any:
        if reading.busy:
            return original(*args, **kwargs)
        reading.busy = True
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            reading.state.finish(exc)
            raise
        finally:
            reading.busy = False
        if into:  # readinto: the bytes are in the caller's buffer, ``result`` how many
            reading.seen(bytes(memoryview(args[0])[:result]) if result else b"", whole=False)
        else:
            reading.seen(result, whole=whole_read and not args and not kwargs)
        return result

    return read


PATCHES = (("HTTPConnection.request", request), ("HTTPConnection.getresponse", getresponse))
