"""The metrics HTTP server: ``/metrics`` of one registry and ``/usage`` (the ledger report), from a daemon thread."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import REGISTRY, CollectorRegistry

from . import _errors


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the application's stderr."""


def _serve(port: int, addr: str, registry: CollectorRegistry, ledger: str | os.PathLike[str] | None) -> Any:
    from wsgiref.simple_server import make_server  # the stdlib server prometheus_client's start_http_server uses

    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    from .usage_http import with_usage_route

    family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
    server_class = type("MetricsHTTPServer", (ThreadingWSGIServer,), {"address_family": family})
    server: Any = make_server(addr, port, with_usage_route(make_wsgi_app(registry), ledger), server_class,
                              handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="tokentrace-metrics-http", daemon=True).start()
    return server


class MetricsServer:
    """Serves ``/metrics`` of one registry and ``/usage`` (the ledger report) on addr:port, from a daemon thread.

    ``port`` is the port actually bound (useful with port 0). Failures to bind are logged, never raised.
    """

    def __init__(self, port: int, addr: str, registry: CollectorRegistry | None,
                 ledger: str | os.PathLike[str] | None = None) -> None:
        self.port = port
        self.addr = addr
        self._server: Any = None
        try:
            self._server = _serve(port, addr, registry or REGISTRY, ledger)
        except OSError as exc:
            _errors.logger.warning("tokentrace: cannot serve /metrics on %s:%s (%s); metrics are still collected",
                                   addr, port, exc.strerror or exc)
            return
        self.port = int(self._server.server_port)

    @property
    def running(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
