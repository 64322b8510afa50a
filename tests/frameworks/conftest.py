"""The framework suite's set-up: every HTTP request the frameworks make goes to the simulator, below tokentrace's
hooks (which still see the real host: ``api.openai.com``, ``api.anthropic.com``), so the simulator bills each call as
the provider would; the frameworks' own telemetry is off (no surprise network calls)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from ..litellm_cases import send_to_simulator

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")


@pytest.fixture
def to_simulator(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-secret-key")
    monkeypatch.setenv("GEMINI_API_KEY", "gm-test-secret-key")
    monkeypatch.setenv("GOOGLE_API_KEY", "gm-test-secret-key")
    send_to_simulator(simulator.port, monkeypatch.setattr)
    _lm15_to(simulator.url, monkeypatch)
    _aiohttp_to(simulator.url, monkeypatch)
    yield simulator


def _aiohttp_to(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp (google-genai's async transport when it is installed): a provider host's URL to the simulator."""
    try:
        import aiohttp
    except ImportError:
        return
    original = aiohttp.ClientSession._request

    async def request(self: Any, method: str, str_or_url: Any, *args: Any, **kwargs: Any) -> Any:
        target = str(str_or_url)
        for origin in ("https://generativelanguage.googleapis.com", "https://api.openai.com",
                       "https://api.anthropic.com"):
            if target.startswith(origin):
                str_or_url = url + target[len(origin):]
        return await original(self, method, str_or_url, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", request)


def _lm15_to(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """lm15's own transports (DSPy's engine) connect where the request's URL says: point it at the simulator."""
    import importlib

    for package in ("dspy._vendor.lm15.transports", "lm15.transports"):
        try:
            sync_module = importlib.import_module(package + "._sync")
            async_module = importlib.import_module(package + "._async")
        except ImportError:
            continue

        def redirect(request: Any) -> None:
            for origin in ("https://api.openai.com", "https://api.anthropic.com"):
                if request.url.startswith(origin):
                    request.url = url + request.url[len(origin):]
                    if not any(name.lower() == "host" for name, _ in request.headers):
                        request.headers = [*request.headers, ("Host", origin.removeprefix("https://"))]

        def sync_stream(original: Any) -> Any:
            def stream(self: Any, request: Any) -> Any:
                redirect(request)
                return original(self, request)

            return stream

        def async_stream(original: Any) -> Any:
            async def stream(self: Any, request: Any) -> Any:
                redirect(request)
                return await original(self, request)

            return stream

        monkeypatch.setattr(sync_module.StdlibTransport, "stream", sync_stream(sync_module.StdlibTransport.stream))
        monkeypatch.setattr(async_module.StdlibAsyncTransport, "_do_stream",
                            async_stream(async_module.StdlibAsyncTransport._do_stream))
