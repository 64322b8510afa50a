"""The metrics HTTP server: ``/metrics`` of one registry and ``/usage`` (the ledger report), from a daemon thread."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import REGISTRY, CollectorRegistry

from .._support import errors as _errors
from .usage import UsagePolicy, is_loopback

MAX_CONNECTIONS = 32
"""Connections served at once (a thread each); the next waits for a slot, further ones in the listen backlog."""
CLIENT_TIMEOUT_S = 10.0
"""Each connection has this long to send its request and read the answer."""
BACKLOG = 512


class _QuietHandler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT_S  # a client that sends nothing (or reads nothing) loses its thread after this

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the application's stderr."""


def _bounded_server_class(family: int) -> type:
    from prometheus_client.exposition import ThreadingWSGIServer

    class MetricsHTTPServer(ThreadingWSGIServer):
        """At most MAX_CONNECTIONS connections are served at once (daemon threads, as prometheus_client's); the
        next waits for a free slot, up to CLIENT_TIMEOUT_S, while further ones queue in the listen backlog."""

        address_family = family
        request_queue_size = BACKLOG
        block_on_close = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
            self._closing = False
            super().__init__(*args, **kwargs)

        def shutdown(self) -> None:
            self._closing = True  # a connection waiting for a slot gives up at once
            super().shutdown()

        def process_request(self, request: Any, client_address: Any) -> None:
            deadline = time.monotonic() + CLIENT_TIMEOUT_S
            while not self._slots.acquire(timeout=0.1):
                if time.monotonic() > deadline or self._closing:
                    self.shutdown_request(request)  # every slot held by slow clients, or closing: refuse
                    return
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                self._slots.release()

        def handle_error(self, request: Any, client_address: Any) -> None:
            """A client that vanished or timed out: nothing to report on the application's stderr."""

    return MetricsHTTPServer


def _serve(port: int, addr: str, registry: CollectorRegistry, ledger: str | os.PathLike[str] | None,
           policy: UsagePolicy) -> Any:
    from wsgiref.simple_server import make_server  # the stdlib server prometheus_client's start_http_server uses

    from prometheus_client import make_wsgi_app

    from .usage import with_usage_route

    family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
    server: Any = make_server(addr, port, with_usage_route(make_wsgi_app(registry), ledger, policy),
                              _bounded_server_class(family), handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="tokentrace-metrics-http", daemon=True).start()
    return server


class MetricsServer:
    """Serves ``/metrics`` of one registry and ``/usage`` (the ledger report) on addr:port, from a daemon thread.

    ``port`` is the port actually bound (useful with port 0). Failures to bind are logged, never raised.
    """

    def __init__(self, port: int, addr: str, registry: CollectorRegistry | None,
                 ledger: str | os.PathLike[str] | None = None, *, usage_token: str | None = None,
                 usage_by_identity: bool = False) -> None:
        self.port = port
        self.addr = addr
        self._server: Any = None
        refuse = usage_token is None and ledger is not None and not is_loopback(addr)
        if refuse:
            _errors.logger.warning("/metrics listens on %s, beyond loopback, and no usage token is set: "
                                   "GET /usage answers 403 (set usage_token= or TOKENTRACE_USAGE_TOKEN)", addr)
        policy = UsagePolicy(token=usage_token, refuse_without_token=refuse, by_identity=usage_by_identity,
                             loopback_hosts_only=usage_token is None and is_loopback(addr))
        try:
            self._server = _serve(port, addr, registry or REGISTRY, ledger, policy)
        except OSError as exc:
            _errors.logger.warning("cannot serve /metrics on %s:%s (%s); metrics are still collected",
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
