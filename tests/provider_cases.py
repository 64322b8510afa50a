"""Every measured call of every provider, in each mode its SDK offers, with the usage the simulator must produce.

Prompts are "one two three": 7 prompt tokens as one message (4 framing + 3 words), 3 as a plain string.
Max output tokens are 5, so visible output is 5 tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from tokentrace import Usage

from . import openai_cases

MESSAGES = [{"role": "user", "content": "one two three"}]
MAX = 5


class Answer(BaseModel):
    text: str
    score: int


@dataclass(frozen=True)
class Case:
    provider: str
    name: str
    operation: str
    request_model: str
    response_model: str
    usage: Usage
    runners: dict[str, Callable[[Any], Any] | Callable[[Any], Awaitable[Any]]] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}"


def _drain(stream: Any) -> list[Any]:
    return list(stream)


async def _adrain(stream: Any) -> list[Any]:
    return [item async for item in stream]


# ------------------------------------------------------------------ anthropic
CLAUDE = "claude-opus-4-6"
A_KW: dict[str, Any] = {"model": CLAUDE, "max_tokens": MAX, "messages": MESSAGES}


def a_helper_stream(c: Any) -> Any:
    with c.messages.stream(**A_KW) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.usage.output_tokens == MAX and text
    return text


async def a_helper_astream(c: Any) -> Any:
    async with c.messages.stream(**A_KW) as stream:
        events = [e async for e in stream]
        final = await stream.get_final_message()
    assert final.usage.output_tokens == MAX
    return events


def a_raw_stream(c: Any) -> Any:
    return _drain(c.messages.with_raw_response.create(**A_KW, stream=True).parse())


async def a_raw_astream(c: Any) -> Any:
    raw = await c.messages.with_raw_response.create(**A_KW, stream=True)
    return await _adrain(await raw.parse())


async def a_raw_async(c: Any) -> Any:
    raw = await c.messages.with_raw_response.create(**A_KW)
    return await raw.parse()


def a_parse(c: Any) -> Any:
    result = c.messages.parse(**A_KW, output_format=Answer)
    assert result.parsed_output == Answer(text="simulated", score=42)
    return result


async def a_parse_async(c: Any) -> Any:
    result = await c.messages.parse(**A_KW, output_format=Answer)
    assert result.parsed_output == Answer(text="simulated", score=42)
    return result


async def _acreate_stream(c: Any) -> Any:
    return await _adrain(await c.messages.create(**A_KW, stream=True))


async def _acreate(c: Any) -> Any:
    return await c.messages.create(**A_KW)


async def _beta_acreate(c: Any) -> Any:
    return await c.beta.messages.create(**A_KW)


ANTHROPIC_USAGE = Usage(input=7, output=MAX)
ANTHROPIC = (
    Case("anthropic", "messages.create", "chat", CLAUDE, CLAUDE, ANTHROPIC_USAGE, {
        "sync": lambda c: c.messages.create(**A_KW),
        "async": _acreate,
        "stream": lambda c: _drain(c.messages.create(**A_KW, stream=True)),
        "async_stream": _acreate_stream,
    }),
    Case("anthropic", "messages.stream helper + parse", "chat", CLAUDE, CLAUDE, ANTHROPIC_USAGE, {
        "sync": a_parse, "async": a_parse_async, "stream": a_helper_stream, "async_stream": a_helper_astream,
    }),
    Case("anthropic", "messages.with_raw_response", "chat", CLAUDE, CLAUDE, ANTHROPIC_USAGE, {
        "sync": lambda c: c.messages.with_raw_response.create(**A_KW).parse(),
        "async": a_raw_async, "stream": a_raw_stream, "async_stream": a_raw_astream,
    }),
    Case("anthropic", "beta.messages", "chat", CLAUDE, CLAUDE, ANTHROPIC_USAGE, {
        "sync": lambda c: c.beta.messages.create(**A_KW),
        "async": _beta_acreate,
    }),
)

# ------------------------------------------------------------------ google
GEMINI = "gemini-2.5-flash"


def _g_config() -> Any:
    from google.genai import types

    return types.GenerateContentConfig(max_output_tokens=MAX)


async def g_async(c: Any) -> Any:
    return await c.aio.models.generate_content(model=GEMINI, contents="one two three", config=_g_config())


async def g_astream(c: Any) -> Any:
    return await _adrain(await c.aio.models.generate_content_stream(model=GEMINI, contents="one two three",
                                                                     config=_g_config()))


async def g_embed_async(c: Any) -> Any:
    return await c.aio.models.embed_content(model="gemini-embedding-001", contents="one two three")


GOOGLE = (
    Case("google", "models.generate_content", "generate_content", GEMINI, GEMINI, Usage(input=7, output=MAX), {
        "sync": lambda c: c.models.generate_content(model=GEMINI, contents="one two three", config=_g_config()),
        "async": g_async,
        "stream": lambda c: _drain(c.models.generate_content_stream(model=GEMINI, contents="one two three",
                                                                    config=_g_config())),
        "async_stream": g_astream,
    }),
    Case("google", "models.embed_content", "embeddings", "gemini-embedding-001", "gemini-embedding-001",
         Usage(input=3), {
             "sync": lambda c: c.models.embed_content(model="gemini-embedding-001", contents="one two three"),
             "async": g_embed_async,
         }),
)

# ------------------------------------------------------------------ openai (from openai_cases)
OPENAI = tuple(
    Case("openai", c.name, c.operation, c.request_model, c.response_model, c.usage, dict(c.runners))
    for c in openai_cases.CASES
)

CASES = OPENAI + ANTHROPIC + GOOGLE
MODES = ("sync", "async", "stream", "async_stream")
MATRIX = [(case, mode) for case in CASES for mode in MODES if mode in case.runners]


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
        from google import genai
        from google.genai import types

        client = genai.Client(api_key="AIza-test-secret-key", http_options=types.HttpOptions(base_url=sim.url))
        try:
            yield client
        finally:
            client.close()


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
        from google import genai
        from google.genai import types

        client = genai.Client(api_key="AIza-test-secret-key", http_options=types.HttpOptions(base_url=sim.url))
        try:
            yield client
        finally:
            await client.aio.aclose()
            client.close()
