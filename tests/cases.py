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
    from .conftest import openai_client

    if provider == "openai":
        with openai_client(sim) as client:
            yield client
    elif provider == "anthropic":
        import anthropic

        with anthropic.Anthropic(api_key="sk-ant-test-secret-key", base_url=sim.url, max_retries=0) as client:
            yield client
    else:
        client = _genai_client(sim)
        try:
            yield client
        finally:
            client.close()


def _genai_client(sim: Any) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(api_key="AIza-test-secret-key", http_options=types.HttpOptions(base_url=sim.url))


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
    else:
        client = _genai_client(sim)
        try:
            yield client
        finally:
            await client.aio.aclose()
            client.close()
