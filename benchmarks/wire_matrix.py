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

from tests.litellm_cases import AWS, MESSAGES, PROVIDERS, alitellm_total, litellm_total, options, send_to_simulator
from tests.wire_cases import CASES, CLIENTS, fetch, provider_total


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


def litellm_table(port: int) -> list[str]:
    import litellm

    from tokentrace.testing import capture_usage

    send_to_simulator(port)
    modes = ("completion", "completion stream", "acompletion", "acompletion stream")
    lines = ["| LiteLLM model | provider | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]
    for model, _ in PROVIDERS:
        cells, provider = [], ""
        for mode in modes:
            stream = mode.endswith("stream")
            expected: int | None = None
            with capture_usage() as records:
                try:
                    if mode.startswith("a"):
                        expected = asyncio.run(_acall(litellm, model, stream))
                    else:
                        expected = litellm_total(litellm.completion(model=model, messages=MESSAGES,
                                                                    **options(stream)), stream)
                except Exception as exc:  # LiteLLM's own failure (with or without tokentrace)
                    cells.append(f"LiteLLM raised {type(exc).__name__}; {len(records)} counted")
                    continue
                gc.collect()
            provider = provider or (records[0].provider if records else "")
            cells.append(_cell(records, expected))
        lines.append(f"| `{model}` | {provider} | " + " | ".join(cells) + " |")
    return lines


async def _acall(litellm: Any, model: str, stream: bool) -> int:
    return await alitellm_total(await litellm.acompletion(model=model, messages=MESSAGES, **options(stream)), stream)


def main() -> None:
    import tokentrace
    from tokentrace.simulator import Simulator

    os.environ.update(AWS)
    tokentrace.instrument(ledger=False)
    with Simulator() as sim:
        print("\n".join(raw_table(sim.url)))
        print()
        print("\n".join(litellm_table(sim.port)))


if __name__ == "__main__":
    main()
