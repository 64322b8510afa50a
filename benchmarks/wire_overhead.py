"""What the wire layer adds: to a request that is not an LLM call (target <= 1 us), and to an LLM call it measures
(target: no more own time than the same call measured by the SDK layer).

No socket is in the timing: httpx clients get an in-process ``MockTransport`` and requests a mounted adapter that
answer at once with a canned body, so what differs between the two sides of a pair is only tokentrace's hook.
A request that is not an LLM call: the hook (wrapt dispatch included) over a stub that returns at once, minus the
stub called directly, on the same request object. An LLM call: the hook's own time on the calling thread (its time
minus the client method's, own_time.py's method), beside the SDK layer's own time for the same call through the
openai SDK. tokentrace runs with Prometheus only (no ledger, no OpenTelemetry SDK providers), as in sdk_overhead.py.

    python benchmarks/wire_overhead.py [--calls 20000] [--llm-calls 3000]

Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

CHAT = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
}).encode()
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 5}


def _httpx_client(module_name: str) -> Any:
    import importlib

    module = importlib.import_module(module_name)

    def answer(request: Any) -> Any:
        if request.url.path.endswith("/chat/completions"):
            return module.Response(200, content=CHAT, headers={"content-type": "application/json"})
        return module.Response(200, content=b'{"ok": true}', headers={"content-type": "application/json"})

    return module.Client(transport=module.MockTransport(answer), base_url="https://api.openai.com/v1")


def _requests_session() -> Any:
    import requests
    from requests.adapters import BaseAdapter

    class Canned(BaseAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:
            response = requests.Response()
            response.status_code = 200
            response._content = CHAT if request.url.endswith("/chat/completions") else b'{"ok": true}'
            response.headers["content-type"] = "application/json"
            response.url = request.url
            response.request = request
            return response

        def close(self) -> None:
            pass

    session = requests.Session()
    session.mount("https://", Canned())
    return session


def _openai_client() -> Any:
    import openai

    return openai.OpenAI(api_key="sk-x", base_url="https://api.openai.com/v1", http_client=_httpx_client("httpx2"),
                         max_retries=0)


def _median_us(work: Callable[[], Any], calls: int, repeat: int = 7) -> float:
    """Median over ``repeat`` runs of the mean time per call of ``work`` (us)."""
    figures = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(calls):
            work()
        figures.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(figures)


def hook_cost_us(wrapper: Any, make_args: Callable[[], tuple[Any, ...]], calls: int) -> float:
    """What a hook adds to a request it lets pass: the hooked method (a wrapt wrapper over a stub that returns at
    once) minus the stub called directly, on the same request object; median of alternating runs."""
    import wrapt

    def stub(*args: Any, **kwargs: Any) -> None:
        return None

    hooked = wrapt.FunctionWrapper(stub, wrapper)
    args = make_args()
    added = []
    for _ in range(7):
        plain = _median_us(lambda: stub(*args), calls, 1)
        added.append(_median_us(lambda: hooked(*args), calls, 1) - plain)
    return statistics.median(added)


def own_us(owner: Any, name: str, wrapper: Any, work: Callable[[], Any], calls: int) -> float:
    """Own time per call of ``wrapper`` installed on ``owner.name``: its time minus the wrapped method's, on the same
    calls (own_time.py's method); the median of per-call figures."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from own_time import per_call_us, timed_wrapper

    original = vars(owner)[name]
    clock = [0.0]
    setattr(owner, name, timed_wrapper(original, wrapper, clock))
    try:
        return statistics.median(per_call_us(work, calls, clock))
    finally:
        setattr(owner, name, original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per run for the pass-through figures")
    parser.add_argument("--llm-calls", type=int, default=3000, help="calls for the own-time figures")
    args = parser.parse_args()

    import httpx
    import httpx2
    import openai
    import requests
    from prometheus_client import CollectorRegistry

    import tokentrace
    from tokentrace import wire
    from tokentrace.instrumentation import wrappers as _wrappers
    from tokentrace.providers import openai as openai_support
    from tokentrace.wire import httpx_hook, requests_hook

    tokentrace.instrument(ledger=False, registry=CollectorRegistry(), prices={"gpt-4o-mini": {
        "provider": "openai", "input": 0.15, "output": 0.6}})
    wire.uninstall()  # each figure below installs exactly the hook it measures
    wire.switch.on = True

    httpx_client, httpx2_client, session = _httpx_client("httpx"), _httpx_client("httpx2"), _requests_session()
    passing = [
        ("httpx GET", httpx_hook.sync_send, lambda: (httpx_client.build_request("GET", "/models"),)),
        ("httpx POST /v1/files", httpx_hook.sync_send,
         lambda: (httpx_client.build_request("POST", "/files", json={}),)),
        ("httpx2 POST /v1/files", httpx_hook.sync_send,
         lambda: (httpx2_client.build_request("POST", "/files", json={}),)),
        ("requests POST /v1/files", requests_hook.send,
         lambda: (requests.Request("POST", "https://api.openai.com/v1/files", json={}).prepare(),)),
    ]
    rows = [(f"{label} (not an LLM call)", hook_cost_us(wrapper, make, args.calls)) for label, wrapper, make in
            passing]
    sdk = _openai_client()
    completions = openai.resources.chat.completions.completions.Completions
    measured = [
        ("LLM call: raw httpx POST, wire layer", httpx.Client, "send", httpx_hook.sync_send,
         lambda: httpx_client.post("/chat/completions", json=BODY)),
        ("LLM call: raw httpx2 POST, wire layer", httpx2.Client, "send", httpx_hook.sync_send,
         lambda: httpx2_client.post("/chat/completions", json=BODY)),
        ("LLM call: raw requests POST, wire layer", requests.Session, "send", requests_hook.send,
         lambda: session.post("https://api.openai.com/v1/chat/completions", json=BODY)),
        ("LLM call: openai SDK, SDK layer", completions, "create", _wrappers.make_wrapper(openai_support.CHAT, False),
         lambda: sdk.chat.completions.create(**BODY)),
    ]
    rows += [(label, own_us(owner, name, wrapper, work, args.llm_calls))
             for label, owner, name, wrapper, work in measured]
    print("| request | added by tokentrace, own time (us, median) |")
    print("|---|---|")
    for label, added in rows:
        print(f"| {label} | {added:.2f} |")


if __name__ == "__main__":
    main()
