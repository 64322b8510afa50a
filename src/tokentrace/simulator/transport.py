"""HTTP transports that send requests for real provider hosts (api.openai.com, api.x.ai, ...) to the simulator.

The SDK keeps its real base_url, so provider attribution works as in production; the Host header still names
the provider, which lets the simulator answer in that provider's flavour.
"""

from __future__ import annotations

from typing import Any


def _rewrite(request: Any, port: int) -> None:
    request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)


def sync_client(port: int, httpx_module: Any = None, **kwargs: Any) -> Any:
    """An httpx2 (or httpx) Client whose every request goes to the simulator on ``port``."""
    if httpx_module is None:
        import httpx2 as httpx_module

    class _ToSimulator(httpx_module.HTTPTransport):  # type: ignore[misc]
        def handle_request(self, request: Any) -> Any:
            _rewrite(request, port)
            return super().handle_request(request)

    return httpx_module.Client(transport=_ToSimulator(), **kwargs)


def async_client(port: int, httpx_module: Any = None, **kwargs: Any) -> Any:
    """The async twin of ``sync_client``."""
    if httpx_module is None:
        import httpx2 as httpx_module

    class _ToSimulator(httpx_module.AsyncHTTPTransport):  # type: ignore[misc]
        async def handle_async_request(self, request: Any) -> Any:
            _rewrite(request, port)
            return await super().handle_async_request(request)

    return httpx_module.AsyncClient(transport=_ToSimulator(), **kwargs)
