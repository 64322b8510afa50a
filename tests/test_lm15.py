"""lm15's own HTTP transports (DSPy 3.4's default engine, vendored as ``dspy._vendor.lm15``) against the simulator
over real sockets: every call counted once with the usage on the wire, and lm15's own result (text, events, the
usage it reports) equal to the uninstrumented run's (issue 40, item 4)."""

from __future__ import annotations

import asyncio
from typing import Any

import lm15
import pytest

from tokentrace.testing import capture_usage

from .conftest import make_telemetry


def _request(model: str) -> Any:
    return lm15.Request(model=model, messages=(lm15.Message.user("count the tokens of this"),))


def _usage(usage: Any) -> tuple[int, int, int]:
    return usage.input_tokens, usage.output_tokens, usage.total_tokens


def _run(sim: Any) -> list[tuple[Any, ...]]:
    """The calls of a DSPy-style program: complete and stream, OpenAI-format and Anthropic, sync and async."""
    openai_lm = lm15.OpenAIChatLM(api_key="sk-test", base_url=sim.url + "/v1")
    anthropic_lm = lm15.AnthropicLM(api_key="sk-ant-test", base_url=sim.url + "/v1")
    done = openai_lm.complete(_request("gpt-4o-mini"))
    events = list(openai_lm.stream(_request("gpt-4o-mini")))
    claude = anthropic_lm.complete(_request("claude-haiku-4-5"))
    claude_events = list(anthropic_lm.stream(_request("claude-haiku-4-5")))

    async def run_async() -> Any:
        return await lm15.AsyncOpenAIChatLM(api_key="sk-test", base_url=sim.url + "/v1").complete(
            _request("gpt-4o-mini"))

    async_done = asyncio.run(run_async())
    return [("complete", done.text, _usage(done.usage)),
            ("stream", [e.type for e in events], _usage(events[-1].usage)),
            ("anthropic", claude.text, _usage(claude.usage)),
            ("anthropic-stream", [e.type for e in claude_events], _usage(claude_events[-1].usage)),
            ("async", async_done.text, _usage(async_done.usage))]


def test_lm15_calls_are_counted_once_with_the_usage_on_the_wire(simulator: Any) -> None:
    uninstrumented = _run(simulator)
    make_telemetry()
    served = len(simulator.served)
    with capture_usage() as records:
        instrumented = _run(simulator)
    assert instrumented == uninstrumented  # lm15 read the same answers
    assert len(records) == len(simulator.served) - served == 5
    assert [r.usage.total for r in records] == [total for *_, (_, _, total) in instrumented]
    assert [(r.provider, r.stream, r.status) for r in records] == [
        ("openai_compatible", False, "ok"), ("openai_compatible", True, "ok"), ("anthropic", False, "ok"),
        ("anthropic", True, "ok"), ("openai_compatible", False, "ok")]


def test_a_refused_lm15_call_never_leaves(simulator: Any) -> None:
    """A block budget refuses lm15's request before a byte leaves, once its host has answered like an LLM API (the
    simulator is on 127.0.0.1, a host no provider is known at)."""
    import tokentrace

    make_telemetry(budgets=[tokentrace.Budget("none-left", limit_usd=1e-12, action="block")])
    lm = lm15.AnthropicLM(api_key="sk-ant-test", base_url=simulator.url + "/v1")
    with capture_usage() as records:
        lm.complete(_request("claude-haiku-4-5"))  # the host proves itself an LLM API
        served = len(simulator.served)
        with pytest.raises(tokentrace.BudgetExceeded):
            lm.complete(_request("claude-haiku-4-5"))
    assert len(simulator.served) == served and [r.status for r in records] == ["ok", "blocked"]
