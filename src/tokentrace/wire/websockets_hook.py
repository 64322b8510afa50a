"""The ``websockets`` client (sync and asyncio), which the openai SDK's realtime client and google-genai's live
client use: a connection to a realtime endpoint (``realtime.recognise``, from the handshake's URI) gets its own
``recv`` and ``send`` that hand each frame to a ``realtime.Session`` and return or send it unchanged. Any other
WebSocket connection is left as it is: it pays for nothing per frame (the hook runs once, when it is made).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._support import errors as _errors
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
            _admit_session(session)
        result = wrapped(*args, **kwargs)
        if session is not None:
            watch(instance, session)
        return result

    return wrapper


def _admit_session(session: realtime.Session) -> None:
    from ..budgets.refusal import CallRefused

    try:
        session.admit()
    except CallRefused:
        raise
    except Exception as exc:
        _errors.report("wire.realtime", exc, "could not check a realtime session against the budgets")


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


PATCHES = {"websockets.sync.client": (("ClientConnection.__init__", _on_init(_watch_sync)),),
           "websockets.asyncio.client": (("ClientConnection.__init__", _on_init(_watch_async)),)}
