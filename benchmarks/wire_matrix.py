"""The README's coverage table: every client x provider wire format x mode, against the simulator over real
sockets, with the calls tokentrace counted and whether its tokens equal the provider's own usage.

Raw clients (httpx, httpx async, httpx2, requests, aiohttp) send tests/wire_cases.py's requests; LiteLLM calls each
provider prefix with its real base URL (the httpx transports below tokentrace's hooks send it to the simulator), and
the openai SDK is the SDK layer's reference row.

    python benchmarks/wire_matrix.py

Prints two markdown tables; a cell reads ``1 / 12=12``: calls counted / tokens tokentrace counted = the
provider's (or LiteLLM's) own figure.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION_NAME": "us-east-1"})

from tests.wire_cases import CASES, CLIENTS, fetch, provider_total

LITELLM_MODELS = ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash",
                  "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
                  "bedrock/converse/anthropic.claude-3-haiku-20240307-v1:0",
                  "groq/llama-3.1-8b-instant", "mistral/mistral-small-latest", "deepseek/deepseek-chat",
                  "xai/grok-3-mini", "openrouter/openai/gpt-4o-mini")


def _cell(records: list[Any], expected: int | None) -> str:
    counted = sum(r.usage.total for r in records)
    mark = "=" if expected == counted else "!="
    return f"{len(records)} / {counted}{mark}{expected}"


def raw_table(url: str) -> list[str]:
    from tokentrace.testing import capture_usage

    lines = ["| wire format | mode | " + " | ".join(CLIENTS) + " |", "|---|---|" + "---|" * len(CLIENTS)]
    for case in CASES:
        cells = []
        for client in CLIENTS:
            with capture_usage() as records:
                body = fetch(client, url + case.path, case)
                gc.collect()
            cells.append(_cell(records, provider_total(case, body)))
        lines.append(f"| {case.name} | {'stream' if case.stream else 'value'} | " + " | ".join(cells) + " |")
    return lines


def _to_simulator(port: int) -> None:
    import httpx
    import httpx2
    from litellm.llms.custom_httpx.aiohttp_transport import LiteLLMAiohttpTransport

    def rewrite(request: Any) -> None:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)

    for module in (httpx, httpx2):
        sync_original = module.HTTPTransport.handle_request
        async_original = module.AsyncHTTPTransport.handle_async_request

        def handle(self: Any, request: Any, original: Any = sync_original) -> Any:
            rewrite(request)
            return original(self, request)

        async def handle_async(self: Any, request: Any, original: Any = async_original) -> Any:
            rewrite(request)
            return await original(self, request)

        module.HTTPTransport.handle_request = handle
        module.AsyncHTTPTransport.handle_async_request = handle_async
    aiohttp_original = LiteLLMAiohttpTransport.handle_async_request

    async def handle_aiohttp(self: Any, request: Any) -> Any:
        rewrite(request)
        return await aiohttp_original(self, request)

    LiteLLMAiohttpTransport.handle_async_request = handle_aiohttp


def litellm_table(port: int) -> list[str]:
    import litellm

    from tokentrace.testing import capture_usage

    _to_simulator(port)
    messages = [{"role": "user", "content": "one two three"}]
    modes = ("completion", "completion stream", "acompletion", "acompletion stream")
    lines = ["| LiteLLM model | provider | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]
    for model in LITELLM_MODELS:
        cells, provider = [], ""
        for mode in modes:
            stream = mode.endswith("stream")
            options = {"api_key": "sk-test", "max_tokens": 5, "stream": stream,
                       **({"stream_options": {"include_usage": True}} if stream else {})}
            expected: int | None = None
            with capture_usage() as records:
                try:
                    if mode.startswith("a"):
                        expected = asyncio.run(_acall(litellm, model, messages, options, stream))
                    else:
                        expected = _usage_total(litellm.completion(model=model, messages=messages, **options), stream)
                except Exception as exc:  # LiteLLM's own failure (with or without tokentrace)
                    cells.append(f"LiteLLM raised {type(exc).__name__}; {len(records)} counted")
                    continue
                gc.collect()
            provider = provider or (records[0].provider if records else "")
            cells.append(_cell(records, expected))
        lines.append(f"| `{model}` | {provider} | " + " | ".join(cells) + " |")
    return lines


def _usage_total(response: Any, stream: bool) -> int:
    usage = getattr(list(response)[-1], "usage", None) if stream else response.usage
    return int(usage.prompt_tokens + usage.completion_tokens)


async def _acall(litellm: Any, model: str, messages: Any, options: dict[str, Any], stream: bool) -> int:
    response = await litellm.acompletion(model=model, messages=messages, **options)
    if stream:
        chunks = [c async for c in response]
        usage = getattr(chunks[-1], "usage", None)
    else:
        usage = response.usage
    return int(usage.prompt_tokens + usage.completion_tokens)


def main() -> None:
    import tokentrace
    from tokentrace.simulator import Simulator

    tokentrace.instrument(ledger=False)
    with Simulator() as sim:
        print("\n".join(raw_table(sim.url)))
        print()
        print("\n".join(litellm_table(sim.port)))


if __name__ == "__main__":
    main()
