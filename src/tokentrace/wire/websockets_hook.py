"""The ``websockets`` client (sync and asyncio), which the openai SDK's realtime client and google-genai's live
client use: a connection to a realtime endpoint (``realtime.recognise``, from the handshake's URI) gets its own
``recv`` and ``send`` that hand each frame to a ``realtime.Session`` and return or send it unchanged. Any other
WebSocket connection is left as it is: it pays for nothing per frame (the hook runs once, when it is made).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import realtime

MODULES = ("websockets.sync.client", "websockets.asyncio.client")


def _address(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str | None, int | None, str]:
    """Where a connection being made goes: its protocol's URI (``wsuri`` before websockets 14)."""
    protocol = kwargs.get("protocol") or next(a for a in args if hasattr(a, "uri") or hasattr(a, "wsuri"))
    uri = getattr(protocol, "uri", None) or protocol.wsuri
    return uri.host, uri.port, uri.resource_name


def _on_init(watch: Callable[[Any, realtime.Session], None]) -> Callable[..., Any]:
    """The wrapper of a connection class's ``__init__``: a realtime session is first admitted by the budgets (a
    refusal raises before the connection exists: websockets closes the socket, no handshake is sent), then its
    connection is watched by ``watch``."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        session = realtime.session_for(lambda: _address(args, kwargs), "wire.websockets")
        if session is not None:
            session.admit_guarded()
        result = wrapped(*args, **kwargs)
        if session is not None:
            watch(instance, session)
        return result

    return wrapper


def _lost(session: realtime.Session, exc: BaseException) -> None:
    from websockets.exceptions import ConnectionClosed

    if isinstance(exc, ConnectionClosed):
        session.closed_guarded(exc)


def _watch_sync(connection: Any, session: realtime.Session) -> None:
    original_recv, original_send, original_close = connection.recv, connection.send, connection.close

    def recv(*args: Any, **kwargs: Any) -> Any:
        try:
            message = original_recv(*args, **kwargs)
        except BaseException as exc:
            _lost(session, exc)
            raise
        if session.received_guarded(message):
            original_close()
        return message

    def send(message: Any, *args: Any, **kwargs: Any) -> Any:
        session.sending_guarded(message)
        return original_send(message, *args, **kwargs)

    def close(*args: Any, **kwargs: Any) -> Any:
        session.closed_guarded()
        return original_close(*args, **kwargs)

    connection.recv, connection.send, connection.close = recv, send, close


def _watch_async(connection: Any, session: realtime.Session) -> None:
    original_recv, original_send, original_close = connection.recv, connection.send, connection.close

    async def recv(*args: Any, **kwargs: Any) -> Any:
        try:
            message = await original_recv(*args, **kwargs)
        except BaseException as exc:
            _lost(session, exc)
            raise
        if session.received_guarded(message):
            await original_close()
        return message

    async def send(message: Any, *args: Any, **kwargs: Any) -> Any:
        session.sending_guarded(message)
        return await original_send(message, *args, **kwargs)

    async def close(*args: Any, **kwargs: Any) -> Any:
        session.closed_guarded()
        return await original_close(*args, **kwargs)

    connection.recv, connection.send, connection.close = recv, send, close


PATCHES = {"websockets.sync.client": (("ClientConnection.__init__", _on_init(_watch_sync)),),
           "websockets.asyncio.client": (("ClientConnection.__init__", _on_init(_watch_async)),)}
