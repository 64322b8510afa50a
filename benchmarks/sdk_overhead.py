"""Per-wrapper overhead: what tokentrace adds per call and per stream chunk through each SDK it patches.

Every SDK runs its real client stack (request building, its transport layer, response parsing, SSE, NDJSON, AWS
event-stream and protobuf decoding) over answers the simulator gave once: the first time a client sends a request,
the simulator (in a child process) answers it over the SDK's real transport and the answer is kept; from then on
the same request is answered in process (an httpx transport, botocore's ``before-send`` hook, a gRPC client
interceptor), so no socket or server is in the timing. tokentrace is installed with Prometheus only (no ledger, no
OpenTelemetry SDK providers): the sinks are the same for every SDK, so differences between rows are the wrappers'.

Two figures per SDK:
- ``own``: time spent in tokentrace's wrapper, stream proxy and sinks on the calling thread, i.e. the wrapper's and
  proxy's time minus the time inside the SDK's method and the SDK stream's ``__next__`` they call, measured on the
  same call (so the SDK's own variance cancels). It leaves out indirect costs (GC of the extra objects, caches).
- ``paired``: whole calls timed in blocks with tokentrace's patches in and swapped out (random order per round);
  includes indirect costs but also the SDK's variance (Mistral's SDK builds pydantic models per call: +-ms).

    python benchmarks/sdk_overhead.py [--rounds 30] [--block 10] [--sdk openai --sdk bedrock ...]

Prints one markdown table, ``own`` also as a ratio to the openai wrapper's figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_time import per_call_us, timed_wrapper

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


class Tape:
    """The simulator's answer to each distinct request, recorded the first time an SDK sends it and replayed in
    process from then on: the measured calls run each SDK's whole client stack (request building, its transport
    layer, response parsing, SSE/NDJSON/event-stream/protobuf decoding) without a socket, a server or another
    process in the timing, which is what left the loopback figures hundreds of us apart between rounds."""

    def __init__(self) -> None:
        self.answers: dict[Any, Any] = {}

    def answer(self, key: Any, fetch: Callable[[], Any]) -> Any:
        if key not in self.answers:
            self.answers[key] = fetch()
        return self.answers[key]


def _replaying_transport(httpx: Any, port: int, tape: Tape) -> Any:
    """An httpx transport (of the given httpx module) answering from the tape, fetching from the simulator once."""
    forward = httpx.HTTPTransport()
    dropped = {"content-length", "content-encoding", "transfer-encoding"}

    class Replaying(httpx.BaseTransport):  # type: ignore[misc,name-defined]
        def handle_request(self, request: Any) -> Any:
            def fetch() -> tuple[int, list[tuple[str, str]], bytes]:
                request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)
                response = forward.handle_request(request)
                body = response.read()
                headers = [(k, v) for k, v in response.headers.items() if k.lower() not in dropped]
                return response.status_code, headers, body

            status, headers, body = tape.answer((request.url.host, request.url.path, request.read()), fetch)
            return httpx.Response(status, headers=headers, content=body)

    return Replaying()


def _replaying_httpx(httpx: Any, port: int, tape: Tape) -> Any:
    return httpx.Client(transport=_replaying_transport(httpx, port, tape))


class _RawBody:
    """What botocore reads an HTTP body from (``stream()``), over recorded bytes."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self.body

    def close(self) -> None:
        pass


def _replaying_bedrock(sim: Any, tape: Tape) -> Any:
    """A boto3 bedrock-runtime client whose HTTP sends are answered from the tape (botocore's ``before-send`` hook
    may return the response itself); signing, serializing and event-stream parsing all still run."""
    from botocore.awsrequest import AWSResponse

    from cases import bedrock_client

    client = bedrock_client(sim)
    session = client._endpoint.http_session

    def before_send(request: Any, **_: Any) -> Any:
        def fetch() -> tuple[int, dict[str, str], bytes]:
            response = session.send(request)
            return response.status_code, dict(response.headers), response.content

        status, headers, body = tape.answer((request.url, request.body), fetch)
        return AWSResponse(request.url, status, headers, _RawBody(body))

    client.meta.events.register("before-send.bedrock-runtime", before_send)
    return client


def _replaying_xai(sim: Any, tape: Tape) -> Any:
    """An xai-sdk Client whose gRPC channel answers from the tape (a client interceptor): request and response
    protobufs are still built, serialized and parsed by the SDK's own stubs."""
    import grpc
    import xai_sdk

    class _Done:
        def __init__(self, response: Any) -> None:
            self.response = response

        def result(self, *_: Any) -> Any:
            return self.response

    class Replaying(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            key = (details.method, request.SerializeToString(deterministic=True))
            return _Done(tape.answer(key, lambda: continuation(details, request).result()))

        def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
            key = (details.method, request.SerializeToString(deterministic=True))
            return iter(tape.answer(key, lambda: list(continuation(details, request))))

    class Client(xai_sdk.Client):  # type: ignore[misc]
        def _make_grpc_channel(self, *args: Any, **kwargs: Any) -> Any:
            return grpc.intercept_channel(super()._make_grpc_channel(*args, **kwargs), Replaying())

    return Client(api_key="xai-test-secret-key", api_host=sim.grpc_address, use_insecure_channel=True)


def workloads(sim: Any, tape: Tape) -> dict[str, dict[str, Callable[[], Any]]]:
    """Per SDK: a value call, and a short and a long stream, each a no-argument function over one client."""
    import cohere
    import groq
    import httpx
    import httpx2
    import ollama
    import openai as openai_sdk
    from mistralai.client import Mistral

    found: dict[str, dict[str, Callable[[], Any]]] = {}

    def add(name: str, value: Callable[[], Any], stream: Callable[[int], Any]) -> None:
        found[name] = {"value": value, "short": lambda: _drain(stream(SHORT)), "long": lambda: _drain(stream(LONG))}

    openai = openai_sdk.OpenAI(api_key="sk-bench", max_retries=0, http_client=_replaying_httpx(httpx2, sim.port, tape))
    add("openai", lambda: openai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=8),
        lambda n: openai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=n, stream=True))
    client = groq.Groq(api_key="gsk-bench", max_retries=0, http_client=_replaying_httpx(httpx, sim.port, tape))
    add("groq", lambda: client.chat.completions.create(model="llama-3.3-70b-versatile", messages=PROMPT,
                                                       max_tokens=8),
        lambda n: client.chat.completions.create(model="llama-3.3-70b-versatile", messages=PROMPT, max_tokens=n,
                                                 stream=True))
    mistral = Mistral(api_key="mistral-bench", server_url="https://api.mistral.ai",
                      client=_replaying_httpx(httpx, sim.port, tape))
    add("mistral", lambda: mistral.chat.complete(model="mistral-small-latest", messages=PROMPT, max_tokens=8),
        lambda n: mistral.chat.stream(model="mistral-small-latest", messages=PROMPT, max_tokens=n))
    co = cohere.ClientV2(api_key="co-bench", base_url="https://api.cohere.com",
                         httpx_client=_replaying_httpx(httpx, sim.port, tape))
    # through the class: ClientV2 binds its chat methods onto the instance when it is built (argument checks), so
    # swapping the class's methods would not reach an existing client
    v2 = sys.modules["cohere.v2.client"].V2Client
    add("cohere", lambda: v2.chat(co, model="command-r-08-2024", messages=PROMPT, max_tokens=8),
        lambda n: v2.chat_stream(co, model="command-r-08-2024", messages=PROMPT, max_tokens=n))
    local = ollama.Client(host="http://127.0.0.1:11434", transport=_replaying_transport(httpx, sim.port, tape))
    add("ollama", lambda: local.chat("llama3.2", PROMPT, options={"num_predict": 8}),
        lambda n: local.chat("llama3.2", PROMPT, options={"num_predict": n}, stream=True))
    bedrock = _replaying_bedrock(sim, tape)

    def converse(n: int) -> dict[str, Any]:
        return {"modelId": "anthropic.claude-3-5-haiku-20241022-v1:0", "inferenceConfig": {"maxTokens": n},
                "messages": [{"role": "user", "content": [{"text": "one two three"}]}]}

    add("bedrock", lambda: bedrock.converse(**converse(8)), lambda n: bedrock.converse_stream(**converse(n))["stream"])
    xai = _replaying_xai(sim, tape)

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

    def timed(self, clock: list[float]) -> None:
        """tokentrace's own wrapper functions, each timed, around the SDK's method, also timed: ``clock[0]`` adds up
        the time in tokentrace's wrappers minus the time in the SDK's methods they called."""
        for a in self.applied:
            setattr(a.owner, a.name, timed_wrapper(a.original, a.wrapper._self_wrapper, clock))


@contextlib.contextmanager
def timed_stream_proxies(clock: list[float]) -> Iterator[None]:
    """Stream proxies whose chunk generator (``_wrappers._items``) adds its time to ``clock[0]`` less the time inside
    the SDK's own iteration."""
    from tokentrace.instrumentation import wrappers as _wrappers

    original_items = _wrappers._items

    def sdk_chunks(stream: Any) -> Iterator[Any]:
        chunks = iter(stream)
        while True:
            start = time.perf_counter()
            try:
                item = next(chunks)
            except StopIteration:
                return
            finally:
                clock[0] -= time.perf_counter() - start
            yield item

    def items(stream: Any, state: Any) -> Iterator[Any]:
        inner = original_items(sdk_chunks(stream), state)
        while True:
            start = time.perf_counter()
            try:
                item = next(inner)
            except StopIteration:
                return
            finally:
                clock[0] += time.perf_counter() - start
            yield item

    _wrappers._items = items
    try:
        yield
    finally:
        _wrappers._items = original_items


def own_us(patches: Patches, fn: Callable[[], Any], calls: int) -> list[float]:
    """Per call: time in tokentrace's wrapper, stream proxy and sinks on the calling thread (their time minus the time
    inside the SDK's method and the SDK stream's next, timed around the same calls), so the SDK's own variance
    cancels out."""
    clock = [0.0]
    patches.timed(clock)
    try:
        with timed_stream_proxies(clock):
            return per_call_us(fn, calls, clock)
    finally:
        patches.on()


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


def quartiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[len(ordered) // 4], ordered[3 * len(ordered) // 4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--sdk", action="append")
    args = parser.parse_args()

    from prometheus_client import CollectorRegistry

    import tokentrace
    from tokentrace.instrumentation import instrumentor as _instrumentor

    sim = RemoteSimulator()
    try:
        loads = workloads(sim, Tape())
        handle = tokentrace.instrument(ledger=False, registry=CollectorRegistry())
        for run in loads.values():
            run["value"]()  # imports the SDK's lazily loaded modules, so every patch is in place
        results: dict[str, dict[str, Any]] = {}
        for name in args.sdk or list(loads):
            patches = Patches(_instrumentor.current().patched.get(name, []))  # type: ignore[union-attr]
            if not patches.applied:
                print(f"{name}: not patched (SDK missing?)", file=sys.stderr)
                continue
            calls = args.rounds * args.block
            own = own_us(patches, loads[name]["value"], calls)
            short_own = statistics.median(own_us(patches, loads[name]["short"], calls))
            own_chunk = (statistics.median(own_us(patches, loads[name]["long"], calls)) - short_own) / (LONG - SHORT)
            value = paired(patches, loads[name]["value"], args.rounds, args.block)
            short = paired(patches, loads[name]["short"], args.rounds, args.block)
            long = paired(patches, loads[name]["long"], args.rounds, args.block)
            chunk = [(b - a) / (LONG - SHORT) for a, b in zip(short, long, strict=True)]
            results[name] = {"own": quartiles(own), "own_chunk": own_chunk,
                             "call": quartiles(value), "chunk": quartiles(chunk)}
        handle.uninstrument()
    finally:
        sim.close()
    base = results.get("openai")

    def median(figure: tuple[float, float, float] | float) -> float:
        return figure[0] if isinstance(figure, tuple) else figure

    def ratio(name: str, key: str) -> str:
        return f"{median(results[name][key]) / median(base[key]):.2f}x" if base and median(base[key]) > 0 else "n/a"

    def figure(values: tuple[float, float, float], digits: int) -> str:
        return f"+{values[0]:.{digits}f} ({values[1]:.{digits}f}..{values[2]:.{digits}f})"

    print(f"per-wrapper overhead, Prometheus only, python {sys.version.split()[0]}: own = the wrapper's and sinks' "
          f"time on the calling thread per call, median of {args.rounds * args.block} calls (per chunk: median long "
          f"stream - median short stream, / {LONG - SHORT}); paired = {args.rounds} rounds of {args.block} calls "
          f"with and without the patches, whole calls timed (SDK variance included)\n")
    print("| SDK | own us/call | x openai | own us/chunk | x openai | paired us/call | paired us/chunk |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {figure(r['own'], 1)} | {ratio(name, 'own')} | +{r['own_chunk']:.2f} "
              f"| {ratio(name, 'own_chunk')} | {figure(r['call'], 0)} | {figure(r['chunk'], 1)} |")
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
