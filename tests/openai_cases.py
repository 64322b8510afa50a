"""The OpenAI calls the suite drives, each with its expected usage, in every mode the SDK offers."""

from __future__ import annotations

from typing import Any

from tokentrace import Usage

from .cases import MAX, MESSAGES, Answer, Case, adrain, drain


# ---- chat.completions.create
def chat_sync(c: Any) -> Any:
    return c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX)


async def chat_async(c: Any) -> Any:
    return await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX)


def chat_stream(c: Any) -> Any:
    return drain(c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX, stream=True))


async def chat_astream(c: Any) -> Any:
    return await adrain(await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX,
                                                         stream=True))


# ---- chat.completions.parse and the .stream() helper
def parse_sync(c: Any) -> Any:
    return c.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX, response_format=Answer)


async def parse_async(c: Any) -> Any:
    return await c.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX,
                                          response_format=Answer)


def helper_stream(c: Any) -> Any:
    with c.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX,
                                   response_format=Answer) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Answer(text="simulated", score=42)
    return events


async def helper_astream(c: Any) -> Any:
    async with c.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX,
                                         response_format=Answer) as stream:
        events = [e async for e in stream]
        final = await stream.get_final_completion()
    assert final.choices[0].message.parsed == Answer(text="simulated", score=42)
    return events


# ---- with_raw_response
def raw_sync(c: Any) -> Any:
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX)
    assert raw.headers.get("content-type", "").startswith("application/json")
    return raw.parse()


async def raw_async(c: Any) -> Any:
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX)
    return raw.parse()


def raw_stream(c: Any) -> Any:
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX,
                                                      stream=True)
    return drain(raw.parse())


async def raw_astream(c: Any) -> Any:
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES,
                                                            max_tokens=MAX, stream=True)
    return await adrain(raw.parse())


# ---- responses
def responses_sync(c: Any) -> Any:
    return c.responses.create(model="gpt-4o-mini", input="one two three", max_output_tokens=MAX)


async def responses_async(c: Any) -> Any:
    return await c.responses.create(model="gpt-4o-mini", input="one two three", max_output_tokens=MAX)


def responses_stream(c: Any) -> Any:
    return drain(c.responses.create(model="gpt-4o-mini", input="one two three", max_output_tokens=MAX, stream=True))


async def responses_astream(c: Any) -> Any:
    return await adrain(await c.responses.create(model="gpt-4o-mini", input="one two three",
                                                  max_output_tokens=MAX, stream=True))


def responses_helper_stream(c: Any) -> Any:
    with c.responses.stream(model="gpt-4o-mini", input="one two three", max_output_tokens=MAX) as stream:
        events = list(stream)
        assert stream.get_final_response().output_text
    return events


async def responses_helper_astream(c: Any) -> Any:
    async with c.responses.stream(model="gpt-4o-mini", input="one two three", max_output_tokens=MAX) as stream:
        events = [e async for e in stream]
        assert (await stream.get_final_response()).output_text
    return events


def responses_parse_sync(c: Any) -> Any:
    result = c.responses.parse(model="gpt-4o-mini", input="one two three", max_output_tokens=MAX, text_format=Answer)
    assert result.output_parsed == Answer(text="simulated", score=42)
    return result


async def responses_parse_async(c: Any) -> Any:
    result = await c.responses.parse(model="gpt-4o-mini", input="one two three", max_output_tokens=MAX,
                                     text_format=Answer)
    assert result.output_parsed == Answer(text="simulated", score=42)
    return result


# ---- legacy completions
def completions_sync(c: Any) -> Any:
    return c.completions.create(model="gpt-3.5-turbo-instruct", prompt="one two three", max_tokens=MAX)


async def completions_async(c: Any) -> Any:
    return await c.completions.create(model="gpt-3.5-turbo-instruct", prompt="one two three", max_tokens=MAX)


def completions_stream(c: Any) -> Any:
    return drain(c.completions.create(model="gpt-3.5-turbo-instruct", prompt="one two three", max_tokens=MAX,
                                       stream=True))


async def completions_astream(c: Any) -> Any:
    return await adrain(await c.completions.create(model="gpt-3.5-turbo-instruct", prompt="one two three",
                                                    max_tokens=MAX, stream=True))


# ---- embeddings
def embeddings_sync(c: Any) -> Any:
    return c.embeddings.create(model="text-embedding-3-small", input="one two three")


async def embeddings_async(c: Any) -> Any:
    return await c.embeddings.create(model="text-embedding-3-small", input="one two three")


CHAT_USAGE = Usage(input=7, output=MAX)
RESPONSES_USAGE = Usage(input=3, output=MAX)

CASES = (
    Case("openai", "chat.completions.create", "chat", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", CHAT_USAGE,
         {"sync": chat_sync, "async": chat_async, "stream": chat_stream, "async_stream": chat_astream}),
    Case("openai", "chat.completions.parse+stream", "chat", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", CHAT_USAGE,
         {"sync": parse_sync, "async": parse_async, "stream": helper_stream, "async_stream": helper_astream}),
    Case("openai", "chat.completions.with_raw_response", "chat", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", CHAT_USAGE,
         {"sync": raw_sync, "async": raw_async, "stream": raw_stream, "async_stream": raw_astream}),
    Case("openai", "responses.create", "chat", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", RESPONSES_USAGE,
         {"sync": responses_sync, "async": responses_async, "stream": responses_stream,
          "async_stream": responses_astream}),
    Case("openai", "responses.parse+stream", "chat", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", RESPONSES_USAGE,
         {"sync": responses_parse_sync, "async": responses_parse_async, "stream": responses_helper_stream,
          "async_stream": responses_helper_astream}),
    Case("openai", "completions.create", "text_completion", "gpt-3.5-turbo-instruct", "gpt-3.5-turbo-instruct",
         Usage(input=3, output=MAX),
         {"sync": completions_sync, "async": completions_async, "stream": completions_stream,
          "async_stream": completions_astream}),
    Case("openai", "embeddings.create", "embeddings", "text-embedding-3-small", "text-embedding-3-small",
         Usage(input=3),
         {"sync": embeddings_sync, "async": embeddings_async}),
)
