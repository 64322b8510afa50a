"""aiohttp's WebSocket client (``ClientSession.ws_connect``): a connection to a realtime endpoint
(``realtime.recognise``, from the URL it connected to) gets its own ``receive`` (which ``receive_str``,
``receive_json`` and ``async for`` go through) and ``send_str`` / ``send_bytes`` (``send_json`` goes through
``send_str``), handing each frame to a ``realtime.Session`` and returning or sending it unchanged (and closing the
connection where ``TOKENTRACE_REALTIME_CLOSE_ON_BUDGET`` says so, as the ``websockets`` hook does). Other WebSocket
connections are left as they are.
"""

from __future__ import annotations

from typing import Any

from . import realtime


def _address(url: Any) -> tuple[str | None, int | None, str]:
    from yarl import URL

    target = URL(str(url))
    return target.host, target.port, target.raw_path_qs


async def ws_connect(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    session = realtime.session_for(lambda: _address(args[0] if args else kwargs.get("url")), "wire.aiohttp")
    if session is not None:
        session.admit_guarded()  # a refusal raises before anything is sent
    connection = await wrapped(*args, **kwargs)
    if session is not None:
        _watch(connection, session)
    return connection


def _watch(connection: Any, session: realtime.Session) -> None:
    from aiohttp import WSMsgType

    original_receive, original_close = connection.receive, connection.close
    original_send_str, original_send_bytes = connection.send_str, connection.send_bytes
    closing = (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)

    async def receive(*args: Any, **kwargs: Any) -> Any:
        message = await original_receive(*args, **kwargs)
        kind = message.type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if session.received_guarded(message.data):
                await original_close()
        elif kind in closing:
            session.closed_guarded()
        return message

    async def send_str(data: str, *args: Any, **kwargs: Any) -> Any:
        session.sending_guarded(data)
        return await original_send_str(data, *args, **kwargs)

    async def send_bytes(data: bytes, *args: Any, **kwargs: Any) -> Any:
        session.sending_guarded(data)
        return await original_send_bytes(data, *args, **kwargs)

    async def close(*args: Any, **kwargs: Any) -> Any:
        session.closed_guarded()
        return await original_close(*args, **kwargs)

    connection.receive, connection.close = receive, close
    connection.send_str, connection.send_bytes = send_str, send_bytes


PATCHES = (("ClientSession._ws_connect", ws_connect),)
