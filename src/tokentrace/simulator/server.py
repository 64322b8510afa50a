"""Runs the simulated provider (a Starlette app on uvicorn) in a background thread on 127.0.0.1."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from . import (
    anthropic_api,
    batches_api,
    bedrock_api,
    billing,
    cohere_api,
    gemini_api,
    media_api,
    ollama_api,
    openai_api,
    realtime_api,
)

# path suffix -> handler, most specific first; any prefix is accepted
_HANDLERS = {**media_api.HANDLERS, **anthropic_api.HANDLERS, **gemini_api.HANDLERS, **bedrock_api.HANDLERS,
             **cohere_api.HANDLERS, **ollama_api.HANDLERS, **openai_api.HANDLERS}


async def _dispatch(request: Request) -> Response:
    request.app.state.served.append(request.url.path)
    path = request.url.path.rstrip("/")
    for suffix, handler in _HANDLERS.items():
        if path.endswith(suffix):
            return await handler(request)
    return JSONResponse({"error": {"message": f"no simulated endpoint at {path}", "type": "not_found"}},
                        status_code=404)


def build_app(**defaults: Any) -> Starlette:
    """The ASGI app; ``defaults`` (latency_ms, chunk_delay_ms, error) apply when a request sends no x-sim-* header."""
    app = Starlette(routes=[*batches_api.routes(), *billing.routes(),
                            Route("/{path:path}", _dispatch, methods=["POST"]),
                            WebSocketRoute("/{path:path}", realtime_api.realtime)])
    app.state.defaults = defaults
    app.state.batches = {}  # batch id -> (its create body, when it was created)
    app.state.served = []  # the path of every request received, in order (tests: what reached the provider)
    app.state.billed = []  # the calls served to OpenAI's and Anthropic's own APIs, as their reports count them
    return app


class Simulator:
    """A local provider server speaking real wire formats, for tests and the demo. Use as a context manager."""

    def __init__(self, port: int = 0, *, tls: tuple[str, str] | None = None, **defaults: Any) -> None:
        """``tls``: (certificate file, key file) to serve HTTPS and WSS instead (a client that only speaks TLS,
        such as google-genai's live client)."""
        app = build_app(**defaults)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="critical", lifespan="off",
            access_log=False, timeout_graceful_shutdown=1,
            ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.port = port
        self.defaults: dict[str, Any] = app.state.defaults
        self.served: list[str] = app.state.served
        """The path of every HTTP request the simulator received, in order."""
        self.billed: list[billing.BilledCall] = app.state.billed
        """Every call to OpenAI's or Anthropic's own API, as their usage and cost reports count it."""
        self._grpc: Any = None

    def start(self, timeout: float = 10.0) -> Simulator:
        self._thread = threading.Thread(target=self._server.run, name="tokentrace-simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_address(self) -> str:
        """``host:port`` of the simulator's gRPC server (xAI's chat service), started on first use."""
        if self._grpc is None:
            from .xai_grpc import serve

            self._grpc = serve(self.defaults)
        return f"127.0.0.1:{self._grpc.port}"

    @contextlib.contextmanager
    def behaving(self, **defaults: Any) -> Iterator[None]:
        """Apply ``defaults`` (``error``, ``latency_ms``, ...) to every request while the block runs: for SDKs whose
        calls cannot carry an ``x-sim-*`` header (gRPC, boto3)."""
        saved = dict(self.defaults)
        self.defaults.update(defaults)
        try:
            yield
        finally:
            self.defaults.clear()
            self.defaults.update(saved)

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
