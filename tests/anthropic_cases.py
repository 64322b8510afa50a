"""The Anthropic calls the suite drives (Messages API: create, stream, helper, parse, raw, beta)."""

from __future__ import annotations

from typing import Any

from tokentrace import Usage

from .cases import MAX, MESSAGES, Answer, Case, adrain, drain

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
    return drain(c.messages.with_raw_response.create(**A_KW, stream=True).parse())


async def a_raw_astream(c: Any) -> Any:
    raw = await c.messages.with_raw_response.create(**A_KW, stream=True)
    return await adrain(await raw.parse())


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
    return await adrain(await c.messages.create(**A_KW, stream=True))


async def _acreate(c: Any) -> Any:
    return await c.messages.create(**A_KW)


async def _beta_acreate(c: Any) -> Any:
    return await c.beta.messages.create(**A_KW)


ANTHROPIC_USAGE = Usage(input=7, output=MAX)
CASES = (
    Case("anthropic", "messages.create", "chat", CLAUDE, CLAUDE, ANTHROPIC_USAGE, {
        "sync": lambda c: c.messages.create(**A_KW),
        "async": _acreate,
        "stream": lambda c: drain(c.messages.create(**A_KW, stream=True)),
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
