"""aiohttp: ``ClientSession._request``, the coroutine behind ``session.post``/``request`` and their context managers.

aiohttp reads a body only when the caller does, always through ``response.content`` (``read()``, ``json()`` and
``text()`` too): the response gets a measured view of that stream whose every read returns exactly what the
stream returned, each piece also fed to the call's reader.
"""

from __future__ import annotations

import weakref
from typing import Any

import wrapt

from .._support import errors as _errors
from ..instrumentation.wrappers import _StreamState
from .exchange import Exchange, begin, seen

MODULE = "aiohttp"


def _target(instance: Any, str_or_url: Any) -> tuple[str, int | None, str]:
    from yarl import URL

    url = URL(str_or_url) if not isinstance(str_or_url, URL) else str_or_url
    base = getattr(instance, "_base_url", None)
    if not url.is_absolute() and base is not None:
        url = base.join(url)
    return (url.host or "").lower(), url.port, url.path


def _body(kwargs: dict[str, Any]) -> Any:
    body = kwargs.get("json")
    return body if body is not None else kwargs.get("data")


class MeasuredContent(wrapt.ObjectProxy[Any]):
    """A response's ``StreamReader`` whose reads are also fed to the call's reader; the call ends at EOF."""

    def __init__(self, wrapped: Any, state: _StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state

    def _self_seen(self, data: bytes) -> bytes:
        if data:
            seen(self._self_state, data)
        if not data or self.__wrapped__.at_eof():
            self._self_state.finish()
        return data

    async def _self_read(self, method: str, *args: Any) -> bytes:
        try:
            data = await getattr(self.__wrapped__, method)(*args)
        except BaseException as exc:
            self._self_state.finish(exc)
            raise
        return self._self_seen(data)

    async def read(self, n: int = -1) -> bytes:
        return await self._self_read("read", n)

    async def readany(self) -> bytes:
        return await self._self_read("readany")

    async def readline(self) -> bytes:
        return await self._self_read("readline")

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        return await self._self_read("readuntil", separator)

    async def readexactly(self, n: int) -> bytes:
        return await self._self_read("readexactly", n)

    async def readchunk(self) -> tuple[bytes, bool]:
        try:
            data, end_of_chunk = await self.__wrapped__.readchunk()
        except BaseException as exc:
            self._self_state.finish(exc)
            raise
        self._self_seen(data)
        return data, end_of_chunk

    def read_nowait(self, n: int = -1) -> bytes:
        return self._self_seen(self.__wrapped__.read_nowait(n))

    def iter_chunked(self, n: int) -> Any:
        return _Pieces(lambda: self.read(n))

    def iter_any(self) -> Any:
        return _Pieces(self.readany)

    def iter_chunks(self) -> Any:
        return _Pieces(self.readchunk, lambda piece: piece == (b"", False))

    def __aiter__(self) -> Any:
        return _Pieces(self.readline)


class _Pieces:
    """aiohttp's stream iterators, over the measured reads: ends at an empty piece."""

    def __init__(self, read: Any, empty: Any = lambda piece: piece == b"") -> None:
        self.read = read
        self.empty = empty

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> Any:
        piece = await self.read()
        if self.empty(piece):
            raise StopAsyncIteration
        return piece


def _watch(exchange: Exchange, response: Any) -> None:
    try:
        state = exchange.answered(response.status, response.headers)
        if state is None:
            return
        response.content = MeasuredContent(response.content, state)
        weakref.finalize(response, state.finish)  # released unread, or abandoned: end the call on GC
    except Exception as exc:
        _errors.report("wire.aiohttp", exc, "could not watch an LLM response")
        exchange.call.stop(None)


async def request(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    method = args[0] if args else kwargs.get("method")
    exchange = None
    if isinstance(method, str) and method.upper() == "POST":
        try:
            host, port, path = _target(instance, args[1] if len(args) > 1 else kwargs.get("str_or_url"))
        except Exception as exc:
            _errors.report("wire.aiohttp", exc, "could not read a request's URL")
        else:
            exchange = begin("POST", host, port, path, lambda: _body(kwargs))
    if exchange is None:
        return await wrapped(*args, **kwargs)
    response = await exchange.run_async(wrapped, args, kwargs)
    _watch(exchange, response)
    return response


PATCHES = (("ClientSession._request", request),)
