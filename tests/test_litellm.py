"""LiteLLM as a first-class client: completion / acompletion / embedding / aembedding, streaming, for each provider
prefix, measured once on the wire with tokentrace's own partition, attributed by the host LiteLLM calls.

LiteLLM keeps each provider's real base URL; below tokentrace's hooks (in the httpx transports) every request is
sent to the simulator instead, so attribution by host works as in production.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

import tokentrace
from tokentrace.testing import capture_usage

from .conftest import make_telemetry
from .litellm_cases import AWS, MESSAGES, PROVIDERS, alitellm_total, litellm_total, options, send_to_simulator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM must not fetch its price map in tests
litellm = pytest.importorskip("litellm") if os.environ.get("CI") != "true" else __import__("litellm")

@pytest.fixture
def provider_hosts_to_simulator(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every request of the httpx transports goes to the simulator, whatever host the client named."""
    send_to_simulator(simulator.port, monkeypatch.setattr)
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    yield


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["value", "stream"])
@pytest.mark.parametrize(("model", "provider"), PROVIDERS, ids=[m for m, _ in PROVIDERS])
def test_a_litellm_call_is_counted_once_with_its_providers_usage(provider_hosts_to_simulator: None, model: str,
                                                                   provider: str, stream: bool, mode: str) -> None:
    make_telemetry()
    with capture_usage() as records:
        if mode == "sync":
            expected = litellm_total(litellm.completion(model=model, messages=MESSAGES, **options(stream)), stream)
        else:
            async def go() -> int:
                response = await litellm.acompletion(model=model, messages=MESSAGES, **options(stream))
                return await alitellm_total(response, stream)

            expected = asyncio.run(go())
        tokentrace.flush()
    assert len(records) == 1, [(r.provider, r.status) for r in records]
    (record,) = records
    assert (record.provider, record.status, record.stream) == (provider, "ok", stream)
    assert record.usage_reported
    assert record.usage.total == expected  # tokentrace's partition adds up to what LiteLLM read
    assert record.usage.input == 7 and record.usage.all_output == 5  # the simulator's usage for this prompt


def test_litellm_embeddings_sync_and_async(provider_hosts_to_simulator: None) -> None:
    make_telemetry()
    with capture_usage() as records:
        first = litellm.embedding(model="openai/text-embedding-3-small", input=["one two three"], api_key="sk-test")
        second = asyncio.run(litellm.aembedding(model="openai/text-embedding-3-small", input=["a b"],
                                                api_key="sk-test"))
    assert [(r.provider, r.operation, r.usage.input) for r in records] == [
        ("openai", "embeddings", first.usage.prompt_tokens), ("openai", "embeddings", second.usage.prompt_tokens)]


def test_a_block_budget_refuses_a_litellm_call_with_budget_exceeded(simulator: Any,
                                                                      provider_hosts_to_simulator: None) -> None:
    make_telemetry(budgets=[tokentrace.Budget("none-left", limit_usd=1e-12, action="block")])
    before = len(simulator.served)
    with capture_usage() as records:
        for model, _ in PROVIDERS[:3]:
            with pytest.raises(tokentrace.BudgetExceeded):
                litellm.completion(model=model, messages=MESSAGES, **options(False))
        with pytest.raises(tokentrace.BudgetExceeded):
            asyncio.run(litellm.acompletion(model="anthropic/claude-haiku-4-5", messages=MESSAGES,
                                            **options(True)))
    assert len(simulator.served) == before  # nothing reached the provider
    assert {r.status for r in records} == {"blocked"}


@pytest.mark.parametrize("own_base", [False, True], ids=["provider-base", "api-base"])
def test_a_litellm_stream_nobody_asked_usage_for_counts_exact_usage(simulator: Any, provider_hosts_to_simulator: None,
                                                                     own_base: bool) -> None:
    """Without ``stream_options.include_usage`` (LiteLLM adds it for some bases, not others) an OpenAI-format host
    sends no usage in a stream: the wire layer asks for it and hides what asking added, so LiteLLM's chunks are
    what they were and the call counts the provider's own usage. A base on a host the registry does not know is
    learnt from its first stream (counted with usage not reported, never $0) and asked from the second on."""
    def run() -> list[Any]:
        return list(litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, api_key="sk-test",
                                       max_tokens=5, stream=True, **base))

    base = {"api_base": simulator.url + "/v1"} if own_base else {}
    uninstrumented = run()
    asked = list(litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, api_key="sk-test", max_tokens=5,
                                    stream=True, stream_options={"include_usage": True}, **base))
    total = asked[-1].usage.total_tokens
    make_telemetry()
    with capture_usage() as records:
        runs = [run() for _ in range(2)]

    def content(chunks: list[Any]) -> list[Any]:
        return [(c.choices[0].delta.content if c.choices else None, getattr(c, "usage", None) is None)
                for c in chunks]

    assert [content(r) for r in runs] == [content(uninstrumented)] * 2
    learnt = [False, True] if own_base else [True, True]
    assert [r.usage_reported for r in records] == learnt
    assert records[1].usage.total == total
    first = records[0]
    assert first.charged_usd is not None and first.charged_usd > 0 if own_base else first.usage.total == total
