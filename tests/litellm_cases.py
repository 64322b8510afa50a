"""LiteLLM against the simulator: its provider prefixes, the redirect below tokentrace's hooks, and LiteLLM's own
usage figures. Used by tests/test_litellm.py and benchmarks/wire_matrix.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MESSAGES = [{"role": "user", "content": "one two three"}]
AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION_NAME": "us-east-1"}

PROVIDERS = [  # LiteLLM model, the provider tokentrace attributes it to
    ("openai/gpt-4o-mini", "openai"),
    ("anthropic/claude-haiku-4-5", "anthropic"),
    ("gemini/gemini-2.5-flash", "google"),
    ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", "bedrock"),
    ("bedrock/converse/anthropic.claude-3-haiku-20240307-v1:0", "bedrock"),
    ("groq/llama-3.1-8b-instant", "groq"),
    ("mistral/mistral-small-latest", "mistral"),
    ("deepseek/deepseek-chat", "deepseek"),
    ("xai/grok-3-mini", "xai"),
    ("openrouter/openai/gpt-4o-mini", "openrouter"),
]


def send_to_simulator(port: int, setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Every request of the httpx / httpx2 transports (and LiteLLM's aiohttp transport, where installed) goes to the
    simulator on ``port``, whatever host the client named: below tokentrace's hooks, which still see the real host."""
    import contextlib
    import importlib

    import httpx

    def rewrite(request: Any) -> None:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)

    def sync_wrapper(original: Any) -> Any:
        def handle(self: Any, request: Any) -> Any:
            rewrite(request)
            return original(self, request)

        return handle

    def async_wrapper(original: Any) -> Any:
        async def handle(self: Any, request: Any) -> Any:
            rewrite(request)
            return await original(self, request)

        return handle

    modules = [httpx]
    with contextlib.suppress(ImportError):  # a venv with the frameworks' pins only
        modules.append(importlib.import_module("httpx2"))
    for module in modules:
        setattr_(module.HTTPTransport, "handle_request", sync_wrapper(module.HTTPTransport.handle_request))
        setattr_(module.AsyncHTTPTransport, "handle_async_request",
                 async_wrapper(module.AsyncHTTPTransport.handle_async_request))
    try:
        from litellm.llms.custom_httpx.aiohttp_transport import LiteLLMAiohttpTransport
    except ImportError:
        return
    setattr_(LiteLLMAiohttpTransport, "handle_async_request",
             async_wrapper(LiteLLMAiohttpTransport.handle_async_request))


def options(stream: bool) -> dict[str, Any]:
    return {"api_key": "sk-test", "max_tokens": 5, "stream": stream,
            **({"stream_options": {"include_usage": True}} if stream else {})}


def litellm_total(response: Any, stream: bool) -> int:
    """What LiteLLM itself says the call used (its final chunk's usage for a stream)."""
    usage = getattr(list(response)[-1], "usage", None) if stream else response.usage
    return int(usage.prompt_tokens + usage.completion_tokens)


async def alitellm_total(response: Any, stream: bool) -> int:
    if stream:
        chunks = [chunk async for chunk in response]
        usage = getattr(chunks[-1], "usage", None)
    else:
        usage = response.usage
    return int(usage.prompt_tokens + usage.completion_tokens)
