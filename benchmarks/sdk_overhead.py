"""Per-wrapper overhead: what tokentrace adds per call and per stream chunk through each SDK it patches.

Every SDK runs its real client over its real transport (HTTP, SSE, NDJSON, AWS event streams, gRPC) against the
simulator, which runs in a child process so its server threads do not compete with the measured calls for the
GIL. tokentrace is installed once with Prometheus only (no ledger, no OpenTelemetry SDK providers): the sinks are
the same for every SDK, so the differences between rows are the wrappers' own. Paired rounds swap tokentrace's
patches out and back in (random order per round); per-chunk cost is (long stream - short stream) / extra chunks.

    python benchmarks/sdk_overhead.py [--rounds 30] [--block 10] [--sdk openai --sdk bedrock ...]

Prints one markdown table, each row also as a ratio to the openai wrapper's figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SHORT, LONG = 4, 64
"""Content chunks in the short and long streams (the simulator streams one chunk per output token, at most 64)."""
PROMPT = [{"role": "user", "content": "one two three"}]


def _serve(ports: Any, stop: Any) -> None:
    from tokentrace.simulator import Simulator

    with Simulator() as sim:
        ports.put((sim.port, sim.grpc_address))
        stop.wait()


class RemoteSimulator:
    """The simulator in a child process; ``url``, ``port`` and ``grpc_address`` as the in-process one has them."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        ports, self._stop = context.Queue(), context.Event()
        self._process = context.Process(target=_serve, args=(ports, self._stop), daemon=True)
        self._process.start()
        self.port, self.grpc_address = ports.get(timeout=60)
        self.url = f"http://127.0.0.1:{self.port}"
        self.defaults: dict[str, Any] = {}

    def close(self) -> None:
        self._stop.set()
        self._process.join(timeout=10)


def workloads(sim: Any) -> dict[str, dict[str, Callable[[], Any]]]:
    """Per SDK: a value call, and a short and a long stream, each a no-argument function over one client."""
    from cases import _cohere, _groq, _mistral, _ollama, _xai, bedrock_client
    from conftest import openai_client

    found: dict[str, dict[str, Callable[[], Any]]] = {}

    def add(name: str, value: Callable[[], Any], stream: Callable[[int], Any]) -> None:
        found[name] = {"value": value, "short": lambda: _drain(stream(SHORT)), "long": lambda: _drain(stream(LONG))}

    openai = openai_client(sim)
    add("openai", lambda: openai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=8),
        lambda n: openai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=n, stream=True))
    groq = _groq(sim)
    add("groq", lambda: groq.chat.completions.create(model="llama-3.3-70b-versatile", messages=PROMPT, max_tokens=8),
        lambda n: groq.chat.completions.create(model="llama-3.3-70b-versatile", messages=PROMPT, max_tokens=n,
                                               stream=True))
    mistral = _mistral(sim)
    add("mistral", lambda: mistral.chat.complete(model="mistral-small-latest", messages=PROMPT, max_tokens=8),
        lambda n: mistral.chat.stream(model="mistral-small-latest", messages=PROMPT, max_tokens=n))
    cohere = _cohere(sim)
    add("cohere", lambda: cohere.chat(model="command-r-08-2024", messages=PROMPT, max_tokens=8),
        lambda n: cohere.chat_stream(model="command-r-08-2024", messages=PROMPT, max_tokens=n))
    ollama = _ollama(sim)
    add("ollama", lambda: ollama.chat("llama3.2", PROMPT, options={"num_predict": 8}),
        lambda n: ollama.chat("llama3.2", PROMPT, options={"num_predict": n}, stream=True))
    bedrock = bedrock_client(sim)

    def converse(n: int) -> dict[str, Any]:
        return {"modelId": "anthropic.claude-3-5-haiku-20241022-v1:0", "inferenceConfig": {"maxTokens": n},
                "messages": [{"role": "user", "content": [{"text": "one two three"}]}]}

    add("bedrock", lambda: bedrock.converse(**converse(8)), lambda n: bedrock.converse_stream(**converse(n))["stream"])
    xai = _xai(sim)

    def grok(n: int) -> Any:
        from xai_sdk.chat import user

        chat = xai.chat.create(model="grok-3", max_tokens=n)
        chat.append(user("one two three"))
        return chat

    add("xai", lambda: grok(8).sample(), lambda n: grok(n).stream())
    return found


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


def _block_us(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


class Patches:
    """tokentrace's applied patches for one SDK, swapped out and back in between blocks."""

    def __init__(self, applied: list[Any]) -> None:
        self.applied = applied

    def on(self) -> None:
        for a in self.applied:
            setattr(a.owner, a.name, a.wrapper)

    def off(self) -> None:
        for a in self.applied:
            setattr(a.owner, a.name, a.original)


def paired(patches: Patches, fn: Callable[[], Any], rounds: int, block: int) -> list[float]:
    for _ in range(3):
        fn()
    differences = []
    for _ in range(rounds):
        times = {}
        for side in random.sample(("off", "on"), 2):
            (patches.on if side == "on" else patches.off)()
            times[side] = _block_us(fn, block)
        differences.append(times["on"] - times["off"])
    patches.on()
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--sdk", action="append")
    args = parser.parse_args()

    from prometheus_client import CollectorRegistry

    import tokentrace
    from tokentrace import _instrumentor

    sim = RemoteSimulator()
    try:
        loads = workloads(sim)
        handle = tokentrace.instrument(ledger=False, registry=CollectorRegistry())
        for run in loads.values():
            run["value"]()  # imports the SDK's lazily loaded modules, so every patch is in place
        results: dict[str, dict[str, float]] = {}
        for name in args.sdk or list(loads):
            patches = Patches(_instrumentor.current().patched.get(name, []))  # type: ignore[union-attr]
            if not patches.applied:
                print(f"{name}: not patched (SDK missing?)", file=sys.stderr)
                continue
            value = paired(patches, loads[name]["value"], args.rounds, args.block)
            short = paired(patches, loads[name]["short"], args.rounds, args.block)
            long = paired(patches, loads[name]["long"], args.rounds, args.block)
            chunk = [(b - a) / (LONG - SHORT) for a, b in zip(short, long, strict=True)]
            results[name] = {"call_us": statistics.median(value), "chunk_us": statistics.median(chunk),
                             "call_q1": sorted(value)[len(value) // 4], "call_q3": sorted(value)[3 * len(value) // 4]}
        handle.uninstrument()
    finally:
        sim.close()
    base = results.get("openai")
    print(f"per-wrapper overhead, Prometheus only, median of {args.rounds} paired rounds of {args.block} calls "
          f"(python {sys.version.split()[0]})\n")
    print("| SDK | added us/call (q1..q3) | x openai | added us/chunk | x openai |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        ratio_call = f"{r['call_us'] / base['call_us']:.2f}x" if base and base["call_us"] > 0 else "n/a"
        ratio_chunk = f"{r['chunk_us'] / base['chunk_us']:.2f}x" if base and base["chunk_us"] > 0 else "n/a"
        print(f"| {name} | +{r['call_us']:.0f} ({r['call_q1']:.0f}..{r['call_q3']:.0f}) | {ratio_call} "
              f"| +{r['chunk_us']:.1f} | {ratio_chunk} |")
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
