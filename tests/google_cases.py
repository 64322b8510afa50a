"""The Gemini calls the suite drives (generate, stream, embed; sync and aio)."""

from __future__ import annotations

from typing import Any

from tokentrace import Usage

from .cases import MAX, Case, adrain, drain

GEMINI = "gemini-2.5-flash"


def _g_config() -> Any:
    from google.genai import types

    return types.GenerateContentConfig(max_output_tokens=MAX)


async def g_async(c: Any) -> Any:
    return await c.aio.models.generate_content(model=GEMINI, contents="one two three", config=_g_config())


async def g_astream(c: Any) -> Any:
    return await adrain(await c.aio.models.generate_content_stream(model=GEMINI, contents="one two three",
                                                                     config=_g_config()))


async def g_embed_async(c: Any) -> Any:
    return await c.aio.models.embed_content(model="gemini-embedding-001", contents="one two three")


CASES = (
    Case("google", "models.generate_content", "generate_content", GEMINI, GEMINI, Usage(input=7, output=MAX), {
        "sync": lambda c: c.models.generate_content(model=GEMINI, contents="one two three", config=_g_config()),
        "async": g_async,
        "stream": lambda c: drain(c.models.generate_content_stream(model=GEMINI, contents="one two three",
                                                                    config=_g_config())),
        "async_stream": g_astream,
    }),
    Case("google", "models.embed_content", "embeddings", "gemini-embedding-001", "gemini-embedding-001",
         Usage(input=3), {
             "sync": lambda c: c.models.embed_content(model="gemini-embedding-001", contents="one two three"),
             "async": g_embed_async,
         }),
)
