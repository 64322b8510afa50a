"""The ``websockets`` client (sync and asyncio), which the openai SDK's realtime client and google-genai's live
client use: a connection to a realtime endpoint (``realtime.recognise``, from the handshake's URI) gets its own
``recv`` and ``send`` that hand each frame to a ``realtime.Session`` and return or send it unchanged. Any other
WebSocket connection is left as it is: it pays for nothing per frame (the hook runs once, when it is made).
"""

from __future__ import annotations

from typing import Any

from .._support import errors as _errors
from . import realtime
from .exchange import switch

MODULES = ("websockets.sync.client", "websockets.asyncio.client")


def _session_of(connection: Any) -> realtime.Session | None:
    """The realtime session of a connection just made, or None (not a realtime endpoint, or not instrumented)."""
    if not switch.on:
        return None
    try:
        protocol = connection.protocol
        uri = getattr(protocol, "uri", None) or protocol.wsuri  # ``wsuri`` before websockets 14
        found = realtime.recognise(uri.host, uri.port, uri.resource_name)
        if found is None:
            return None
        return realtime.Session(found[0], found[1], uri.host, uri.port, found[2])
    except Exception as exc:
        _errors.report("wire.websockets", exc, "could not look at a WebSocket connection")
        return None


def sync_init(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = wrapped(*args, **kwargs)
    session = _session_of(instance)
    if session is not None:
        _watch_sync(instance, session)
    return result


def async_init(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = wrapped(*args, **kwargs)
    session = _session_of(instance)
    if session is not None:
        _watch_async(instance, session)
    return result


def _closed(session: realtime.Session, exc: BaseException) -> None:
    from websockets.exceptions import ConnectionClosed

    if isinstance(exc, ConnectionClosed):
        try:
            session.closed(exc)
        except Exception as error:
            _errors.report("wire.realtime", error, "could not record a realtime session's end")


def _ended(session: realtime.Session) -> None:
    """The app closes the connection: what is still in flight ends with it."""
    if session.pending:
        try:
            session.closed(ConnectionAbortedError("the realtime connection was closed with a response in flight"))
        except Exception as error:
            _errors.report("wire.realtime", error, "could not record a realtime session's end")


def _look(session: realtime.Session, message: Any) -> None:
    try:
        session.received(message)
    except Exception as exc:
        _errors.report("wire.realtime", exc, "could not read a realtime event")


def _watch_sync(connection: Any, session: realtime.Session) -> None:
    original_recv, original_send = connection.recv, connection.send

    def recv(*args: Any, **kwargs: Any) -> Any:
        try:
            message = original_recv(*args, **kwargs)
        except BaseException as exc:
            _closed(session, exc)
            raise
        _look(session, message)
        if session.refused:  # TOKENTRACE_REALTIME_CLOSE_ON_BUDGET: the frame is the app's, the session ends (what
            session.refused = False  # was already received still reaches the app and is counted)
            original_close()
        return message

    def send(message: Any, *args: Any, **kwargs: Any) -> Any:
        _admit(session, message)
        return original_send(message, *args, **kwargs)

    def close(*args: Any, **kwargs: Any) -> Any:
        _ended(session)
        return original_close(*args, **kwargs)

    original_close = connection.close
    connection.recv, connection.send, connection.close = recv, send, close


def _watch_async(connection: Any, session: realtime.Session) -> None:
    original_recv, original_send = connection.recv, connection.send

    async def recv(*args: Any, **kwargs: Any) -> Any:
        try:
            message = await original_recv(*args, **kwargs)
        except BaseException as exc:
            _closed(session, exc)
            raise
        _look(session, message)
        if session.refused:
            session.refused = False
            await original_close()
        return message

    async def send(message: Any, *args: Any, **kwargs: Any) -> Any:
        _admit(session, message)
        return await original_send(message, *args, **kwargs)

    async def close(*args: Any, **kwargs: Any) -> Any:
        _ended(session)
        return await original_close(*args, **kwargs)

    original_close = connection.close
    connection.recv, connection.send, connection.close = recv, send, close


def _admit(session: realtime.Session, message: Any) -> None:
    """A budget's refusal (CallRefused) goes to the caller before anything is sent; any other failure is ours."""
    from ..budgets.refusal import CallRefused

    if not isinstance(message, (str, bytes)):
        return
    try:
        session.sending(message)
    except CallRefused:
        raise
    except Exception as exc:
        _errors.report("wire.realtime", exc, "could not look at a realtime client event")


PATCHES = {"websockets.sync.client": (("ClientConnection.__init__", sync_init),),
           "websockets.asyncio.client": (("ClientConnection.__init__", async_init),)}
