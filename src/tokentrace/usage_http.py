"""``GET /usage``: the ledger report as JSON over HTTP, for the metrics server (WSGI) and for web apps (ASGI).

Query parameters are the CLI's: ``since``, ``from``, ``to``, ``by``. The body is exactly what ``tokentrace report
--format json`` prints; a bad parameter (or no ledger yet) answers 400 with one line of text. Reads only; the
report runs off the event loop in the ASGI app.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from . import _errors

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PARAMETERS = ("since", "from", "to", "by")


def usage_response(query: str, ledger: str | os.PathLike[str] | None) -> tuple[int, str, bytes]:
    """(HTTP status, content type, body) of ``GET /usage?{query}`` over ``ledger``."""
    from .reports import HTTP_NAMES, ReportError, report

    try:
        values = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=16)
    except ValueError as exc:
        return 400, "text/plain; charset=utf-8", f"bad query string: {exc}\n".encode()
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        return 400, "text/plain; charset=utf-8", (f"unknown parameter {unknown[0]!r}; use "
                                                  f"{', '.join(PARAMETERS)}\n").encode()
    one = {name: values[name][-1] for name in values}
    try:
        data = report(since=one.get("since") or "7d", by=one.get("by") or "feature", ledger=ledger,
                      start=one.get("from") or None, end=one.get("to") or None)
    except ReportError as exc:
        return 400, "text/plain; charset=utf-8", f"{exc.worded(HTTP_NAMES)}\n".encode()
    except Exception as exc:  # never a traceback to the client, never a dead server
        _errors.report("http.usage", exc, "cannot answer GET /usage")
        return 500, "text/plain; charset=utf-8", b"cannot read the ledger\n"
    return 200, "application/json", json.dumps(data, indent=2).encode() + b"\n"


def _relative_path(path: str, root_path: str) -> str:
    return path[len(root_path):] if root_path and path.startswith(root_path) else path


def usage_app(ledger: str | os.PathLike[str] | None = None) -> ASGIApp:
    """An ASGI app answering ``GET /usage`` (also ``/`` when mounted at a prefix) with the report as JSON."""
    import asyncio

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if _relative_path(scope.get("path", ""), scope.get("root_path", "")) not in ("", "/", "/usage"):
            status, kind, body = 404, "text/plain; charset=utf-8", b"not found; GET /usage\n"
        elif scope.get("method") not in ("GET", "HEAD"):
            status, kind, body = 405, "text/plain; charset=utf-8", b"only GET\n"
        else:
            query = scope.get("query_string", b"").decode("latin-1")
            status, kind, body = await asyncio.to_thread(usage_response, query, ledger)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})

    return app


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def with_usage_route(metrics: WSGIApp, ledger: str | os.PathLike[str] | None) -> WSGIApp:
    """A WSGI app serving ``/usage`` from ``ledger`` (404 when there is none) and everything else from ``metrics``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/usage":
            return metrics(environ, start_response)
        if ledger is None:
            status, kind, body = 404, "text/plain; charset=utf-8", b"no ledger: instrument() was given ledger=False\n"
        else:
            status, kind, body = usage_response(environ.get("QUERY_STRING", ""), ledger)
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Internal Server Error")
        start_response(f"{status} {reason}", [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]

    return app
