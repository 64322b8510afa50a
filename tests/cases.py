"""What every provider's cases share: the prompt, the case record, stream draining and real SDK clients.

Prompts are "one two three": 7 prompt tokens as one message (4 framing + 3 words), 3 as a plain string.
Max output tokens are 5, so visible output is 5 tokens. The cases of each provider live in
``<provider>_cases.py``; ``test_provider_suite.py`` runs them all in every mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from tokentrace import Usage

MESSAGES = [{"role": "user", "content": "one two three"}]  # 4 framing + 3 words = 7 prompt tokens
MAX = 5
MODES = ("sync", "async", "stream", "async_stream")


class Answer(BaseModel):
    text: str
    score: int


Runner = Callable[[Any], Any] | Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class Case:
    """One measured call: the SDK method, what the simulator must report for it, and a runner per mode."""

    provider: str
    name: str
    operation: str
    request_model: str
    response_model: str
    usage: Usage
    runners: dict[str, Runner] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}"


def drain(stream: Any) -> list[Any]:
    return list(stream)


async def adrain(stream: Any) -> list[Any]:
    return [item async for item in stream]


# ------------------------------------------------------------------ clients
@contextlib.contextmanager
def sync_client(provider: str, sim: Any) -> Iterator[Any]:
    """A real SDK client of ``provider``'s own SDK, sending to the simulator (over HTTP, or gRPC for xai)."""
    from .conftest import openai_client

    if provider == "openai":
        with openai_client(sim) as client:
            yield client
    elif provider == "anthropic":
        import anthropic

        with anthropic.Anthropic(api_key="sk-ant-test-secret-key", base_url=sim.url, max_retries=0) as client:
            yield client
    elif provider == "google":
        client = _genai_client(sim)
        try:
            yield client
        finally:
            client.close()
    else:
        client = _MORE_SYNC[provider](sim)
        try:
            yield client
        finally:
            _close(client)


def _genai_client(sim: Any) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(api_key="AIza-test-secret-key", http_options=types.HttpOptions(base_url=sim.url))


def _httpx(sim: Any, is_async: bool) -> Any:
    import httpx

    from tokentrace.simulator import async_client as to_sim_async
    from tokentrace.simulator import sync_client as to_sim

    return (to_sim_async if is_async else to_sim)(sim.port, httpx_module=httpx)


def _groq(sim: Any, is_async: bool = False) -> Any:
    import groq

    cls = groq.AsyncGroq if is_async else groq.Groq
    return cls(api_key="gsk-test-secret-key", http_client=_httpx(sim, is_async), max_retries=0)


def _mistral(sim: Any, is_async: bool = False) -> Any:
    from mistralai.client import Mistral

    transport = {"async_client": _httpx(sim, True)} if is_async else {"client": _httpx(sim, False)}
    return Mistral(api_key="mistral-test-secret-key", server_url="https://api.mistral.ai", **transport)


def _cohere(sim: Any, is_async: bool = False) -> Any:
    import cohere

    cls = cohere.AsyncClientV2 if is_async else cohere.ClientV2
    return cls(api_key="co-test-secret-key", base_url="https://api.cohere.com", httpx_client=_httpx(sim, is_async))


def _ollama(sim: Any, is_async: bool = False) -> Any:
    import ollama

    return (ollama.AsyncClient if is_async else ollama.Client)(host=sim.url)


def bedrock_client(sim: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=sim.url,
                        aws_access_key_id="AKIATESTSECRETKEY", aws_secret_access_key="aws-test-secret-key",
                        config=Config(retries={"total_max_attempts": 1}))


def _xai(sim: Any, is_async: bool = False) -> Any:
    import xai_sdk

    cls = xai_sdk.AsyncClient if is_async else xai_sdk.Client
    return cls(api_key="xai-test-secret-key", api_host=sim.grpc_address, use_insecure_channel=True)


_MORE_SYNC: dict[str, Callable[[Any], Any]] = {"groq": _groq, "mistral": _mistral, "cohere": _cohere,
                                               "ollama": _ollama, "bedrock": bedrock_client, "xai": _xai}
_MORE_ASYNC: dict[str, Callable[[Any], Any]] = {
    "groq": lambda sim: _groq(sim, True), "mistral": lambda sim: _mistral(sim, True),
    "cohere": lambda sim: _cohere(sim, True), "ollama": lambda sim: _ollama(sim, True),
    "xai": lambda sim: _xai(sim, True)}


def _close(client: Any) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        close()


@contextlib.asynccontextmanager
async def async_client(provider: str, sim: Any) -> AsyncIterator[Any]:
    from .conftest import openai_async_client

    if provider == "openai":
        async with openai_async_client(sim) as client:
            yield client
    elif provider == "anthropic":
        import anthropic

        async with anthropic.AsyncAnthropic(api_key="sk-ant-test-secret-key", base_url=sim.url,
                                            max_retries=0) as client:
            yield client
    elif provider == "google":
        client = _genai_client(sim)
        try:
            yield client
        finally:
            await client.aio.aclose()
            client.close()
    else:
        client = _MORE_ASYNC[provider](sim)
        try:
            yield client
        finally:
            for name in ("aclose", "close"):
                close = getattr(client, name, None)
                if callable(close):
                    result = close()
                    if hasattr(result, "__await__"):
                        await result
                    break
